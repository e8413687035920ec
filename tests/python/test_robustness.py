"""No input may panic the server: a seeded stream of malformed but signed requests must each
get a Bedrock-shaped 4xx, and the server must keep serving."""
import json
import random

from helpers import signed

PATHS = ["/model/anthropic.claude-v2/invoke", "/model/anthropic.claude-v2/invoke-with-response-stream",
         "/model/anthropic.claude-v2%3A1/invoke", "/model/%ZZ/invoke", "/model/%C3%28/invoke",
         "/model/" + "a" * 3000 + "/invoke", "/foundation-models/%00", "/create-foundation-model-agreement",
         "/use-case-for-model-access", "/foundation-model-availability/anthropic.claude-v2"]
VALUES = [None, True, -1, 0, 2**63, -2**70, 1e308, 1.5, "", "\u0000", "\ud7ff\ue000", "💥" * 100,
          "\n\nHuman:", "\n\nAssistant:", [], {}, [1, "a"], {"a": {"b": []}}]
KEYS = ["prompt", "max_tokens_to_sample", "temperature", "top_p", "top_k", "stop_sequences",
        "anthropic_version", "offerToken", "modelId", "formData", "x"]


def random_body(rng):
    kind = rng.randrange(5)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    if kind == 1:
        return json.dumps(rng.choice(VALUES)).encode()
    body = {k: rng.choice(VALUES) for k in rng.sample(KEYS, rng.randrange(1, len(KEYS)))}
    if kind == 2:
        body["prompt"] = "\n\nHuman: " + "".join(rng.choice("ab \n:🦀\u0000") for _ in range(40)) + "\n\nAssistant:"
        body["max_tokens_to_sample"] = rng.choice([0, 1, 2])
    return json.dumps(body).encode()


def test_malformed_requests_never_break_the_server(server):
    rng = random.Random(20261125)
    statuses = []
    for _ in range(300):
        path = rng.choice(PATHS)
        method = rng.choice(["POST", "POST", "GET", "PUT"])
        status, headers, data = signed(server, method, path, random_body(rng))
        statuses.append(status)
        assert status < 500, (method, path, status, data[:200])
        if status >= 400:
            lower = {k.lower(): v for k, v in headers.items()}
            assert "x-amzn-errortype" in lower and "x-amzn-requestid" in lower, (path, status, headers)
            assert "message" in json.loads(data)
    assert any(s == 200 for s in statuses) and any(s == 400 for s in statuses)
    assert server.proc.poll() is None
    assert "panicked" not in server.logs()
