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


def test_connection_cap_and_header_read_timeout():
    """Connections beyond [limits] max_connections are closed at once; a request whose headers
    never finish is closed after header_read_timeout_secs; the server serves on."""
    import socket
    import time

    from conftest import Server, make_client

    s = Server(config="[access]\nmode = \"open\"\n[limits]\nmax_connections = 3\nheader_read_timeout_secs = 2\n", enable=[])
    try:
        held = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(3)]
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", s.port))
        extra.settimeout(5)
        assert extra.recv(1) == b"", "a fourth connection is closed"
        # The held ones send half a request and are closed by the header-read timeout.
        started = time.monotonic()
        for c in held:
            c.sendall(b"POST /model/x/invoke HTTP/1.1\r\nHost: a\r\n")
            c.settimeout(10)
        def closed(c):
            try:
                while c.recv(1024):
                    pass  # a 408 may come first
                return True
            except ConnectionResetError:
                return True
            except socket.timeout:
                return False

        assert all(closed(c) for c in held)
        assert time.monotonic() - started < 6
        # Room again: a normal client is served.
        r = make_client(s).converse(modelId="anthropic.claude-v2", messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                                    inferenceConfig={"maxTokens": 2})
        assert r["usage"]["outputTokens"] > 0
    finally:
        s.stop()


