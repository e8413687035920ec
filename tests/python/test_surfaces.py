"""Bedrock's OpenAI and Anthropic paths with their own SDKs (openai, anthropic's plain
`Anthropic` client) and curl's SigV4, against the real server and model: shapes, streams,
tools, structured output, errors, and one request made three ways."""
import json
import subprocess

import pytest

from conftest import Server, make_client

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
NOVA = "us.amazon.nova-micro-v1:0"
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    # Bounded, so that a constrained call always fits the token budget.
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 40}}, "required": ["city"]},
}}


@pytest.fixture(scope="module")
def surfaces():
    s = Server(enable=[HAIKU, "amazon.nova-micro-v1:0", "meta.llama3-8b-instruct-v1:0"])
    s.cli("users", "create", "sdk-user")
    created = json.loads(s.cli("keys", "create", "--user", "sdk-user", "--bedrock-api-key"))
    s.api_key = created["ServiceSpecificCredential"]["ServiceCredentialSecret"]
    yield s
    s.stop()


@pytest.fixture(scope="module")
def openai_client(surfaces):
    from openai import OpenAI

    return OpenAI(base_url=surfaces.url + "/openai/v1", api_key=surfaces.api_key, max_retries=0)


@pytest.fixture(scope="module")
def anthropic_client(surfaces):
    from anthropic import Anthropic

    return Anthropic(base_url=surfaces.url + "/anthropic", api_key=surfaces.api_key, max_retries=0)


