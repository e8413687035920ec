"""InvokeModel on the Claude text-completion ids through boto3, against the real model."""
import json

import pytest
from botocore.exceptions import ClientError

PROMPT = "\n\nHuman: What is the capital of France?\n\nAssistant:"


def invoke(runtime, model_id, **body):
    body.setdefault("prompt", PROMPT)
    body.setdefault("max_tokens_to_sample", 40)
    r = runtime.invoke_model(modelId=model_id, body=json.dumps(body))
    return r, json.loads(r["body"].read())


@pytest.mark.parametrize("model_id", [
    "anthropic.claude-v2",
    "anthropic.claude-v2:1",
    "anthropic.claude-instant-v1",
    "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2",
    "arn:aws:bedrock:eu-central-1::foundation-model/anthropic.claude-v2:1",
])
def test_model_ids_and_arns(runtime, model_id):
    r, body = invoke(runtime, model_id, temperature=0)
    assert set(body) == {"completion", "stop_reason", "stop"}
    assert body["completion"].strip()
    assert r["contentType"] == "application/json"


def test_response_headers_carry_real_token_counts(runtime):
    r, body = invoke(runtime, "anthropic.claude-v2", temperature=0, max_tokens_to_sample=5)
    h = r["ResponseMetadata"]["HTTPHeaders"]
    assert int(h["x-amzn-bedrock-input-token-count"]) > 5
    assert 1 <= int(h["x-amzn-bedrock-output-token-count"]) <= 5
    assert int(h["x-amzn-bedrock-invocation-latency"]) >= 0
    assert len(r["ResponseMetadata"]["RequestId"]) == 36
    if body["stop_reason"] == "max_tokens":
        assert int(h["x-amzn-bedrock-output-token-count"]) == 5
        assert body["stop"] is None


def test_greedy_is_deterministic(runtime):
    _, a = invoke(runtime, "anthropic.claude-v2", temperature=0)
    _, b = invoke(runtime, "anthropic.claude-v2", temperature=0)
    assert a == b


def test_max_tokens_reason(runtime):
    _, body = invoke(runtime, "anthropic.claude-v2",
                     prompt="\n\nHuman: Write a long story about a dragon.\n\nAssistant:", max_tokens_to_sample=3)
    assert body == {"completion": body["completion"], "stop_reason": "max_tokens", "stop": None}


def test_custom_stop_sequence_is_matched_and_not_emitted(runtime):
    # Find out what the model says greedily, then stop on a word from the middle of it.
    _, full = invoke(runtime, "anthropic.claude-v2", temperature=0, max_tokens_to_sample=40)
    words = full["completion"].split()
    assert len(words) >= 3, full
    stop = " " + words[2]
    _, cut = invoke(runtime, "anthropic.claude-v2", temperature=0, max_tokens_to_sample=40, stop_sequences=[stop])
    assert cut["stop_reason"] == "stop_sequence"
    assert cut["stop"] == stop
    assert stop not in cut["completion"]
    assert full["completion"].startswith(cut["completion"])


def test_missing_content_type_means_json(server):
    from helpers import signed
    body = json.dumps({"prompt": PROMPT, "max_tokens_to_sample": 3}).encode()
    status, headers, data = signed(server, "POST", "/model/anthropic.claude-v2/invoke", body)
    assert status == 200, data
    assert json.loads(data)["completion"]


def client_error(runtime, model_id="anthropic.claude-v2", body=None, raw_body=None):
    with pytest.raises(ClientError) as e:
        runtime.invoke_model(modelId=model_id, body=raw_body if raw_body is not None else json.dumps(body))
    err = e.value.response
    return err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Code"], err["Error"]["Message"]


def test_missing_max_tokens(runtime):
    assert client_error(runtime, body={"prompt": PROMPT}) == (
        400, "ValidationException",
        "Malformed input request: #: required key [max_tokens_to_sample] not found, please reformat your input and try again.")


def test_missing_prompt(runtime):
    status, code, msg = client_error(runtime, body={"max_tokens_to_sample": 5})
    assert (status, code) == (400, "ValidationException")
    assert "#: required key [prompt] not found" in msg


def test_extraneous_key(runtime):
    assert client_error(runtime, body={"prompt": PROMPT, "max_tokens_to_sample": 5, "messages": []}) == (
        400, "ValidationException",
        "Malformed input request: #: extraneous key [messages] is not permitted, please reformat your input and try again.")


@pytest.mark.parametrize("field,value,expected", [
    ("max_tokens_to_sample", "20", "#/max_tokens_to_sample: expected type: Integer, found: String"),
    ("temperature", "hot", "#/temperature: expected type: Number, found: String"),
    ("top_k", 1.5, "#/top_k: expected type: Integer, found: BigDecimal"),
    ("stop_sequences", "x", "#/stop_sequences: expected type: JSONArray, found: String"),
    ("temperature", 2, "#/temperature: 2 is not less or equal to 1"),
])
def test_wrong_types_and_ranges(runtime, field, value, expected):
    body = {"prompt": PROMPT, "max_tokens_to_sample": 5, field: value}
    status, code, msg = client_error(runtime, body=body)
    assert (status, code) == (400, "ValidationException")
    assert expected in msg, msg


def test_malformed_json(runtime):
    status, code, msg = client_error(runtime, raw_body=b'{"prompt": "\\n\\nHuman: hi')
    assert (status, code) == (400, "ValidationException")
    assert msg.startswith("Malformed input request:")


def test_only_end_wrong(runtime):
    assert client_error(runtime, body={"prompt": "\n\nHuman: hi", "max_tokens_to_sample": 5}) == (
        400, "ValidationException", 'Invalid prompt: prompt must end with "\n\nAssistant:" turn')


@pytest.mark.parametrize("model_id", ["anthropic.claude-v9", "acme.unknown-v1",
                                      "arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abcdefghijkl"])
def test_unknown_model_id(runtime, model_id):
    assert client_error(runtime, model_id=model_id, body={"prompt": PROMPT, "max_tokens_to_sample": 5}) == (
        400, "ValidationException", "The provided model identifier is invalid.")


def test_prompt_longer_than_the_context(runtime):
    prompt = "\n\nHuman: " + "lorem ipsum dolor sit amet " * 2500 + "\n\nAssistant:"
    assert client_error(runtime, body={"prompt": prompt, "max_tokens_to_sample": 5}) == (
        400, "ValidationException", "Input is too long for requested model.")


def test_body_over_25_mb(server):
    from helpers import error_of, signed
    body = b'{"prompt": "' + b"a" * 25_000_000 + b'", "max_tokens_to_sample": 5}'
    status, code, msg, _ = error_of(signed(server, "POST", "/model/anthropic.claude-v2/invoke", body))
    assert (status, code.split(":")[0]) == (400, "ValidationException")
    assert msg == ("1 validation error detected: Value at 'body' failed to satisfy constraint: "
                   "Member must have length less than or equal to 25000000")


def test_server_survives_all_of_the_above(server, runtime):
    invoke(runtime, "anthropic.claude-v2", max_tokens_to_sample=2)
    assert server.proc.poll() is None
    assert "panicked" not in server.logs()
