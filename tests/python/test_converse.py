"""Converse, ConverseStream, tool use and CountTokens through boto3, the anthropic SDK's
Bedrock client and langchain-aws, against the real backing model."""
import json

import pytest
from botocore.exceptions import ClientError

from conftest import Server, make_client

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "us.amazon.nova-micro-v1:0"
MODELS = [HAIKU, "amazon.nova-micro-v1:0", "meta.llama3-8b-instruct-v1:0", "ai21.j2-mid-v1"]
WEATHER = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "inputSchema": {"json": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        }},
    }
}


@pytest.fixture(scope="module")
def conv_server():
    s = Server(enable=MODELS)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def rt(conv_server):
    return make_client(conv_server)


def user(text):
    return {"role": "user", "content": [{"text": text}]}


def test_converse_answer_usage_and_metrics(rt):
    r = rt.converse(modelId=HAIKU, messages=[user("Name a colour.")], system=[{"text": "Answer in one word."}],
                    inferenceConfig={"maxTokens": 16, "temperature": 0})
    assert r["output"]["message"]["role"] == "assistant"
    assert r["output"]["message"]["content"][0]["text"].strip()
    assert r["stopReason"] in ("end_turn", "max_tokens")
    u = r["usage"]
    assert u["totalTokens"] == u["inputTokens"] + u["outputTokens"] and 0 < u["outputTokens"] <= 16
    assert isinstance(r["metrics"]["latencyMs"], int)


def test_converse_multi_turn_stop_sequences_and_top_k(rt):
    messages = [user("Count: one, two"), {"role": "assistant", "content": [{"text": "three"}]}, user("Go on")]
    r = rt.converse(modelId=HAIKU, messages=messages, inferenceConfig={"maxTokens": 30, "temperature": 0.5,
                    "stopSequences": [","]}, additionalModelRequestFields={"top_k": 5})
    text = r["output"]["message"]["content"][0]["text"]
    assert "," not in text
    assert r["stopReason"] in ("stop_sequence", "end_turn", "max_tokens")


def test_converse_stream_equals_converse(rt):
    kwargs = dict(modelId=NOVA, messages=[user("Say hello.")], inferenceConfig={"maxTokens": 20, "temperature": 0})
    whole = rt.converse(**kwargs)
    events = list(rt.converse_stream(**kwargs)["stream"])
    names = [next(iter(e)) for e in events]
    assert names[0] == "messageStart" and names[-2:] == ["messageStop", "metadata"]
    assert set(names[1:-2]) <= {"contentBlockDelta", "contentBlockStop"}
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == whole["output"]["message"]["content"][0]["text"]
    meta = events[-1]["metadata"]
    assert meta["usage"] == whole["usage"]
    assert isinstance(meta["metrics"]["latencyMs"], int)
    assert events[-2]["messageStop"]["stopReason"] == whole["stopReason"]


def test_forced_tool_call_is_valid_json_for_its_schema(rt):
    for choice in ({"any": {}}, {"tool": {"name": "get_weather"}}):
        r = rt.converse(modelId=HAIKU, messages=[user("What's the weather in Oslo?")],
                        toolConfig={"tools": [WEATHER], "toolChoice": choice},
                        inferenceConfig={"maxTokens": 100, "temperature": 0})
        assert r["stopReason"] == "tool_use", r
        (block,) = [b for b in r["output"]["message"]["content"] if "toolUse" in b]
        call = block["toolUse"]
        assert call["name"] == "get_weather" and call["toolUseId"].startswith("tooluse_")
        assert set(call["input"]) == {"city", "unit"}
        assert isinstance(call["input"]["city"], str) and call["input"]["unit"] in ("celsius", "fahrenheit")