def test_openai_chat_and_stream(openai_client):
    r = openai_client.chat.completions.create(
        model=NOVA, max_completion_tokens=12, temperature=0,
        messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a colour."}])
    assert r.object == "chat.completion" and r.model == NOVA
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    chunks = list(openai_client.chat.completions.create(
        model=NOVA, max_completion_tokens=12, temperature=0, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Name a colour."}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == r.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == r.usage.completion_tokens


def test_openai_tool_call_and_json_schema(openai_client):
    r = openai_client.chat.completions.create(
        model=NOVA, max_completion_tokens=200, temperature=0, tools=[WEATHER], tool_choice="required",
        messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments)["city"], str)
    follow = openai_client.chat.completions.create(
        model=NOVA, max_completion_tokens=20, tools=[WEATHER], tool_choice="none",
        messages=[{"role": "user", "content": "What is the weather in Paris?"},
                  {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                  {"role": "tool", "tool_call_id": call.id, "content": "18 degrees, sunny"}])
    assert follow.choices[0].message.content is not None

    schema = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 40}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    r = openai_client.chat.completions.create(
        model=NOVA, max_completion_tokens=200, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": True}},
        messages=[{"role": "user", "content": "Invent a person."}])
    person = json.loads(r.choices[0].message.content)
    assert set(person) == {"name", "age"} and isinstance(person["age"], int)


def test_openai_errors_and_models(openai_client, surfaces):
    import openai

    with pytest.raises(openai.BadRequestError) as e:
        openai_client.chat.completions.create(model="no.such-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 400 and e.value.body["code"] == "ValidationException"
    with pytest.raises(openai.PermissionDeniedError) as e:
        openai.OpenAI(base_url=surfaces.url + "/openai/v1", api_key="sk-not-bedrock", max_retries=0).chat.completions.create(
            model=NOVA, messages=[{"role": "user", "content": "x"}])
    assert "Invalid API Key format" in e.value.message
    ids = [m.id for m in openai_client.models.list()]
    assert "amazon.nova-micro-v1:0" in ids and HAIKU in ids
    assert "amazon.titan-embed-text-v2:0" not in ids and "mistral.mistral-7b-instruct-v0:2" not in ids


def test_anthropic_sdk_on_the_anthropic_path(anthropic_client):
    import anthropic

    m = anthropic_client.messages.create(model=HAIKU, max_tokens=12, system="Answer briefly.",
                                         messages=[{"role": "user", "content": "Name a colour."}])
    assert m.type == "message" and m.content[0].type == "text" and m.usage.output_tokens > 0
    with anthropic_client.messages.stream(model=HAIKU, max_tokens=12, system="Answer briefly.",
                                          messages=[{"role": "user", "content": "Name a colour."}]) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.usage.output_tokens > 0 and streamed == "".join(b.text for b in final.content if b.type == "text")
    tool = {"name": "get_weather", "description": "Current weather for a city.",
            "input_schema": WEATHER["function"]["parameters"]}
    m = anthropic_client.messages.create(model=HAIKU, max_tokens=200, tools=[tool], tool_choice={"type": "any"},
                                         extra_body={"temperature": 0},
                                         messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert m.stop_reason == "tool_use"
    use = next(b for b in m.content if b.type == "tool_use")
    assert use.name == "get_weather" and isinstance(use.input["city"], str)
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic_client.messages.create(model="meta.llama3-8b-instruct-v1:0", max_tokens=5,
                                         messages=[{"role": "user", "content": "x"}])
    assert "isn't supported on this route" in str(e.value)


def test_one_request_three_ways_same_text_and_tokens(openai_client, anthropic_client, surfaces):
    system, question = "Answer in one short sentence.", "What is the capital of France?"
    # Deterministic calls: the same bytes whatever the KV cache held before.
    alone = {"X-Outcrop-Deterministic": "true"}
    boto = make_client(surfaces)

    def add_header(request, **_):
        request.headers["X-Outcrop-Deterministic"] = "true"

    boto.meta.events.register("before-sign.bedrock-runtime.*", add_header)
    converse = boto.converse(
        modelId=HAIKU, system=[{"text": system}], messages=[{"role": "user", "content": [{"text": question}]}],
        inferenceConfig={"maxTokens": 24, "temperature": 0})
    chat = openai_client.chat.completions.create(
        model=HAIKU, max_completion_tokens=24, temperature=0, extra_headers=alone,
        messages=[{"role": "system", "content": system}, {"role": "user", "content": question}])
    message = anthropic_client.messages.create(model=HAIKU, max_tokens=24, extra_body={"temperature": 0}, system=system,
                                               extra_headers=alone,
                                               messages=[{"role": "user", "content": question}])
    texts = [converse["output"]["message"]["content"][0]["text"], chat.choices[0].message.content, message.content[0].text]
    assert texts[0] == texts[1] == texts[2], texts
    inputs = [converse["usage"]["inputTokens"], chat.usage.prompt_tokens, message.usage.input_tokens]
    outputs = [converse["usage"]["outputTokens"], chat.usage.completion_tokens, message.usage.output_tokens]
    assert len(set(inputs)) == 1 and len(set(outputs)) == 1, (inputs, outputs)


def test_curl_with_sigv4(surfaces):
    body = json.dumps({"model": NOVA, "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]})
    r = subprocess.run(["curl", "-sS", "--aws-sigv4", "aws:amz:us-east-1:bedrock", "--user", "test:test",
                        "-H", "content-type: application/json", "--data", body,
                        surfaces.url + "/openai/v1/chat/completions"], capture_output=True, text=True, timeout=60)
    answer = json.loads(r.stdout)
    assert answer["object"] == "chat.completion", answer


def test_openai_responses(openai_client):
    r = openai_client.responses.create(model=NOVA, instructions="Answer briefly.", input="Name a colour.",
                                       max_output_tokens=16, temperature=0)
    assert r.status in ("completed", "incomplete") and r.output_text
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    events = list(openai_client.responses.create(model=NOVA, instructions="Answer briefly.", input="Name a colour.",
                                                 max_output_tokens=16, temperature=0, stream=True))
    assert events[0].type == "response.created"
    assert events[-1].type in ("response.completed", "response.incomplete")
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == r.output_text

    tool = {"type": "function", "name": "get_weather", "description": "Current weather for a city.",
            "parameters": WEATHER["function"]["parameters"]}
    r = openai_client.responses.create(model=NOVA, input="What is the weather in Paris?", tools=[tool],
                                       tool_choice="required", max_output_tokens=200, temperature=0)
    call = next(o for o in r.output if o.type == "function_call")
    assert call.name == "get_weather" and isinstance(json.loads(call.arguments)["city"], str)
    follow = openai_client.responses.create(model=NOVA, tools=[tool], tool_choice="none", max_output_tokens=20, input=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees, sunny"},
    ])
    assert follow.output_text is not None
