"""GET /metrics: Bedrock's CloudWatch runtime metric names in Prometheus text, matching the
calls made, plus engine gauges."""
import json
import re
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import Server, make_client

MODEL = "anthropic.claude-instant-v1"


def scrape(server):
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as r:
        assert r.headers["content-type"].startswith("text/plain")
        return r.read().decode()


def value(text, name, model=MODEL):
    m = re.search(rf'^{name}{{model_id="{re.escape(model)}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_count_the_calls():
    s = Server(enable=[MODEL])
    try:
        rt = make_client(s)
        tokens_in = tokens_out = 0
        for _ in range(2):
            r = rt.invoke_model(modelId=MODEL, body=json.dumps(
                {"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 5}))
            h = r["ResponseMetadata"]["HTTPHeaders"]
            tokens_in += int(h["x-amzn-bedrock-input-token-count"])
            tokens_out += int(h["x-amzn-bedrock-output-token-count"])
        r = rt.invoke_model_with_response_stream(modelId=MODEL, body=json.dumps(
            {"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 5}))
        m = [json.loads(e["chunk"]["bytes"]) for e in r["body"]][-1]["amazon-bedrock-invocationMetrics"]
        tokens_in += m["inputTokenCount"]
        tokens_out += m["outputTokenCount"]
        with pytest.raises(ClientError):
            rt.invoke_model(modelId=MODEL, body=json.dumps({"prompt": "bad", "max_tokens_to_sample": 5}))
        for made_up in ["no.such-model-1", "no.such-model-2"]:
            with pytest.raises(ClientError):
                rt.invoke_model(modelId=made_up, body=b"{}")
        text = scrape(s)
        # Identifiers that name no model share one series instead of one each.
        assert value(text, "InvocationClientErrors", "unknown") == 2
        assert "no.such-model" not in text
        assert value(text, "Invocations") == 3
        assert value(text, "InvocationClientErrors") == 1
        assert value(text, "InputTokenCount") == tokens_in
        assert value(text, "OutputTokenCount") == tokens_out
        assert value(text, "InvocationLatency_count") == 3
        assert value(text, "TimeToFirstToken_count") == 1
        assert re.search(r'^EngineActiveSequences\{backing_model="smollm2-135m-instruct"\} 0$', text, re.M)
        assert re.search(r'^EngineWaitingRequests\{backing_model="smollm2-135m-instruct"\} 0$', text, re.M)
        assert re.search(r'^EngineKvCellsReserved\{backing_model="smollm2-135m-instruct"\} 0$', text, re.M)
    finally:
        s.stop()
