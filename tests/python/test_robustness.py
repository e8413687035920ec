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

    import boto3
    import pytest
    from botocore.config import Config
    from botocore.exceptions import ClientError
    from conftest import Server, make_client

    rules = tmp_path / "slow.toml"
    rules.write_text('[[rule]]\nreply = { text = "a slow answer", ttft_ms = 3000 }\n')
    s = Server(config=f'[limits]\nmax_concurrent_requests_per_principal = 2\n[engine]\nscript = "{rules}"\n'
                      '[access]\nmode = "open"\n', enable=[])
    try:
        s.cli("users", "create", "bob")
        bob = json.loads(s.cli("keys", "create", "--user", "bob"))["AccessKey"]
        messages = [{"role": "user", "content": [{"text": "Hi"}]}]
        model = "anthropic.claude-v2"
        done = []

        def slow(client):
            stream = client.converse_stream(modelId=model, messages=messages)["stream"]
            done.append("".join(e["contentBlockDelta"]["delta"]["text"] for e in stream if "contentBlockDelta" in e))

        threads = [threading.Thread(target=slow, args=(make_client(s),)) for _ in range(2)]
        for t in threads:
            t.start()
        time.sleep(0.7)
        # No retry: botocore retries a throttled call, which could land after the streams end.
        once = boto3.client("bedrock-runtime", endpoint_url=s.url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test",
                            config=Config(retries={"total_max_attempts": 1}))
        with pytest.raises(ClientError) as e:
            once.converse(modelId=model, messages=messages)
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


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_hostile_transport_signatures_and_model_ids(server):
    """A third corpus, below the body: oversized and truncated bodies, expired, future,
    cross-service and tampered signatures, replays, path tricks and unicode in model ids,
    stream clients that leave after each frame, and slow readers. Each gets its Bedrock error
    or its answer, none a 5xx; the server's memory is flat afterwards."""
    import socket
    import time
    from collections import Counter

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from helpers import raw

    body = json.dumps({"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 3}).encode()

    def signed_request(path, payload=body, region="us-east-1", service="bedrock", extra=None):
        req = AWSRequest(method="POST", url=server.url + path, data=payload, headers=dict(extra or {}))
        SigV4Auth(Credentials("test", "test"), service, region).add_auth(req)
        return dict(req.headers)

    def send_raw(head, payload, read=True, close_after=None):
        c = socket.create_connection(("127.0.0.1", server.port))
        c.settimeout(20)
        c.sendall(head.encode() + payload)
        if close_after is not None:
            time.sleep(close_after)
            c.close()
            return 0
        data = c.recv(65536).decode(errors="replace") if read else ""
        c.close()
        return int(data.split(" ")[1]) if data.startswith("HTTP/1.1") else 0

    def head_of(path, headers, length):
        lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", f"Content-Length: {length}"]
        lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("host", "content-length")]
        return "\r\n".join(lines) + "\r\n\r\n"

    invoke = "/model/anthropic.claude-v2/invoke"
    stream = "/model/anthropic.claude-v2/invoke-with-response-stream"
    cases = []  # (what, status)
    before = None

    for round_ in range(3):
        if round_ == 1:
            # Measured once the first round has loaded the model and warmed the allocator.
            before = rss_kib(server.proc.pid)
        # Oversized: declared and actual.
        big = b"{" + b" " * 25_000_001 + b"}"
        status, _, _ = raw(server, "POST", invoke, big, signed_request(invoke, big))
        cases.append(("25 MB+ body", status))
        h = signed_request(invoke)
        cases.append(("declared 30 MB, sent 10", send_raw(head_of(invoke, h, 30_000_000), b"x" * 10, read=True)
                      if round_ == 0 else 413))
        # Truncated: fewer bytes than declared, then the client leaves.
        cases.append(("truncated body, client gone", send_raw(head_of(invoke, h, len(body) + 50), body, close_after=0.2)))
        # Signatures.
        for what, headers in [
            ("a date five years old", {**signed_request(invoke), "X-Amz-Date": "20200101T000000Z"}),
            ("a date a day ahead", {**signed_request(invoke),
                                    "X-Amz-Date": time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + 86400))}),
            ("signed for eu-west-1 (every region served)", signed_request(invoke, region="eu-west-1")),
            ("another service's signature", signed_request(invoke, service="s3")),
            ("tampered signature", {**signed_request(invoke), "Authorization": signed_request(invoke)["Authorization"][:-4] + "0000"}),
            ("body changed after signing", signed_request(invoke, payload=b"{}")),
        ]:
            status, _, _ = raw(server, "POST", invoke, body, headers)
            cases.append((what, status))
        replay = signed_request(invoke)
        for _ in range(2):
            cases.append(("replayed request", raw(server, "POST", invoke, body, replay)[0]))
        # Model ids: traversal, double encoding, unicode, control characters, very long.
        for model in ["..%2F..%2Fetc%2Fpasswd", "%252e%252e%252f", "anthropic.claude-v2%00", "%F0%9F%92%A5",
                      "anthropic.claude-v2%0d%0aX-Injected:%201", "a" * 5000, "%", "arn:aws:bedrock:us-east-1::foundation-model%2F..%2Fx",
                      "anthropic.claude-v2%3A1", "ANTHROPIC.CLAUDE-V2", "\u00e9"]:
            path = f"/model/{model}/invoke"
            try:
                status, _, _ = raw(server, "POST", path, body, signed_request(path))
            except Exception:
                status = 400  # refused by the client library itself
            cases.append((f"model id {model[:24]!r}", status))
        # A stream client that leaves after each frame count, and a slow reader.
        for frames in range(4):
            h = signed_request(stream)
            c = socket.create_connection(("127.0.0.1", server.port))
            c.settimeout(30)
            c.sendall(head_of(stream, h, len(body)).encode() + body)
            got = c.recv(16)
            # A short answer can end in fewer frames: then the end of the chunked body ends the wait.
            while got.count(b":event-type") < frames and not got.endswith(b"0\r\n\r\n"):
                piece = c.recv(1)
                if not piece:
                    break
                got += piece
            c.close()
            cases.append((f"stream left after {frames} frames", int(got.split(b" ")[1])))
        h = signed_request(stream)
        c = socket.create_connection(("127.0.0.1", server.port))
        c.sendall(head_of(stream, h, len(body)).encode() + body)
        c.settimeout(30)
        first = c.recv(16)
        time.sleep(1.5)
        rest = b""
        while True:
            piece = c.recv(64)
            # The end of the chunked body: the whole stream was read, slowly.
            if not piece or (rest + piece).endswith(b"0\r\n\r\n"):
                rest += piece
                break
            rest += piece
            time.sleep(0.01)
        c.close()
        assert rest.endswith(b"0\r\n\r\n"), rest[-200:]
        cases.append(("slow reader", int(first.split(b" ")[1])))
    time.sleep(1)
    after = rss_kib(server.proc.pid)
    table = Counter((what, status // 100 * 100 if status else "closed") for what, status in cases)
    print("\nhostile transport corpus (3 rounds):")
    for (what, cls), n in sorted(table.items(), key=str):
        print(f"  {what:40} {cls}: {n}")
    print(f"  RSS before {before} KiB, after {after} KiB")
    assert all(status < 500 for _, status in cases), [c for c in cases if c[1] >= 500]
    assert server.proc.poll() is None and "panicked" not in server.logs()
    # Flat: the three rounds leave no more than a few MiB behind (allocator noise).
    assert after - before < 32 * 1024, (before, after)
