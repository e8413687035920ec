"""Quotas per account and model, as Bedrock enforces them: requests and tokens per minute,
the exact ThrottlingException texts, throttles inside streams, and throttles in the ledger."""
import json
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EventStreamError

from conftest import Server, make_client, outcrop_binary

CLAUDE = "anthropic.claude-v2"
MISTRAL = "mistral.mistral-7b-instruct-v0:2"
LLAMA = "meta.llama3-8b-instruct-v1:0"
BODY = json.dumps({"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 4})
CONFIG = f'''
[quotas."{CLAUDE}"]
requests_per_minute = 5
tokens_per_minute = 200000

[quotas."{MISTRAL}"]
tokens_per_minute = 250

[quotas."{LLAMA}"]
requests_per_minute = 1
'''


@pytest.fixture(scope="module")
def quota_server():
    s = Server(config=CONFIG, enable=[CLAUDE, MISTRAL, LLAMA])
    yield s
    s.stop()


def test_requests_per_minute(quota_server):
    rt = make_client(quota_server)
    for _ in range(5):
        rt.invoke_model(modelId=CLAUDE, body=BODY)
    with pytest.raises(ClientError) as e:
        rt.invoke_model(modelId=CLAUDE, body=BODY)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert e.value.response["Error"] == {
        "Code": "ThrottlingException",
        "Message": "Too many requests, please wait before trying again. You have sent too many requests.  Wait before trying again."}
    # Converse on the same model shares the quota.
    with pytest.raises(ClientError) as e:
        rt.converse(modelId=CLAUDE, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    assert e.value.response["Error"]["Code"] == "ThrottlingException"


def test_tokens_per_minute(quota_server):
    rt = make_client(quota_server)
    body = json.dumps({"prompt": "<s>[INST] Hi [/INST]", "max_tokens": 100})
    rt.invoke_model(modelId=MISTRAL, body=body)
    rt.invoke_model(modelId=MISTRAL, body=body)  # settled to the real use, so this fits too
    with pytest.raises(ClientError) as e:
        rt.invoke_model(modelId=MISTRAL, body=json.dumps({"prompt": "Hi", "max_tokens": 300}))
    assert e.value.response["Error"] == {"Code": "ThrottlingException",
                                         "Message": "Too many tokens, please wait before trying again."}


def test_a_stream_over_quota_gets_the_frame(quota_server):
    rt = make_client(quota_server)
    body = json.dumps({"prompt": "Hi", "max_gen_len": 4})
    list(rt.invoke_model_with_response_stream(modelId=LLAMA, body=body)["body"])
    r = rt.invoke_model_with_response_stream(modelId=LLAMA, body=body)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
    with pytest.raises(EventStreamError) as e:
        list(r["body"])
    assert e.value.response["Error"]["Code"] == "throttlingException"
    assert "Too many requests" in e.value.response["Error"]["Message"]


def test_throttles_are_counted_as_throttles(quota_server):
    rt = make_client(quota_server)
    throttled = 0
    for _ in range(2):  # one request per minute: the second (at least) is throttled
        try:
            rt.invoke_model(modelId=LLAMA, body=json.dumps({"prompt": "Hi", "max_gen_len": 2}))
        except ClientError as e:
            assert e.response["Error"]["Code"] == "ThrottlingException"
            throttled += 1
    assert throttled >= 1
    data_dir = str(Path(quota_server.dir.name) / "data")
    out = subprocess.run([outcrop_binary(), "usage", "--data-dir", data_dir, "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    rows = {r["model_id"]: r for r in json.loads(out)["rows"]}
    assert rows[LLAMA]["throttles"] >= throttled and rows[LLAMA]["invocations"] <= 2
    assert rows[LLAMA]["throttles"] + rows[LLAMA]["invocations"] >= 2
