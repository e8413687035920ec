"""The 2025-2026 runtime fields through boto3, the anthropic SDK and langchain-aws against the
real binary: structured output (Converse `outputConfig`, Messages `output_config.format`,
strict tools, langchain's json_schema method) on the real model, service tiers and latency
echoed, request metadata, documents, guardrails refused by name, the context-window stop
reason, and reasoning blocks from a scripted reasoning model."""
import base64
import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, EventStreamError

from conftest import Server, make_client

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "amazon.nova-micro-v1:0"
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "role": {"type": "string", "enum": ["engineer", "doctor", "artist"]},
    },
    "required": ["name", "age", "role"],
    "additionalProperties": False,
}
OUTPUT_CONFIG = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
    "schema": json.dumps(PERSON), "name": "person", "description": "A person."}}}}


def user(text):
    return {"role": "user", "content": [{"text": text}]}


def is_person(value):
    return (set(value) == {"name", "age", "role"} and isinstance(value["name"], str)
            and len(value["name"]) <= 20 and isinstance(value["age"], int) and 0 <= value["age"] <= 120
            and value["role"] in PERSON["properties"]["role"]["enum"])


@pytest.fixture(scope="module")
def srv():
    s = Server(config='[access]\nmode = "open"\n', enable=[])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def rt(srv):
    return make_client(srv)


def error_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]


def test_converse_output_config_answers_json_for_the_schema(rt):
    r = rt.converse(modelId=HAIKU, messages=[user("Invent a person.")], outputConfig=OUTPUT_CONFIG,
                    inferenceConfig={"maxTokens": 200, "temperature": 0})
    assert is_person(json.loads(r["output"]["message"]["content"][0]["text"]))
    assert r["stopReason"] == "end_turn"


def test_converse_stream_output_config(rt):
    events = rt.converse_stream(modelId=NOVA, messages=[user("Describe a doctor.")], outputConfig=OUTPUT_CONFIG,
                                inferenceConfig={"maxTokens": 200})["stream"]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert is_person(json.loads(text))


def test_messages_output_config_format(rt):
    body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 200,
            "messages": [{"role": "user", "content": "Invent an artist."}],
            "output_config": {"format": {"type": "json_schema", "schema": PERSON}}}
    r = json.loads(rt.invoke_model(modelId=HAIKU, body=json.dumps(body))["body"].read())
    assert is_person(json.loads(r["content"][0]["text"]))
    chunks = rt.invoke_model_with_response_stream(modelId=HAIKU, body=json.dumps(body))["body"]
    events = [json.loads(c["chunk"]["bytes"]) for c in chunks]
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert is_person(json.loads(text))


def test_strict_tools_call_with_valid_input(rt):
    tool = {"toolSpec": {"name": "save_person", "description": "Saves a person.", "strict": True,
                         "inputSchema": {"json": PERSON}}}
    r = rt.converse(modelId=HAIKU, messages=[user("Save a person called Ada.")], inferenceConfig={"maxTokens": 200},
                    toolConfig={"tools": [tool], "toolChoice": {"tool": {"name": "save_person"}}})
    assert r["stopReason"] == "tool_use"
    assert is_person(r["output"]["message"]["content"][-1]["toolUse"]["input"])


@pytest.mark.parametrize("schema,named", [
    ({"type": "object", "properties": {"a": {"not": {"type": "string"}}}}, "'not' at #/properties/a"),
    ({"type": "array", "items": {"type": "string"}, "uniqueItems": True}, "'uniqueItems'"),
    ({"type": "string", "format": "email"}, "'email'"),
])
def test_schemas_the_grammar_cannot_enforce_are_refused_by_keyword(rt, schema, named):
    config = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": json.dumps(schema)}}}}
    code, message = error_of(lambda: rt.converse(modelId=HAIKU, messages=[user("x")], outputConfig=config))
    assert code == "ValidationException" and named in message
    tool = {"toolSpec": {"name": "t", "strict": True, "inputSchema": {"json": schema}}}
    code, message = error_of(lambda: rt.converse(modelId=HAIKU, messages=[user("x")], toolConfig={"tools": [tool]}))
    assert code == "ValidationException" and named in message


