"""Every model family's InvokeModel body and stream chunks, through boto3 against the real
backing model: shapes, token counts, stream == invoke at temperature 0, and each family's
validation errors."""
import json

import pytest
from botocore.exceptions import ClientError

from conftest import Server, make_client

Q = "What is the capital of France?"

# model id, a body at temperature 0 with a small token limit, the text of an answer, the text
# of a stream chunk
FAMILIES = {
    "anthropic-messages": (
        "anthropic.claude-3-haiku-20240307-v1:0",
        {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 24, "temperature": 0,
         "system": "Answer briefly.", "messages": [{"role": "user", "content": Q}]},
        lambda b: "".join(c["text"] for c in b["content"] if c["type"] == "text"),
        lambda c: c["delta"].get("text", "") if c["type"] == "content_block_delta" else "",
    ),
    "titan-text": (
        "amazon.titan-text-express-v1",
        {"inputText": f"User: {Q}\nBot:", "textGenerationConfig": {"maxTokenCount": 24, "temperature": 0}},
        lambda b: b["results"][0]["outputText"],
        lambda c: c["outputText"],
    ),
    "meta-llama3": (
        "meta.llama3-8b-instruct-v1:0",
        {"prompt": f"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{Q}<|eot_id|>"
                   "<|start_header_id|>assistant<|end_header_id|>\n\n", "max_gen_len": 24, "temperature": 0},
        lambda b: b["generation"],
        lambda c: c["generation"],
    ),
    "meta-llama2": (
        "meta.llama2-13b-chat-v1",
        {"prompt": f"<s>[INST] {Q} [/INST]", "max_gen_len": 24, "temperature": 0},
        lambda b: b["generation"],
        lambda c: c["generation"],
    ),
    "mistral": (
        "mistral.mistral-7b-instruct-v0:2",
        {"prompt": f"<s>[INST] {Q} [/INST]", "max_tokens": 24, "temperature": 0},
        lambda b: b["outputs"][0]["text"],
        lambda c: c["outputs"][0]["text"],
    ),
    "cohere": (
        "cohere.command-text-v14",
        {"prompt": Q, "max_tokens": 24, "temperature": 0, "stream": False},
        lambda b: b["generations"][0]["text"],
        lambda c: c.get("text", ""),
    ),
    "nova": (
        "us.amazon.nova-micro-v1:0",
        {"schemaVersion": "messages-v1", "system": [{"text": "Answer briefly."}],
         "messages": [{"role": "user", "content": [{"text": Q}]}],
         "inferenceConfig": {"maxTokens": 24, "temperature": 0}},
        lambda b: "".join(c.get("text", "") for c in b["output"]["message"]["content"]),
        lambda c: c.get("contentBlockDelta", {}).get("delta", {}).get("text", ""),
    ),
}

MODELS = sorted({m.split(".", 1)[1] if m.startswith("us.") else m for m, *_ in FAMILIES.values()}
                | {"ai21.j2-mid-v1", "anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic.claude-v2"})


@pytest.fixture(scope="module")
def fam_server():
    s = Server(enable=MODELS)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def rt(fam_server):
    return make_client(fam_server)


def invoke(rt, model_id, body):
    r = rt.invoke_model(modelId=model_id, body=json.dumps(body))
    return r, json.loads(r["body"].read())


def stream(rt, model_id, body):
    r = rt.invoke_model_with_response_stream(modelId=model_id, body=json.dumps(body))
    return [json.loads(e["chunk"]["bytes"]) for e in r["body"]]