def test_an_unknown_key_is_refused_before_the_body_is_read(server):
    """Headers that name an unknown key (or carry a stale date) are answered at once: the
    server does not wait for, or buffer, a body it would refuse."""
    import socket
    import time

    def ask(key, date):
        c = socket.create_connection(("127.0.0.1", server.port))
        c.settimeout(5)
        c.sendall((
            "POST /model/anthropic.claude-v2/invoke HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nContent-Length: 20000000\r\n"
            f"X-Amz-Date: {date}\r\n"
            f"Authorization: AWS4-HMAC-SHA256 Credential={key}/{date[:8]}/us-east-1/bedrock/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64 + "\r\n\r\n").encode())
        started = time.monotonic()
        head = c.recv(4096).decode()
        c.close()
        return head, time.monotonic() - started

    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    head, took = ask("AKIANOSUCHKEY0000000", now)
    assert head.startswith("HTTP/1.1 403"), head
    assert "UnrecognizedClientException" in head and took < 2, (head, took)
    head, took = ask("test", "20200101T000000Z")
    assert head.startswith("HTTP/1.1 403") and "InvalidSignatureException" in head, head
    assert "Signature expired" in head and took < 2


def test_a_principal_is_held_to_its_concurrency_cap(tmp_path):
    """[limits] max_concurrent_requests_per_principal: a caller with that many calls running
    (a stream counts until it ends) is throttled; another caller is not; places free up as
    calls end."""
    import threading
    import time

    import pytest

    from botocore.exceptions import ClientError
    from conftest import Server, make_client

    rules = tmp_path / "slow.toml"
    rules.write_text('[[rule]]\nreply = { text = "a slow answer", ttft_ms = 1500 }\n')
    s = Server(config=f'[limits]\nmax_concurrent_requests_per_principal = 2\n[engine]\nscript = "{rules}"\n'
                      '[access]\nmode = "open"\n', enable=[])
    try:
        s.cli("users", "create", "bob")
        bob = json.loads(s.cli("keys", "create", "--user", "bob"))["AccessKey"]
        messages = [{"role": "user", "content": [{"text": "Hi"}]}]
        model = "anthropic.claude-v2"
        done = []

        def slow():
            stream = make_client(s).converse_stream(modelId=model, messages=messages)["stream"]
            done.append("".join(e["contentBlockDelta"]["delta"]["text"] for e in stream if "contentBlockDelta" in e))

        threads = [threading.Thread(target=slow) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.7)
        with pytest.raises(ClientError) as e:
            make_client(s).converse(modelId=model, messages=messages)
        assert e.value.response["Error"]["Code"] == "ThrottlingException"
        assert "at once" in e.value.response["Error"]["Message"]
        # Another caller has places of its own.
        other = make_client(s, key=bob["AccessKeyId"], secret=bob["SecretAccessKey"])
        assert other.converse(modelId=model, messages=messages)["output"]["message"]["content"][0]["text"]
        for t in threads:
            t.join(30)
        assert done == ["a slow answer"] * 2
        assert make_client(s).converse(modelId=model, messages=messages)["stopReason"]
    finally:
        s.stop()


def test_a_call_past_its_deadline_times_out(tmp_path):
    """[limits] request_timeout_secs: a call not answered in time ends with
    ModelTimeoutException (its generation cancelled); the server serves on."""
    import time

    import pytest
    from botocore.exceptions import ClientError
    from conftest import Server, make_client

    rules = tmp_path / "slow.toml"
    rules.write_text('[[rule]]\ncontains = "slow"\nreply = { text = "late", ttft_ms = 5000 }\n'
                     '[[rule]]\nreply = { text = "on time" }\n')
    s = Server(config=f'[limits]\nrequest_timeout_secs = 1\n[engine]\nscript = "{rules}"\n[access]\nmode = "open"\n',
               enable=[])
    try:
        began = time.time()
        with pytest.raises(ClientError) as e:
            make_client(s).converse(modelId="anthropic.claude-v2", messages=[{"role": "user", "content": [{"text": "slow"}]}])
        assert e.value.response["Error"]["Code"] == "ModelTimeoutException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 408
        assert time.time() - began < 4
        r = make_client(s).converse(modelId="anthropic.claude-v2", messages=[{"role": "user", "content": [{"text": "now"}]}])
        assert r["output"]["message"]["content"][0]["text"] == "on time"
    finally:
        s.stop()


SCHEMAS = [{"type": "object"}, {"type": "object", "properties": {"a": {"type": "string", "pattern": "(((("}}},
           {"type": "array", "items": {"$ref": "#/nope"}}, {"anyOf": []}, {"type": "object", "required": ["x"]},
           {"type": "string", "minLength": 5, "maxLength": 2}, {"enum": []}, {"type": ["integer", "null"]},
           {"type": "object", "properties": {"n": {"type": "integer", "minimum": 10, "maximum": 1}}},
           {"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, {"type": "number", "multipleOf": 0},
           {"not": {}}, {"type": "object", "additionalProperties": {"type": "object", "additionalProperties": {}}},
           "not a schema", None, 7, []]
HEADERS = [{}, {"X-Amzn-Bedrock-Service-Tier": "platinum"}, {"X-Amzn-Bedrock-Service-Tier": "flex"},
           {"X-Amzn-Bedrock-PerformanceConfig-Latency": "warp"}, {"X-Amzn-Bedrock-Request-Metadata": "{not json"},
           {"X-Amzn-Bedrock-Request-Metadata": json.dumps({"k" * 300: "v"})}, {"X-Outcrop-Deterministic": "maybe"},
           {"Content-Type": "text/plain"}, {"Accept": "image/png"}, {"X-Amzn-Bedrock-Trace": "ENABLED"}]


def nested(depth):
    """JSON nested `depth` levels, as text (too deep for Python's own encoder)."""
    return '{"a": [' * depth + '"x"' + ']}' * depth


def hostile_converse(rng):
    """A Converse-shaped body, valid but for a few odd parts: wrong types, odd tool and output
    schemas (which become grammars), deep nesting, odd sizes."""
    odd = lambda p: rng.random() < p
    text = rng.choice(["Hi", "Hi", "", "\u0000", "💥" * 50, "<tool_call>{\"name\": \"t\"}</tool_call>", "<|im_start|>system"])
    content = [{"text": text}]
    if odd(0.3):
        content = rng.choice([[], "plain", [{"image": {}}], [{"toolResult": {"toolUseId": 1}}],
                              [{"text": text}, {"cachePoint": {"type": "default"}}]])
    message = {"role": rng.choice([3, None, "system", "assistant"]) if odd(0.15) else "user", "content": content}
    body = {"messages": rng.choice([[], "x", [None], [message, message]]) if odd(0.15) else [message],
            "inferenceConfig": {"maxTokens": 4}}
    if odd(0.4):
        spec = {"name": rng.choice(["t", "t", "", "a" * 100, "with space"]), "inputSchema": {"json": rng.choice(SCHEMAS)}}
        body["toolConfig"] = {"tools": [{"toolSpec": spec}],
                              "toolChoice": rng.choice([{"auto": {}}, {"any": {}}, {"tool": {"name": "t"}}, {"tool": {}}, "x"])}
    if odd(0.25):
        body["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
            "schema": json.dumps(rng.choice(SCHEMAS)), "name": "out"}}}}
    if odd(0.25):
        body["inferenceConfig"] = {"maxTokens": rng.choice([-1, 0, 1, 3, 2**40, "3", None]),
                                   "temperature": rng.choice([-1, 0, 0.5, 9, "hot"]),
                                   "stopSequences": rng.choice([[], [""], ["a"] * 20, "x"])}
    text = json.dumps(body)
    if odd(0.1):
        text = text[:-1] + ', "system": [{"text": ' + nested(rng.choice([10, 200, 5000])) + "}]}"
    return text.encode()


def test_hostile_converse_requests_never_break_the_server(server):
    """300 more: Converse, ConverseStream and CountTokens bodies with odd tool and output
    schemas (which become grammars), wrong types, deep nesting, and odd headers."""
    rng = random.Random(20261205)
    paths = ["/model/anthropic.claude-v2/converse", "/model/anthropic.claude-v2/converse-stream",
             "/model/anthropic.claude-v2/count-tokens", "/model/us.amazon.nova-micro-v1%3A0/converse"]
    statuses = []
    for _ in range(300):
        path = rng.choice(paths)
        body = hostile_converse(rng)
        if path.endswith("count-tokens"):
            body = b'{"input": {"converse": ' + body + b"}}"
        status, headers, data = signed(server, "POST", path, body, headers=rng.choice(HEADERS))
        statuses.append(status)
        assert status < 500, (path, status, body[:300], data[:300])
        if status >= 400:
            assert "message" in json.loads(data), data[:200]
    assert statuses.count(200) > 30 and statuses.count(400) > 30, statuses
    assert server.proc.poll() is None
    assert "panicked" not in server.logs()
