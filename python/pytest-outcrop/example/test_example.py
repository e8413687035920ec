"""An application's Bedrock code path, tested with pytest-outcrop: the happy path, a
throttled call that the application retries, and a stream that fails half-way."""
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


# --- the application under test -------------------------------------------------------------

def summarize(text, client=None):
    """Summarizes text with Claude, retrying throttled calls (botocore's standard mode)."""
    client = client or boto3.client("bedrock-runtime", config=Config(retries={"mode": "standard", "max_attempts": 3}))
    r = client.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": f"Summarize: {text}"}]}],
                        inferenceConfig={"maxTokens": 100})
    return r["output"]["message"]["content"][0]["text"]


def stream_summary(text):
    client = boto3.client("bedrock-runtime", config=Config(retries={"max_attempts": 1}))
    r = client.converse_stream(modelId=MODEL, messages=[{"role": "user", "content": [{"text": f"Summarize: {text}"}]}])
    return "".join(e["contentBlockDelta"]["delta"]["text"] for e in r["stream"] if "contentBlockDelta" in e)


# --- the tests ------------------------------------------------------------------------------

def test_summary(outcrop, outcrop_script):
    outcrop_script("""
        [[rule]]
        contains = "Summarize:"
        reply = { text = "A short summary." }
    """)
    assert summarize("a long text") == "A short summary."


def test_a_throttled_call_is_retried(outcrop, outcrop_script):
    outcrop_script("""
        [[rule]]
        times = 1
        reply = { fault = "ThrottlingException", message = "Too many requests, please wait before trying again." }

        [[rule]]
        reply = { text = "Summary after a retry." }
    """)
    assert summarize("a long text") == "Summary after a retry."


def test_throttling_without_retries_reaches_the_caller(outcrop, outcrop_script):
    outcrop_script("""
        [[rule]]
        reply = { fault = "ThrottlingException", message = "Too many requests." }
    """)
    client = boto3.client("bedrock-runtime", config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        summarize("a long text", client)
    assert e.value.response["Error"]["Code"] == "ThrottlingException"


def test_a_stream_that_breaks_half_way(outcrop, outcrop_script):
    outcrop_script("""
        [[rule]]
        reply = { fault = "ModelStreamErrorException", message = "Stream broke.", text = "one two three four", after_chunks = 2 }
    """)
    with pytest.raises(EventStreamError) as e:
        stream_summary("a long text")
    assert e.value.response["Error"]["Code"] == "modelStreamErrorException"
