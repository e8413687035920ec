"""Bedrock itself behind a Bedrock id (`engine = "bedrock"`): a gateway Outcrop forwards calls
to a second Outcrop acting as the upstream Bedrock, signed again with the gateway's own key,
and records each exchange as a cassette; a third Outcrop (`engine = "replay"`) answers from
the cassettes byte for byte with the upstream stopped."""
import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import Server, make_client
from helpers import signed

CLAUDE = "anthropic.claude-v2"
# Answered upstream by a script (tests/python/scripts/faults.toml): faults on demand.
SCRIPTED = "anthropic.claude-instant-v1"
FAULTS = Path(__file__).parent / "scripts" / "faults.toml"
PROMPT = "\n\nHuman: Name three colours.\n\nAssistant:"
MESSAGES = [{"role": "user", "content": [{"text": "Name three colours."}]}]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    cassettes = tmp_path_factory.mktemp("cassettes")
    # Deterministic, so that a direct call and one through the gateway get the same bytes.
    upstream = Server(config=(
        '[access]\nmode = "open"\n[engine]\ndeterministic = true\n'
        f'[backing_models.scripted]\nengine = "script"\nscript = "{FAULTS}"\nfallback = "smollm2-135m-instruct"\n'
        f'[catalog."{SCRIPTED}"]\nbacking_model = "scripted"\n'), enable=[])
    upstream.cli("users", "create", "gateway")
    key = json.loads(upstream.cli("keys", "create", "--user", "gateway"))["AccessKey"]
    backing = "[backing_models.smollm2-135m-instruct]\n"
    gateway = Server(
        config=f'{backing}engine = "bedrock"\nurl = "{upstream.url}"\nrecord = "{cassettes}"\n',
        env={"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]},
    )
    replay = Server(config=f'{backing}engine = "replay"\ncassettes = "{cassettes}"\n')
    yield upstream, gateway, replay, cassettes
    for s in (replay, gateway, upstream):
        s.stop()


def invoke(server):
    body = json.dumps({"prompt": PROMPT, "max_tokens_to_sample": 12})
    return make_client(server).invoke_model(modelId=CLAUDE, body=body)


def test_every_runtime_call_passes_through(chain):
    upstream, gateway, _, _ = chain
    direct, through = invoke(upstream), invoke(gateway)
    assert json.loads(through["body"].read()) == json.loads(direct["body"].read())
    headers = lambda r: {k: v for k, v in r["ResponseMetadata"]["HTTPHeaders"].items() if "token-count" in k}
    assert headers(through) == headers(direct) and headers(through)

    args = dict(modelId=CLAUDE, messages=MESSAGES, inferenceConfig={"maxTokens": 16})
    direct, through = make_client(upstream).converse(**args), make_client(gateway).converse(**args)
    assert through["output"] == direct["output"] and through["usage"] == direct["usage"]

    # Streams come through frame by frame: the same events, several deltas.
    events = lambda s: [e for e in make_client(s).converse_stream(**args)["stream"] if "metadata" not in e]
    through = events(gateway)
    assert through == events(upstream)
    assert sum("contentBlockDelta" in e for e in through) > 1

    body = json.dumps({"prompt": PROMPT, "max_tokens_to_sample": 12})
    chunks = lambda s: [json.loads(e["chunk"]["bytes"]) for e in make_client(s).invoke_model_with_response_stream(
        modelId=CLAUDE, body=body)["body"]]
    direct, through = chunks(upstream), chunks(gateway)
    assert [c["completion"] for c in through] == [c["completion"] for c in direct]
    assert through[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == \
        direct[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"]

    count = dict(modelId=CLAUDE, input={"converse": {"messages": MESSAGES}})
    assert make_client(gateway).count_tokens(**count)["inputTokens"] == \
        make_client(upstream).count_tokens(**count)["inputTokens"]


def test_the_gateway_governs_and_meters(chain):
    upstream, gateway, _, _ = chain
    # Model access is the gateway's: a model not enabled here is refused before it goes upstream.
    with pytest.raises(ClientError) as e:
        make_client(gateway).converse(modelId="anthropic.claude-3-haiku-20240307-v1:0", messages=MESSAGES)
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    # A call's tokens are the upstream's own counts, in the gateway's usage report.
    r = invoke(gateway)
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    i, o = int(headers["x-amzn-bedrock-input-token-count"]), int(headers["x-amzn-bedrock-output-token-count"])
    status, _, body = signed(gateway, "GET", "/_outcrop/usage?group_by=model")
    assert status == 200, body
    report = json.loads(body)
    assert report["total"]["invocations"] >= 6
    status, _, before = signed(gateway, "GET", "/_outcrop/usage?group_by=model")
    invoke(gateway)
    status, _, after = signed(gateway, "GET", "/_outcrop/usage?group_by=model")
    grew = lambda k: json.loads(after)["total"][k] - json.loads(before)["total"][k]
    assert (grew("input_tokens"), grew("output_tokens")) == (i, o)


def test_the_upstreams_refusals_pass_through(chain):
    _, gateway, _, _ = chain
    with pytest.raises(ClientError) as e:
        make_client(gateway).invoke_model(modelId=CLAUDE, body=json.dumps({"prompt": "no turns", "max_tokens_to_sample": 5}))
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "Human:" in e.value.response["Error"]["Message"]


def faults(server):
    """What a throttled call and a stream that breaks after three chunks give boto3."""
    client = make_client(server)
    with pytest.raises(ClientError) as e:
        client.converse(modelId=SCRIPTED, messages=[{"role": "user", "content": [{"text": "throttle me"}]}])
    throttled = (e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"],
                 e.value.response["Error"]["Message"])
    deltas = []
    with pytest.raises(ClientError) as e:
        for event in client.converse_stream(modelId=SCRIPTED, messages=[
                {"role": "user", "content": [{"text": "break mid-stream"}]}])["stream"]:
            deltas += [event["contentBlockDelta"]["delta"]["text"]] if "contentBlockDelta" in event else []
    return throttled, deltas, e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def test_upstream_faults_pass_through(chain):
    upstream, gateway, _, _ = chain
    through = faults(gateway)
    assert through == faults(upstream)
    assert through[0][:2] == ("ThrottlingException", 429)
    assert len(through[1]) == 3 and through[2] == "modelStreamErrorException"


def raw_calls(server):
    """The exact bytes of a whole answer and of a stream."""
    body = json.dumps({"prompt": PROMPT, "max_tokens_to_sample": 12}).encode()
    headers = {"content-type": "application/json", "accept": "application/json"}
    whole = signed(server, "POST", f"/model/{CLAUDE}/invoke", body, headers=headers)
    stream = signed(server, "POST", f"/model/{CLAUDE}/invoke-with-response-stream", body, headers=headers)
    return whole[0], whole[2], stream[0], stream[2]


def test_recorded_exchanges_replay_byte_for_byte_without_the_upstream(chain):
    upstream, gateway, replay, cassettes = chain
    recorded = raw_calls(gateway)
    assert recorded[0] == recorded[2] == 200
    files = sorted(Path(cassettes).glob("*.json"))
    assert any(f.name.startswith("InvokeModelWithResponseStream-anthropic.claude-v2-") for f in files), files
    for f in files:
        text = f.read_text()
        assert "authorization" not in text.lower() and "x-amz-date" not in text.lower()
        assert json.loads(text)["request"]["model"]
    recorded_faults = faults(gateway)
    upstream.stop()
    assert raw_calls(replay) == recorded
    # Faults replay as they were recorded: the throttling answer, the stream that broke.
    assert faults(replay) == recorded_faults
    # boto3 reads the replayed answers as it read the live ones.
    args = dict(modelId=CLAUDE, messages=MESSAGES, inferenceConfig={"maxTokens": 16})
    out = make_client(replay).converse(**args)
    assert out["output"]["message"]["content"][0]["text"] and out["usage"]["outputTokens"] > 0
    assert [e for e in make_client(replay).converse_stream(**args)["stream"] if "contentBlockDelta" in e]
    # A request never recorded is refused, naming what to do.
    with pytest.raises(ClientError) as e:
        make_client(replay).converse(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "New?"}]}])
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "No recorded answer" in e.value.response["Error"]["Message"]
    # The gateway, its upstream gone, says so in Bedrock's words.
    with pytest.raises(ClientError) as e:
        make_client(gateway).converse(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "New?"}]}])
    assert e.value.response["Error"]["Code"] == "ServiceUnavailableException"