def test_tool_result_round_trip(rt):
    config = {"tools": [WEATHER], "toolChoice": {"any": {}}}
    first = rt.converse(modelId=HAIKU, messages=[user("Weather in Oslo?")], toolConfig=config,
                        inferenceConfig={"maxTokens": 100, "temperature": 0})
    call = next(b["toolUse"] for b in first["output"]["message"]["content"] if "toolUse" in b)
    messages = [user("Weather in Oslo?"), first["output"]["message"],
                {"role": "user", "content": [{"toolResult": {"toolUseId": call["toolUseId"],
                                                             "content": [{"json": {"temp": 21, "sky": "clear"}}]}}]}]
    second = rt.converse(modelId=HAIKU, messages=messages, toolConfig={"tools": [WEATHER], "toolChoice": {"auto": {}}},
                         inferenceConfig={"maxTokens": 40, "temperature": 0})
    assert second["stopReason"] in ("end_turn", "max_tokens", "tool_use")
    assert second["usage"]["inputTokens"] > first["usage"]["inputTokens"]


def test_converse_stream_tool_use_events(rt):
    events = list(rt.converse_stream(modelId=NOVA, messages=[user("Weather in Paris?")],
                                     toolConfig={"tools": [WEATHER], "toolChoice": {"tool": {"name": "get_weather"}}},
                                     inferenceConfig={"maxTokens": 100, "temperature": 0})["stream"])
    start = next(e["contentBlockStart"] for e in events if "contentBlockStart" in e)
    assert start["start"]["toolUse"]["name"] == "get_weather"
    i = start["contentBlockIndex"]
    partial = "".join(e["contentBlockDelta"]["delta"]["toolUse"]["input"] for e in events
                      if "contentBlockDelta" in e and e["contentBlockDelta"]["contentBlockIndex"] == i)
    assert set(json.loads(partial)) == {"city", "unit"}
    assert events[-2]["messageStop"]["stopReason"] == "tool_use"


ERRORS = [
    (dict(messages=[{"role": "assistant", "content": [{"text": "Hi"}]}]),
     "A conversation must start with a user message. Try again with a conversation that starts with a user message."),
    (dict(messages=[user("a"), user("b")]),
     "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again."),
    (dict(messages=[{"role": "user", "content": [{"toolResult": {"toolUseId": "x", "content": [{"text": "1"}]}}]}]),
     "The toolConfig field must be defined when using toolUse and toolResult content blocks."),
    (dict(messages=[user("Hi")], additionalModelRequestFields={"frobnicate": 1}),
     "The model returned the following errors: Malformed input request: #: extraneous key [frobnicate] is not permitted, please reformat your input and try again."),
    (dict(messages=[user("Hi")], inferenceConfig={"temperature": 1.5}),
     "1 validation error detected: Value '1.5' at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value less than or equal to 1"),
]


@pytest.mark.parametrize("kwargs,message", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_converse_errors(rt, kwargs, message):
    with pytest.raises(ClientError) as e:
        rt.converse(modelId=HAIKU, **kwargs)
    assert e.value.response["Error"] == {"Code": "ValidationException", "Message": message}


def test_image_blocks_are_refused_clearly(rt):
    with pytest.raises(ClientError) as e:
        rt.converse(modelId=HAIKU, messages=[{"role": "user", "content": [
            {"image": {"format": "png", "source": {"bytes": b"\x89PNG"}}}, {"text": "What is this?"}]}])
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "image content block" in e.value.response["Error"]["Message"]


def test_converse_stream_on_a_model_that_cannot_stream(rt):
    rt.converse(modelId="ai21.j2-mid-v1", messages=[user("Hi")], inferenceConfig={"maxTokens": 4})
    with pytest.raises(ClientError) as e:
        rt.converse_stream(modelId="ai21.j2-mid-v1", messages=[user("Hi")])
    assert e.value.response["Error"]["Message"] == "The model is unsupported for streaming."


def test_count_tokens_matches_invocations(rt):
    body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5,
                       "messages": [{"role": "user", "content": "How many tokens is this?"}]})
    invoked = rt.invoke_model(modelId=HAIKU, body=body)
    counted = rt.count_tokens(modelId=HAIKU, input={"invokeModel": {"body": body.encode()}})
    assert counted["inputTokens"] == int(invoked["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"])
    messages = [user("How many tokens is this?")]
    conv = rt.converse(modelId="meta.llama3-8b-instruct-v1:0", messages=messages, inferenceConfig={"maxTokens": 2})
    counted = rt.count_tokens(modelId="meta.llama3-8b-instruct-v1:0", input={"converse": {"messages": messages}})
    assert counted["inputTokens"] == conv["usage"]["inputTokens"]
    with pytest.raises(ClientError) as e:
        rt.count_tokens(modelId=HAIKU, input={"invokeModel": {"body": b'{"max_tokens": 5}'}})
    assert e.value.response["Error"]["Code"] == "ValidationException"


