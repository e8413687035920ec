"""InvokeModelWithResponseStream and continuous batching, through boto3 against the real model."""
import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from conftest import Server, make_client
from helpers import signed_headers

STORY = "\n\nHuman: Tell me a long story about a lighthouse keeper.\n\nAssistant:"
WORDS = ["ZEBRA", "PIANO", "COBALT", "TULIP", "ROCKET", "VELVET", "ORBIT", "LEMON",
         "CACTUS", "HARBOR", "QUARTZ", "WALNUT", "BISON", "FALCON", "IGLOO", "TIGER"]


def stream(runtime, model_id="anthropic.claude-v2", **body):
    body.setdefault("prompt", STORY)
    body.setdefault("max_tokens_to_sample", 40)
    r = runtime.invoke_model_with_response_stream(modelId=model_id, body=json.dumps(body))
    return r, [json.loads(e["chunk"]["bytes"]) for e in r["body"]]


def test_stream_chunks_metrics_and_equality_with_invoke(runtime):
    r, chunks = stream(runtime, temperature=0)
    assert r["contentType"] == "application/json"
    assert r["ResponseMetadata"]["HTTPHeaders"]["content-type"] == "application/vnd.amazon.eventstream"
    assert len(chunks) > 2, "token by token, not one buffered answer"
    for c in chunks[:-1]:
        assert c == {"completion": c["completion"], "stop_reason": None, "stop": None}
    last = chunks[-1]
    assert last["stop_reason"] in ("stop_sequence", "max_tokens")
    metrics = last["amazon-bedrock-invocationMetrics"]
    assert set(metrics) == {"inputTokenCount", "outputTokenCount", "invocationLatency", "firstByteLatency"}
    assert all(isinstance(v, int) for v in metrics.values())
    assert metrics["outputTokenCount"] <= 40 and metrics["inputTokenCount"] > 5
    assert metrics["firstByteLatency"] <= metrics["invocationLatency"]
    streamed = "".join(c["completion"] for c in chunks)
    full = json.loads(runtime.invoke_model(modelId="anthropic.claude-v2",
                                           body=json.dumps({"prompt": STORY, "max_tokens_to_sample": 40, "temperature": 0}))["body"].read())
    assert streamed == full["completion"]
    assert (last["stop_reason"], last["stop"]) == (full["stop_reason"], full["stop"])


def test_first_chunk_arrives_long_before_the_last(runtime):
    t0 = time.perf_counter()
    r = runtime.invoke_model_with_response_stream(
        modelId="anthropic.claude-v2", body=json.dumps({"prompt": STORY, "max_tokens_to_sample": 200, "temperature": 0}))
    first = None
    for event in r["body"]:
        if first is None:
            first = time.perf_counter() - t0
        last = json.loads(event["chunk"]["bytes"])
    total = time.perf_counter() - t0
    assert last["amazon-bedrock-invocationMetrics"]["outputTokenCount"] > 50
    assert first < total / 2, (first, total)


def test_stream_errors_before_the_first_byte_are_http_errors(runtime):
    with pytest.raises(ClientError) as e:
        runtime.invoke_model_with_response_stream(modelId="anthropic.claude-v9", body=json.dumps({"prompt": STORY, "max_tokens_to_sample": 5}))
    assert e.value.response["Error"] == {"Code": "ValidationException", "Message": "The provided model identifier is invalid."}
    long = "\n\nHuman: " + "lorem ipsum dolor sit amet " * 2500 + "\n\nAssistant:"
    with pytest.raises(ClientError) as e:
        runtime.invoke_model_with_response_stream(modelId="anthropic.claude-v2", body=json.dumps({"prompt": long, "max_tokens_to_sample": 5}))
    assert e.value.response["Error"]["Message"] == "Input is too long for requested model."
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def ask_code_word(runtime, word, streaming):
    body = {"prompt": f"\n\nHuman: The code word is {word}. What is the code word?\n\nAssistant: The code word is",
            "max_tokens_to_sample": 12, "temperature": 0}
    if streaming:
        _, chunks = stream(runtime, **body)
        return "".join(c["completion"] for c in chunks)
    return json.loads(runtime.invoke_model(modelId="anthropic.claude-v2", body=json.dumps(body))["body"].read())["completion"]


def test_sixteen_concurrent_mixed_requests_do_not_cross_talk(server):
    clients = [make_client(server) for _ in WORDS]
    with ThreadPoolExecutor(len(WORDS)) as pool:
        answers = list(pool.map(lambda i: ask_code_word(clients[i], WORDS[i], streaming=i % 2 == 0), range(len(WORDS))))
    for word, answer in zip(WORDS, answers):
        others = [w for w in WORDS if w != word and w.lower() in answer.lower()]
        assert not others, f"{word}: answer {answer!r} carries {others}"
        assert word.lower() in answer.lower(), f"{word}: {answer!r}"


def abort_one(server, body):
    path = "/model/anthropic.claude-v2/invoke-with-response-stream"
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", path, body=body, headers=signed_headers(server, "POST", path, body))
    r = conn.getresponse()
    assert r.status == 200
    assert len(r.read(12)) == 12  # the first frame's prelude has arrived
    conn.close()


def test_aborted_streams_leave_no_active_sequences(server):
    # A short prompt: the cost of each abort is mostly its prompt processing.
    body = json.dumps({"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 300}).encode()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: abort_one(server, body), range(1000)))
    deadline = time.time() + 30
    while time.time() < deadline:
        with __import__("urllib.request").request.urlopen(server.url + "/_outcrop/health") as r:
            model = json.load(r)["models"][0]
        if model["active_sequences"] == 0 and model["waiting"] == 0:
            break
        time.sleep(0.05)
    assert (model["active_sequences"], model["waiting"]) == (0, 0), model
    assert server.proc.poll() is None


def test_full_queue_throttles_at_once():
    s = Server(config="[engine]\nparallel = 1\nqueue_len = 1\n")
    try:
        results = []

        def call():
            try:
                _, chunks = stream(make_client(s), max_tokens_to_sample=120)
                results.append(("ok", chunks[-1]["stop_reason"]))
            except ClientError as e:
                results.append((e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"], e.response["Error"]["Message"]))

        threads = [threading.Thread(target=call) for _ in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        throttled = [r for r in results if r[0] == 429]
        assert throttled, results
        assert throttled[0][1:] == ("ThrottlingException", "Too many requests, please wait before trying again. "
                                    "You have sent too many requests.  Wait before trying again.")
        assert any(r[0] == "ok" for r in results), results
    finally:
        s.stop()


def test_per_sequence_kv_pools_serve_concurrent_requests():
    s = Server(config="[engine]\nparallel = 4\nkv_unified = false\ncontext_tokens = 1024\n")
    try:
        words = WORDS[:4]
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda w: ask_code_word(make_client(s), w, streaming=True), words))
        with __import__("urllib.request").request.urlopen(s.url + "/_outcrop/health") as r:
            assert json.load(r)["models"][0]["context_tokens"] == 1024
        for word, answer in zip(words, answers):
            assert word.lower() in answer.lower(), (word, answer)
        long = "\n\nHuman: " + "lorem ipsum " * 600 + "\n\nAssistant:"
        with pytest.raises(ClientError) as e:
            make_client(s).invoke_model(modelId="anthropic.claude-v2", body=json.dumps({"prompt": long, "max_tokens_to_sample": 5}))
        assert e.value.response["Error"]["Message"] == "Input is too long for requested model."
    finally:
        s.stop()