def validation(rt, model_id, body):
    with pytest.raises(ClientError) as e:
        rt.invoke_model(modelId=model_id, body=json.dumps(body))
    assert e.value.response["Error"]["Code"] == "ValidationException"
    return e.value.response["Error"]["Message"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_invoke_and_stream_agree(rt, family):
    model_id, body, text_of, chunk_text = FAMILIES[family]
    r, answer = invoke(rt, model_id, body)
    headers = r["ResponseMetadata"]["HTTPHeaders"]
    out_tokens = int(headers["x-amzn-bedrock-output-token-count"])
    assert 0 < out_tokens <= 24
    text = text_of(answer)
    assert text.strip(), answer
    chunks = stream(rt, model_id, body)
    assert len(chunks) > 2
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == out_tokens
    assert metrics["inputTokenCount"] == int(headers["x-amzn-bedrock-input-token-count"])
    assert "".join(chunk_text(c) for c in chunks) == text


def test_anthropic_messages_shape(rt):
    model_id, body, *_ = FAMILIES["anthropic-messages"]
    _, b = invoke(rt, model_id, dict(body, stop_sequences=["Paris"]))
    assert b["type"] == "message" and b["role"] == "assistant" and b["id"].startswith("msg_bdrk_")
    assert b["model"] == "claude-3-haiku-20240307"
    assert b["stop_reason"] in ("end_turn", "max_tokens", "stop_sequence")
    if b["stop_reason"] == "stop_sequence":
        assert b["stop_sequence"] == "Paris"
    assert set(b["usage"]) >= {"input_tokens", "output_tokens"}
    chunks = stream(rt, model_id, body)
    types = [c["type"] for c in chunks]
    assert types[0] == "message_start" and types[1] == "content_block_start"
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert chunks[0]["message"]["usage"]["input_tokens"] == b["usage"]["input_tokens"]
    assert "amazon-bedrock-invocationMetrics" in chunks[-1]


def test_claude_v2_speaks_both_apis(rt):
    _, b = invoke(rt, "anthropic.claude-v2", {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 8,
                                             "messages": [{"role": "user", "content": "Hi"}]})
    assert b["type"] == "message"


def test_family_shapes(rt):
    _, b = invoke(rt, *FAMILIES["titan-text"][:2])
    assert set(b) == {"inputTextTokenCount", "results"}
    assert b["results"][0]["completionReason"] in ("FINISH", "LENGTH")
    _, b = invoke(rt, *FAMILIES["meta-llama3"][:2])
    assert b["stop_reason"] in ("stop", "length") and b["prompt_token_count"] > 5
    _, b = invoke(rt, *FAMILIES["mistral"][:2])
    assert b["outputs"][0]["stop_reason"] in ("stop", "length")
    _, b = invoke(rt, "cohere.command-text-v14", {"prompt": Q, "max_tokens": 5, "num_generations": 2})
    assert len(b["generations"]) == 2 and b["prompt"] == Q
    assert {g["finish_reason"] for g in b["generations"]} <= {"COMPLETE", "MAX_TOKENS"}
    chunks = stream(rt, "cohere.command-text-v14", {"prompt": Q, "max_tokens": 5, "stream": True})
    assert chunks[-1]["is_finished"] is True and all(c["is_finished"] is False for c in chunks[:-1])
    _, b = invoke(rt, "ai21.j2-mid-v1", {"prompt": Q, "maxTokens": 8, "temperature": 0})
    assert b["completions"][0]["finishReason"]["reason"] in ("endoftext", "length", "stop")
    assert b["prompt"]["text"] == Q
    nova = FAMILIES["nova"]
    _, b = invoke(rt, nova[0], nova[1])
    assert b["stopReason"] in ("end_turn", "max_tokens")
    assert b["usage"]["totalTokens"] == b["usage"]["inputTokens"] + b["usage"]["outputTokens"]
    chunks = stream(rt, nova[0], nova[1])
    assert list(chunks[0]) == ["messageStart"] and "metadata" in chunks[-1]


def test_ai21_does_not_stream(rt):
    with pytest.raises(ClientError) as e:
        rt.invoke_model_with_response_stream(modelId="ai21.j2-mid-v1", body=json.dumps({"prompt": Q}))
    err = e.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert err["Error"] == {"Code": "ValidationException", "Message": "The model is unsupported for streaming."}


VALIDATION = [
    ("anthropic.claude-3-haiku-20240307-v1:0", {"anthropic_version": "bedrock-2023-05-31", "messages": [{"role": "user", "content": "Hi"}]},
     'Malformed input request: #: subject must not be valid against schema {"required":["messages"]}#: required key [max_tokens] not found, please reformat your input and try again.'),
    ("anthropic.claude-3-haiku-20240307-v1:0", {"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 5},
     '"claude-3-haiku-20240307" is not supported on this API. Please use the Messages API instead.'),
    ("amazon.titan-text-express-v1", {"inputText": "Hi", "textGenerationConfig": {"maxTokens": 5}},
     "Malformed input request: #/textGenerationConfig: extraneous key [maxTokens] is not permitted, please reformat your input and try again."),
    ("meta.llama3-8b-instruct-v1:0", {"prompt": "Hi", "max_gen_len": 4096},
     "Malformed input request: #/max_gen_len: 4096 is not less or equal to 2048, please reformat your input and try again."),
    ("mistral.mistral-7b-instruct-v0:2", {"max_tokens": 5},
     "Malformed input request: #: required key [prompt] not found, please reformat your input and try again."),
    ("cohere.command-text-v14", {"prompt": "Hi", "max_tokens_to_sample": 5},
     "Malformed input request: #: extraneous key [max_tokens_to_sample] is not permitted, please reformat your input and try again."),
    ("ai21.j2-mid-v1", {"prompt": "Hi", "temperature": 2},
     "Malformed input request: #/temperature: 2 is not less or equal to 1, please reformat your input and try again."),
    ("us.amazon.nova-micro-v1:0", {"messages": [{"role": "assistant", "content": [{"text": "Hi"}]}]},
     "A conversation must start with a user message. Try again with a conversation that starts with a user message."),
]


@pytest.mark.parametrize("model_id,body,message", VALIDATION, ids=[v[0] for v in VALIDATION])
def test_validation_errors(rt, model_id, body, message):
    assert validation(rt, model_id, body) == message


def test_model_id_forms(rt):
    body = FAMILIES["mistral"][1]
    for form in ["mistral.mistral-7b-instruct-v0:2",
                 "arn:aws:bedrock:us-east-1::foundation-model/mistral.mistral-7b-instruct-v0:2"]:
        invoke(rt, form, body)
    claude = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]}
    for form in ["us.anthropic.claude-sonnet-4-5-20250929-v1:0", "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
                 "arn:aws:bedrock:us-east-1:000000000000:inference-profile/eu.anthropic.claude-sonnet-4-5-20250929-v1:0"]:
        invoke(rt, form, claude)
    # Offered only through inference profiles, as on Bedrock.
    assert validation(rt, "anthropic.claude-sonnet-4-5-20250929-v1:0", claude) == (
        "Invocation of model ID anthropic.claude-sonnet-4-5-20250929-v1:0 with on-demand throughput isn't "
        "supported. Retry your request with the ID or ARN of an inference profile that contains this model.")
    # A geography without a profile for the model is no model at all.
    assert validation(rt, "apac.anthropic.claude-opus-4-1-20250805-v1:0", claude) == "The provided model identifier is invalid."