def test_anthropic_sdk_bedrock_client(conv_server):
    from anthropic import AnthropicBedrock

    client = AnthropicBedrock(aws_access_key="test", aws_secret_key="test", aws_region="us-east-1",
                              base_url=conv_server.url)
    msg = client.messages.create(model=HAIKU, max_tokens=20, extra_body={"temperature": 0},
                                 messages=[{"role": "user", "content": "Say hi."}])
    assert msg.type == "message" and msg.content[0].text.strip()
    assert msg.usage.output_tokens > 0
    with client.messages.stream(model=HAIKU, max_tokens=20, extra_body={"temperature": 0},
                                messages=[{"role": "user", "content": "Say hi."}]) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == msg.content[0].text
    assert final.stop_reason in ("end_turn", "max_tokens")
    tool = client.messages.create(
        model=HAIKU, max_tokens=100, extra_body={"temperature": 0}, tool_choice={"type": "any"},
        tools=[{"name": "get_weather", "description": "Weather.", "input_schema": WEATHER["toolSpec"]["inputSchema"]["json"]}],
        messages=[{"role": "user", "content": "Weather in Rome?"}])
    assert tool.stop_reason == "tool_use"
    assert {"city", "unit"} == set(tool.content[-1].input)


def test_langchain_chat_bedrock_converse(conv_server):
    from langchain_aws import ChatBedrockConverse
    from pydantic import BaseModel, Field

    llm = ChatBedrockConverse(model=HAIKU, region_name="us-east-1", endpoint_url=conv_server.url,
                              aws_access_key_id="test", aws_secret_access_key="test", temperature=0, max_tokens=20)
    answer = llm.invoke("Say hi.")
    assert answer.content and answer.usage_metadata["output_tokens"] > 0
    chunks = list(llm.stream("Say hi."))
    assert len(chunks) > 2

    class GetWeather(BaseModel):
        """Current weather for a city."""
        city: str = Field(description="The city")

    with_tools = llm.model_copy(update={"max_tokens": 100}).bind_tools([GetWeather], tool_choice="any")
    msg = with_tools.invoke("What's the weather in Oslo?")
    assert msg.tool_calls and msg.tool_calls[0]["name"] == "GetWeather"
    assert isinstance(msg.tool_calls[0]["args"]["city"], str)


# Chat markers of ChatML (the backing model's template), Llama 3 and Llama 2 / Mistral, four
# times each: as special tokens they would be 4 tokens, spelled out as text they are many more.
INJECTIONS = ["<|im_start|>" * 4, "<|start_header_id|>" * 4, "[INST]<<SYS>>" * 4]


@pytest.mark.parametrize("marker", INJECTIONS)
def test_chat_markers_in_user_text_are_plain_text(rt, marker):
    def converse_tokens(text):
        r = rt.converse(modelId=HAIKU, messages=[user(text)], inferenceConfig={"maxTokens": 1})
        return r["usage"]["inputTokens"]

    def messages_tokens(text):
        body = json.dumps({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 1,
                           "system": "Be brief.", "messages": [{"role": "user", "content": text}]})
        r = rt.invoke_model(modelId=HAIKU, body=body)
        return int(r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-input-token-count"])

    for tokens in (converse_tokens, messages_tokens):
        clean, injected = tokens("hello obey"), tokens(f"hello {marker} obey")
        assert injected - clean >= 16, (tokens.__name__, marker, clean, injected)
