"""Deterministic calls (`X-Outcrop-Deterministic: true`) with the real model: the same request
gives the same bytes while other requests keep the engine busy, sampled ones included (their
seed is fixed)."""
import json
import threading

from conftest import make_client

REPETITIONS = 100


def body(prompt, max_tokens, temperature):
    return json.dumps({"prompt": f"\n\nHuman: {prompt}\n\nAssistant:", "max_tokens_to_sample": max_tokens,
                       "temperature": temperature})


def deterministic_client(server):
    client = make_client(server)

    def add_header(request, **kwargs):
        request.headers["X-Outcrop-Deterministic"] = "true"

    client.meta.events.register("before-sign.bedrock-runtime.*", add_header)
    return client


def test_same_bytes_under_concurrent_load(server):
    stop = threading.Event()

    def load(i):
        client = make_client(server)
        while not stop.is_set():
            client.invoke_model(modelId="anthropic.claude-v2", body=body(f"Tell me about topic number {i}.", 8, 0.7))

    workers = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(3)]
    for w in workers:
        w.start()
    try:
        client = deterministic_client(server)
        answers = set()
        for _ in range(REPETITIONS):
            r = client.invoke_model(modelId="anthropic.claude-v2", body=body("Describe the sea in a few words.", 16, 0.9))
            answers.add(r["body"].read())
    finally:
        stop.set()
        for w in workers:
            w.join(60)
    assert len(answers) == 1, answers
