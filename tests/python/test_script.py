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


def test_several_tool_calls_in_one_answer(scripted):
    """Two calls in one answer are two blocks on every surface."""
    client = make_client(scripted)
    question = "The weather in two cities, please."
    r = say(client, question, toolConfig={"tools": [WEATHER]})
    uses = [b["toolUse"] for b in r["output"]["message"]["content"] if "toolUse" in b]
    assert [u["input"]["city"] for u in uses] == ["Paris", "Tokyo"]
    assert len({u["toolUseId"] for u in uses}) == 2 and r["stopReason"] == "tool_use"

    events = list(client.converse_stream(modelId=HAIKU, toolConfig={"tools": [WEATHER]},
                                         messages=[{"role": "user", "content": [{"text": question}]}])["stream"])
    starts = [e["contentBlockStart"] for e in events if "contentBlockStart" in e]
    assert [s["contentBlockIndex"] for s in starts] == [0, 1]
    inputs = {}
    for e in events:
        if "contentBlockDelta" in e:
            d = e["contentBlockDelta"]
            inputs[d["contentBlockIndex"]] = inputs.get(d["contentBlockIndex"], "") + d["delta"]["toolUse"]["input"]
    assert [json.loads(inputs[i])["city"] for i in (0, 1)] == ["Paris", "Tokyo"]
    stops = [e["contentBlockStop"]["contentBlockIndex"] for e in events if "contentBlockStop" in e]
    assert stops == [0, 1]

    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
                       "tools": [{"name": "get_weather", "description": "Weather for a city.",
                                  "input_schema": WEATHER["toolSpec"]["inputSchema"]["json"]}],
                       "messages": [{"role": "user", "content": question}]})
    msg = json.loads(client.invoke_model(modelId=HAIKU, body=body)["body"].read())
    assert [b["input"]["city"] for b in msg["content"] if b["type"] == "tool_use"] == ["Paris", "Tokyo"]
    assert msg["stop_reason"] == "tool_use"

    from openai import OpenAI
    scripted.cli("users", "create", "two-calls")
    key = json.loads(scripted.cli("keys", "create", "--user", "two-calls", "--bedrock-api-key"))
    oa = OpenAI(base_url=scripted.url + "/openai/v1", max_retries=0,
                api_key=key["ServiceSpecificCredential"]["ServiceCredentialSecret"])
    chat = oa.chat.completions.create(model=HAIKU, messages=[{"role": "user", "content": question}], tools=[
        {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER["toolSpec"]["inputSchema"]["json"]}}])
    calls = chat.choices[0].message.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Tokyo"]
    assert chat.choices[0].finish_reason == "tool_calls"


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
