"""The script engine through boto3 against the real binary with no model loaded for text: a
declared text with delays and token counts, a tool-call round trip, structured output, every
fault before the first byte, one in the middle of a stream, and a request no rule matches."""
import json
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EventStreamError

from conftest import Server, make_client

SCRIPT = Path(__file__).parent / "scripts" / "faults.toml"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
WEATHER = {"toolSpec": {"name": "get_weather", "description": "Weather for a city.", "inputSchema": {"json": {
    "type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string"}}, "required": ["city"]}}}}


@pytest.fixture(scope="module")
def scripted():
    config = ('[access]\nmode = "open"\n'
              f'[backing_models.smollm2-135m-instruct]\nengine = "script"\nscript = "{SCRIPT}"\n')
    s = Server(config=config, enable=[])
    yield s
    s.stop()


def say(client, text, **extra):
    return client.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": text}]}], **extra)


def test_declared_text_with_delays_and_token_counts(scripted):
    client = make_client(scripted)
    started = time.monotonic()
    r = say(client, "Hello there")
    assert time.monotonic() - started >= 0.3
    assert r["output"]["message"]["content"][0]["text"] == "Hello from the script, word by word."
    assert r["usage"]["inputTokens"] == 7 and r["usage"]["outputTokens"] == 7
    events = client.converse_stream(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "hello"}]}])["stream"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "Hello from the script, word by word."


def test_tool_call_round_trip(scripted):
    client = make_client(scripted)
    first = say(client, "What is the weather in Paris?", toolConfig={"tools": [WEATHER]})
    assert first["stopReason"] == "tool_use"
    use = next(b["toolUse"] for b in first["output"]["message"]["content"] if "toolUse" in b)
    assert use["name"] == "get_weather" and use["input"] == {"city": "Paris", "unit": "celsius"}
    second = client.converse(modelId=HAIKU, toolConfig={"tools": [WEATHER]}, messages=[
        {"role": "user", "content": [{"text": "What is the weather in Paris?"}]},
        first["output"]["message"],
        {"role": "user", "content": [{"toolResult": {"toolUseId": use["toolUseId"], "content": [{"text": "18C"}]}}]},
    ])
    assert second["output"]["message"]["content"][0]["text"] == "It is 18 degrees in Paris."


def test_structured_output(scripted):
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
                       "messages": [{"role": "user", "content": "Please invent a person."}]})
    r = json.loads(make_client(scripted).invoke_model(modelId=HAIKU, body=body)["body"].read())
    assert json.loads(r["content"][0]["text"]) == {"name": "Ada", "age": 36}


@pytest.mark.parametrize("text,code,status,message", [
    ("throttle me", "ThrottlingException", 429, "Too many requests, please wait before trying again."),
    ("time out please", "ModelTimeoutException", 408, "Model has timed out in processing the request."),
    ("not ready yet", "ModelNotReadyException", 429, "Model is not ready to serve inference requests."),
    ("bad input here", "ValidationException", 400, "Scripted: the input is not acceptable."),
])
def test_faults_before_the_first_byte(scripted, text, code, status, message):
    with pytest.raises(ClientError) as e:
        say(make_client(scripted), text)
    error = e.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Message"]) == (code, status, message)


def test_a_stream_that_fails_after_three_chunks(scripted):
    stream = make_client(scripted).converse_stream(
        modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "break mid-stream"}]}])["stream"]
    received = []
    with pytest.raises(EventStreamError) as e:
        for event in stream:
            if "contentBlockDelta" in event:
                received.append(event["contentBlockDelta"]["delta"]["text"])
    assert received == ["one ", "two ", "three "]
    assert e.value.response["Error"]["Code"] == "modelStreamErrorException"
    assert e.value.response["Error"]["Message"] == "The model failed mid-stream."


def test_a_request_no_rule_matches_is_named(scripted):
    with pytest.raises(ClientError) as e:
        say(make_client(scripted), "Something unexpected")
    message = e.value.response["Error"]["Message"]
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "No rule" in message and HAIKU in message and "Something unexpected" in message