def test_output_config_errors(rt):
    bad = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": "{not json"}}}}
    code, message = error_of(lambda: rt.converse(modelId=HAIKU, messages=[user("x")], outputConfig=bad))
    assert code == "ValidationException" and "not valid JSON" in message


def test_langchain_with_structured_output_json_schema(srv):
    from langchain_aws import ChatBedrockConverse
    from pydantic import BaseModel, Field

    class City(BaseModel):
        """A city and its country."""
        name: str = Field(description="The city", max_length=20)
        country: str = Field(description="Its country", max_length=20)

    llm = ChatBedrockConverse(model=HAIKU, region_name="us-east-1", endpoint_url=srv.url,
                              aws_access_key_id="test", aws_secret_access_key="test", temperature=0, max_tokens=100)
    city = llm.with_structured_output(City, method="json_schema").invoke("Name a city in France.")
    assert isinstance(city, City) and city.name and city.country


def test_service_tiers_are_validated_and_echoed(rt):
    r = rt.converse(modelId=HAIKU, messages=[user("Hi")], inferenceConfig={"maxTokens": 3},
                    serviceTier={"type": "flex"}, performanceConfig={"latency": "optimized"})
    assert r["serviceTier"] == {"type": "flex"}
    assert r["performanceConfig"] == {"latency": "optimized"}
    events = list(rt.converse_stream(modelId=HAIKU, messages=[user("Hi")], inferenceConfig={"maxTokens": 3},
                                     serviceTier={"type": "priority"})["stream"])
    assert events[-1]["metadata"]["serviceTier"] == {"type": "priority"}
    plain = rt.converse(modelId=HAIKU, messages=[user("Hi")], inferenceConfig={"maxTokens": 3})
    assert "serviceTier" not in plain
    code, message = error_of(lambda: rt.converse(modelId=HAIKU, messages=[user("Hi")], serviceTier={"type": "gold"}))
    assert code == "ValidationException" and "[reserved, priority, default, flex]" in message


def test_invoke_model_tier_header_is_echoed(rt):
    body = json.dumps({"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 3})
    r = rt.invoke_model(modelId="anthropic.claude-v2", body=body, serviceTier="priority",
                        performanceConfigLatency="optimized")
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-service-tier"] == "priority"
    assert headers["x-amzn-bedrock-performanceconfig-latency"] == "optimized"
    code, _ = error_of(lambda: rt.invoke_model(modelId="anthropic.claude-v2", body=body, serviceTier="gold"))
    assert code == "ValidationException"


def test_text_documents_reach_the_model_and_binary_ones_are_refused(rt):
    doc = {"document": {"format": "txt", "name": "Notes", "source": {"bytes": b"The launch code word is AUBERGINE."}}}
    ask = {"role": "user", "content": [doc, {"text": "What is the code word?"}]}
    with_doc = rt.count_tokens(modelId=HAIKU, input={"converse": {"messages": [ask]}})["inputTokens"]
    without = rt.count_tokens(modelId=HAIKU, input={"converse": {"messages": [user("What is the code word?")]}})["inputTokens"]
    assert with_doc > without + 8
    r = rt.converse(modelId=HAIKU, messages=[ask], inferenceConfig={"maxTokens": 5})
    assert r["output"]["message"]["content"][0]["text"] is not None
    pdf = {"document": {"format": "pdf", "name": "Report", "source": {"bytes": b"%PDF-1.7"}}}
    code, message = error_of(lambda: rt.converse(modelId=HAIKU, messages=[{"role": "user", "content": [pdf, {"text": "Sum up."}]}]))
    assert code == "ValidationException" and "cannot read pdf documents" in message


def test_guardrails_are_refused_by_name_never_ignored(rt):
    code, message = error_of(lambda: rt.converse(
        modelId=HAIKU, messages=[user("Hi")],
        guardrailConfig={"guardrailIdentifier": "gr-abc123", "guardrailVersion": "1"}))
    assert code == "ValidationException" and "gr-abc123 (version 1)" in message
    body = json.dumps({"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 3})
    code, message = error_of(lambda: rt.invoke_model(modelId="anthropic.claude-v2", body=body,
                                                     guardrailIdentifier="gr-xyz", guardrailVersion="DRAFT"))
    assert code == "ValidationException" and "gr-xyz" in message


def test_the_context_window_stop_reason():
    # A 64-token window: the list (about 400 tokens) cannot fit.
    s = Server(config='[access]\nmode = "open"\n[engine]\ncontext_tokens = 64\n', enable=[])
    try:
        r = make_client(s).converse(modelId=HAIKU, messages=[user("List the numbers from 1 to 100, one per line.")],
                                    inferenceConfig={"maxTokens": 1000, "temperature": 0})
        assert r["stopReason"] == "model_context_window_exceeded"
        assert r["usage"]["inputTokens"] + r["usage"]["outputTokens"] == 64
    finally:
        s.stop()


# A reasoning model, scripted: it thinks between <think> tags, then answers.
REASONING_SCRIPT = """
[[rule]]
contains = "2+2"
reply = { text = "<think>\\nTwo and two make four.\\n</think>\\n\\nThe answer is 4." }
"""


@pytest.fixture(scope="module")
def thinker(tmp_path_factory):
    script = tmp_path_factory.mktemp("reasoning") / "reasoning.toml"
    script.write_text(REASONING_SCRIPT)
    config = ('[access]\nmode = "open"\n'
              f'[backing_models.smollm2-135m-instruct]\nengine = "script"\nscript = "{script}"\n')
    s = Server(config=config, enable=[])
    yield s
    s.stop()


THINKING = {"thinking": {"type": "enabled", "budget_tokens": 1024}}


def test_reasoning_blocks_when_asked_and_never_in_the_text(thinker):
    rt = make_client(thinker)
    r = rt.converse(modelId=HAIKU, messages=[user("What is 2+2?")], inferenceConfig={"maxTokens": 2000},
                    additionalModelRequestFields=THINKING)
    reasoning, text = r["output"]["message"]["content"]
    assert reasoning["reasoningContent"]["reasoningText"]["text"] == "Two and two make four."
    assert reasoning["reasoningContent"]["reasoningText"]["signature"]
    assert text == {"text": "The answer is 4."}
    plain = rt.converse(modelId=HAIKU, messages=[user("What is 2+2?")])
    assert plain["output"]["message"]["content"] == [{"text": "The answer is 4."}]

    # The reasoning goes back with its signature; a changed one is refused.
    history = [user("What is 2+2?"), r["output"]["message"], user("And 2+2 again?")]
    again = rt.converse(modelId=HAIKU, messages=history, inferenceConfig={"maxTokens": 2000},
                        additionalModelRequestFields=THINKING)
    assert again["output"]["message"]["content"][-1] == {"text": "The answer is 4."}
    history[1]["content"][0]["reasoningContent"]["reasoningText"]["text"] = "Two and two make five."
    code, message = error_of(lambda: rt.converse(modelId=HAIKU, messages=history))
    assert code == "ValidationException" and "Invalid `signature`" in message


def test_reasoning_in_streams_and_the_messages_api(thinker):
    rt = make_client(thinker)
    events = list(rt.converse_stream(modelId=NOVA, messages=[user("2+2?")], inferenceConfig={"maxTokens": 2000},
                                     additionalModelRequestFields={"reasoningConfig": {"type": "enabled"}})["stream"])
    deltas = [e["contentBlockDelta"] for e in events if "contentBlockDelta" in e]
    thought = "".join(d["delta"]["reasoningContent"].get("text", "") for d in deltas if "reasoningContent" in d["delta"])
    assert thought == "Two and two make four."
    assert any("signature" in d["delta"].get("reasoningContent", {}) for d in deltas)
    assert "".join(d["delta"].get("text", "") for d in deltas) == "The answer is 4."
    assert {d["contentBlockIndex"] for d in deltas if "text" in d["delta"]} == {1}

    import anthropic
    client = anthropic.AnthropicBedrock(aws_access_key="test", aws_secret_key="test", aws_region="us-east-1",
                                        base_url=thinker.url)
    message = client.messages.create(model=HAIKU, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                                     messages=[{"role": "user", "content": "2+2?"}])
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "Two and two make four." and message.content[0].signature
    with client.messages.stream(model=HAIKU, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                                messages=[{"role": "user", "content": "2+2?"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].thinking == "Two and two make four." and final.content[1].text == "The answer is 4."
    follow_up = client.messages.create(model=HAIKU, max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                                       messages=[{"role": "user", "content": "2+2?"},
                                                 {"role": "assistant", "content": message.content},
                                                 {"role": "user", "content": "Sure about 2+2?"}])
    assert follow_up.content[-1].text == "The answer is 4."
    with pytest.raises(anthropic.BadRequestError) as e:
        client.messages.create(model=HAIKU, max_tokens=1000, thinking={"type": "enabled", "budget_tokens": 1024},
                               messages=[{"role": "user", "content": "2+2?"}])
    assert "max_tokens" in str(e.value)