def test_profile_needs_access_to_its_model(fam_server):
    rt = make_client(fam_server)
    with pytest.raises(ClientError) as e:
        rt.invoke_model(modelId="us.meta.llama3-1-8b-instruct-v1:0", body=json.dumps({"prompt": "Hi"}))
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"


def test_inference_profiles_on_the_control_plane(fam_server):
    import boto3
    bedrock = boto3.client("bedrock", endpoint_url=fam_server.url, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")
    profiles = [p for page in bedrock.get_paginator("list_inference_profiles").paginate(PaginationConfig={"PageSize": 7})
                for p in page["inferenceProfileSummaries"]]
    ids = {p["inferenceProfileId"] for p in profiles}
    assert "us.anthropic.claude-3-haiku-20240307-v1:0" in ids and "global.anthropic.claude-sonnet-4-5-20250929-v1:0" in ids
    assert len(ids) == len(profiles) > 7
    p = bedrock.get_inference_profile(inferenceProfileIdentifier="us.anthropic.claude-3-haiku-20240307-v1:0")
    assert p["type"] == "SYSTEM_DEFINED" and p["status"] == "ACTIVE"
    assert p["models"][0]["modelArn"].endswith("::foundation-model/anthropic.claude-3-haiku-20240307-v1:0")
    with pytest.raises(ClientError) as e:
        bedrock.get_inference_profile(inferenceProfileIdentifier="us.nothing-v1")
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    details = bedrock.get_foundation_model(modelIdentifier="anthropic.claude-sonnet-4-5-20250929-v1:0")["modelDetails"]
    assert details["inferenceTypesSupported"] == ["INFERENCE_PROFILE"]
