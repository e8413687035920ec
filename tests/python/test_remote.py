"""A Bedrock id served by a remote OpenAI-compatible engine: a second Outcrop process (its
/openai/v1, with a Bedrock API key) behind a gateway Outcrop. The gateway's answers are the
upstream model's, greedy text and token counts alike; a stopped upstream is a clear 503."""
import json
import os

import pytest
from botocore.exceptions import ClientError

from conftest import Server, make_client

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(scope="module")
def pair():
    # Deterministic, so that a direct call and one through the gateway get the same bytes.
    upstream = Server(config='[access]\nmode = "open"\n[engine]\ndeterministic = true\n', enable=[])
    upstream.cli("users", "create", "gateway")
    key = json.loads(upstream.cli("keys", "create", "--user", "gateway", "--bedrock-api-key"))["ServiceSpecificCredential"]["ServiceCredentialSecret"]
    gateway = Server(
        config=('[access]\nmode = "open"\n[backing_models.smollm2-135m-instruct]\nengine = "openai"\n'
                f'url = "{upstream.url}/openai/v1"\nmodel = "{HAIKU}"\napi_key_env = "UPSTREAM_KEY"\n'),
        enable=[], env={"UPSTREAM_KEY": key},
    )
    yield upstream, gateway
    gateway.stop()
    upstream.stop()


def converse(server, text, **extra):
    return make_client(server).converse(
        modelId=HAIKU, system=[{"text": "Answer briefly."}], messages=[{"role": "user", "content": [{"text": text}]}],
        inferenceConfig={"maxTokens": 24, "temperature": 0}, **extra)


def test_the_gateway_answers_with_the_upstream_model(pair):
    upstream, gateway = pair
    direct, through = converse(upstream, "Name three colours."), converse(gateway, "Name three colours.")
    assert through["output"] == direct["output"]
    assert through["usage"]["inputTokens"] == direct["usage"]["inputTokens"]
    assert through["usage"]["outputTokens"] == direct["usage"]["outputTokens"]
    # A stream through the gateway says the same, piece by piece.
    events = make_client(gateway).converse_stream(
        modelId=HAIKU, system=[{"text": "Answer briefly."}],
        messages=[{"role": "user", "content": [{"text": "Name three colours."}]}],
        inferenceConfig={"maxTokens": 24, "temperature": 0})["stream"]
    deltas = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert len(deltas) > 1 and "".join(deltas) == direct["output"]["message"]["content"][0]["text"]
    # Another family's body through the same remote model.
    body = json.dumps({"prompt": "\n\nHuman: Name three colours.\n\nAssistant:", "max_tokens_to_sample": 8})
    r = json.loads(make_client(gateway).invoke_model(modelId="anthropic.claude-v2", body=body)["body"].read())
    assert r["stop_reason"] in ("stop_sequence", "max_tokens")


def test_count_tokens_is_refused_clearly(pair):
    _, gateway = pair
    with pytest.raises(ClientError) as e:
        make_client(gateway).count_tokens(modelId=HAIKU, input={"converse": {"messages": [
            {"role": "user", "content": [{"text": "x"}]}]}})
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "tokenize endpoint" in e.value.response["Error"]["Message"]


def test_a_stopped_upstream_is_a_clear_503(pair):
    upstream, gateway = pair
    upstream.stop()
    with pytest.raises(ClientError) as e:
        converse(gateway, "Hello?")
    assert e.value.response["Error"]["Code"] == "ServiceUnavailableException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
