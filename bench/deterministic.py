"""What deterministic mode costs: the same concurrent load (N clients, each sending R
InvokeModel requests of T tokens) against one server with `[engine] deterministic = true` and
one without, in the same run on the same model. Deterministic requests run one at a time on a
cleared KV cache, so throughput falls to batch-1 speed.

Usage: python bench/deterministic.py [--clients 8] [--requests 4] [--tokens 64]
(needs OUTCROP_BIN, boto3; prints one JSON line)."""
import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from conftest import Server, make_client  # noqa: E402


def load(server, clients, requests, tokens):
    body = json.dumps({"prompt": "\n\nHuman: Write a story about the sea.\n\nAssistant:",
                       "max_tokens_to_sample": tokens, "temperature": 0})
    made = []

    def client():
        c = make_client(server)
        for _ in range(requests):
            r = c.invoke_model(modelId="anthropic.claude-v2", body=body)
            made.append(int(r["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-output-token-count"]))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(made) / (time.monotonic() - started)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--requests", type=int, default=4)
    p.add_argument("--tokens", type=int, default=64)
    a = p.parse_args()
    result = {"clients": a.clients, "requests": a.requests, "tokens": a.tokens}
    for name, config in [("batched", ""), ("deterministic", "[engine]\ndeterministic = true\n")]:
        s = Server(config=config)
        try:
            load(s, 1, 1, 8)  # warm up
            result[f"{name}_tokens_per_s"] = round(load(s, a.clients, a.requests, a.tokens), 1)
        finally:
            s.stop()
    result["ratio"] = round(result["deterministic_tokens_per_s"] / result["batched_tokens_per_s"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
