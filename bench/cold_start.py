"""Cold start with lazy loading: process spawn to a listening, healthy server; then the first
request (which loads the model) and a second one, each asking for one token. The peer is
llama-server on the same GGUF file, which loads the model before it answers /health, then the
same two requests. Median of --runs; one JSON line and a table on stdout.

Usage: .venv/bin/python bench/cold_start.py --outcrop "$OUTCROP_BIN" \
         --llama-server PATH --model "$OUTCROP_MODELS_DIR/qwen2.5-coder-0.5b-instruct.gguf"
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

import boto3
from botocore.config import Config


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url, proc, path):
    """Polls `path` until it answers 200 (the server has loaded what it loads at start)."""
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + path, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.005)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def outcrop_run(binary, model, threads):
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        cfg = os.path.join(d, "bench.toml")
        with open(cfg, "w") as f:
            f.write(f'[access]\nmode = "open"\n[engine]\nthreads = {threads}\n')
        env = dict(os.environ, OUTCROP_MODELS_DIR=os.path.dirname(model), OUTCROP_LOG="warn",
                   OUTCROP_CHAT_MODEL=os.path.splitext(os.path.basename(model))[0])
        t0 = time.perf_counter()
        proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", d, "--config", cfg],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_health(url, proc, "/_outcrop/health")
            ready = time.perf_counter() - t0
            client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1",
                                  aws_access_key_id="test", aws_secret_access_key="test",
                                  config=Config(retries={"max_attempts": 1}))

            def ask():
                client.converse(modelId="anthropic.claude-3-haiku-20240307-v1:0",
                                messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                                inferenceConfig={"maxTokens": 1, "temperature": 0})
            return ready, timed(ask), timed(ask)
        finally:
            proc.terminate()
            proc.wait()


def llama_run(binary, model, threads):
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary, "-m", model, "--port", str(port), "-t", str(threads), "-c", "4096",
                             "--no-webui"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_health(url, proc, "/health")
        ready = time.perf_counter() - t0

        def ask():
            body = json.dumps({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1,
                               "temperature": 0}).encode()
            req = urllib.request.Request(url + "/v1/chat/completions", data=body,
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req).read()
        return ready, timed(ask), timed(ask)
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--outcrop", required=True)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    results = {"outcrop": [], "llama_server": []}
    for i in range(args.runs):
        # Alternate which goes first.
        order = [("outcrop", outcrop_run, args.outcrop), ("llama_server", llama_run, args.llama_server)]
        for name, run, binary in (order if i % 2 == 0 else order[::-1]):
            results[name].append(run(binary, args.model, args.threads))
    summary = {}
    for name, runs in results.items():
        summary[name] = {k: round(statistics.median(r[j] for r in runs) * 1000, 1)
                         for j, k in enumerate(["ready_ms", "first_request_ms", "second_request_ms"])}
    print(json.dumps({"model": os.path.basename(args.model), "runs": args.runs, **summary}))
    print("| server | spawn to healthy ms | first request ms (loads the model) | second request ms |")
    print("|---|---:|---:|---:|")
    for name, s in summary.items():
        print(f"| {name} | {s['ready_ms']} | {s['first_request_ms']} | {s['second_request_ms']} |")


if __name__ == "__main__":
    main()
