"""Continuous batching: Outcrop vs llama.cpp's own llama-server, same GGUF, same run.

For each concurrency N in (1, 4, 8, 16), in each of `--rounds` rounds (alternating which server
goes first), each server is started with N parallel sequences and
driven through its own streaming API by N client threads, each sending `--requests` requests
back to back: Outcrop with InvokeModelWithResponseStream (SigV4-signed by botocore, frames read
off the socket), llama-server with POST /completion {"stream": true} (SSE lines read off the
socket). Both get the same ChatML prompt text, greedy decoding,
128 tokens at most, and llama-server's prompt cache is off (Outcrop has none). Reported per N:
aggregate output tokens/s (all tokens / wall time of the level) and time to first token
p50/p95 (first non-empty text).
"""
import argparse
import base64
import http.client
import json
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

MAX_TOKENS = 128
USERS = [f"Tell me a long story about a lighthouse keeper named {n}." for n in
         ["Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kai", "Lea", "Max", "Nia", "Oz", "Pia"]]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url, proc):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("server exited")
            time.sleep(0.05)


def start_outcrop(binary, model, n, threads, kv):
    port, data = free_port(), tempfile.mkdtemp(prefix="outcrop-bench-")
    cfg = os.path.join(data, "c.toml")
    with open(cfg, "w") as f:
        f.write(f"[access]\nmode = \"open\"\n[engine]\nparallel = {n}\nthreads = {threads}\nqueue_len = 256\n")
        if kv == "per-slot":
            f.write(f"kv_unified = false\ncontext_tokens = {8192 // n}\n")
        # More [engine] settings for an experiment (";" between them), e.g.
        # OUTCROP_ENGINE_EXTRA="prompts_per_step = 2".
        f.write(os.environ.get("OUTCROP_ENGINE_EXTRA", "").replace(";", "\n") + "\n")
    # Every chat id backed by the measured file (a cached model found by its name).
    name = os.path.splitext(os.path.basename(model))[0]
    env = dict(os.environ, OUTCROP_MODELS_DIR=os.path.dirname(model), OUTCROP_CHAT_MODEL=name,
               OUTCROP_LOG=os.environ.get("OUTCROP_LOG", "warn"))
    log = open(os.path.join(data, "server.log"), "w")
    print(f"outcrop N={n} log: {log.name}", flush=True)
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data, "--config", cfg],
                            env=env, stdout=log, stderr=log)
    wait_healthy(f"http://127.0.0.1:{port}/_outcrop/health", proc)
    return proc, port


def start_llama_server(binary, model, n, threads, kv):
    port = free_port()
    proc = subprocess.Popen([binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-c", "8192",
                             "--parallel", str(n), "--cont-batching", "-t", str(threads), "-tb", str(threads),
                             "-b", "512", "--no-webui"] + os.environ.get("PEER_EXTRA", "").split(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_healthy(f"http://127.0.0.1:{port}/health", proc)
    return proc, port


def outcrop_request(port, user):
    """One InvokeModelWithResponseStream call, read off the socket like the llama-server client:
    signed by botocore, TTFT at the first chunk frame, tokens from the final chunk's metrics.
    (boto3's event-stream parser costs enough CPU on a 2-core machine to skew the comparison.)"""
    path = "/model/anthropic.claude-v2/invoke-with-response-stream"
    body = json.dumps({"prompt": f"\n\nHuman: {user}\n\nAssistant:", "max_tokens_to_sample": MAX_TOKENS,
                       "temperature": 0}).encode()
    req = AWSRequest(method="POST", url=f"http://127.0.0.1:{port}{path}", data=body, headers={})
    SigV4Auth(Credentials("test", "test"), "bedrock", "us-east-1").add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", path, body=body, headers=dict(req.headers))
    r = conn.getresponse()
    assert r.status == 200, r.status
    data = r.read1(65536)
    ttft = time.perf_counter() - t0
    data += r.read()
    conn.close()
    at = data.rfind(b'"bytes":"') + len(b'"bytes":"')
    last = json.loads(base64.b64decode(data[at:data.index(b'"', at)]))
    return ttft, last["amazon-bedrock-invocationMetrics"]["outputTokenCount"]


def llama_request(port, user):
    prompt = f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    body = json.dumps({"prompt": prompt, "n_predict": MAX_TOKENS, "stream": True, "temperature": 0,
                       "cache_prompt": False})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/completion", body=body, headers={"Content-Type": "application/json"})
    r = conn.getresponse()
    ttft, tokens = None, 0
    for line in r:
        if not line.startswith(b"data: "):
            continue
        data = json.loads(line[6:])
        if ttft is None and data.get("content"):
            ttft = time.perf_counter() - t0
        if data.get("stop"):
            tokens = data.get("tokens_predicted") or data.get("timings", {}).get("predicted_n", 0)
            break
    conn.close()
    return ttft, tokens


def run_level(request, port, n, per_client):
    results, lock = [], threading.Lock()

    def client(i):
        for k in range(per_client):
            out = request(port, USERS[(i + k) % len(USERS)])
            with lock:
                results.append(out)

    request(port, USERS[0])  # warm-up
    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttfts = sorted(r[0] for r in results if r[0] is not None)
    tokens = sum(r[1] for r in results)
    p95 = ttfts[min(len(ttfts) - 1, int(round(0.95 * (len(ttfts) - 1))))]
    return {"requests": len(results), "tokens": tokens, "wall_s": wall, "tok_s": tokens / wall,
            "ttft_p50_ms": statistics.median(ttfts) * 1000, "ttft_p95_ms": p95 * 1000,
            "ttft_mean_ms": statistics.mean(ttfts) * 1000}


def one_run(name, args, n, per_client):
    start, request = (start_outcrop, outcrop_request) if name == "outcrop" else (start_llama_server, llama_request)
    binary = args.outcrop if name == "outcrop" else args.llama_server
    proc, port = start(binary, args.model, n, args.threads, args.outcrop_kv)
    try:
        return run_level(request, port, n, per_client)
    finally:
        stop(proc)


def stop(proc):
    """SIGTERM, then SIGKILL: llama-server has been seen to hang in its shutdown after a level."""
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def bare_engine(args, n):
    """llama.cpp's llama-batched-bench on the same engine: N sequences of the same prompt length
    and output, no server, no HTTP. Returns decode-only tok/s, and output tokens over the whole
    time (prompts included) as the servers are measured."""
    kv = ["-no-kvu"] if args.outcrop_kv == "per-slot" else ["-kvu"]
    out = subprocess.run([args.batched_bench, "-m", args.model, "-c", "8192", "-b", "512", "-ub", "512",
                          "-npp", "21", "-ntg", str(MAX_TOKENS), "-npl", str(n), "-t", str(args.threads),
                          "-tb", str(args.threads)] + kv, capture_output=True, text=True, check=True).stdout
    row = [line for line in out.splitlines() if line.startswith("|") and line.split("|")[3].strip() == str(n)][-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    # Its own S t/s counts prompt tokens too; the servers' figure counts output tokens only.
    return {"decode_tok_s": float(cells[7]), "tok_s": MAX_TOKENS * n / float(cells[8])}


def median_of(runs, key):
    return statistics.median(r[key] for r in runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--outcrop", required=True)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--requests", type=int, default=3, help="requests per client thread")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs of each server per level, alternating which goes first; medians are reported")
    ap.add_argument("--levels", default="1,4,8,16")
    ap.add_argument("--batched-bench", help="llama-batched-bench built on the same engine: the bare engine's "
                                            "tok/s at each level, once per round")
    ap.add_argument("--out", required=True)
    ap.add_argument("--outcrop-kv", choices=["unified", "per-slot"], default="per-slot",
                    help="per-slot: like llama-server --parallel N -c 8192 (8192/N cells per slot); "
                         "unified: one shared pool of 8192 cells")
    args = ap.parse_args()
    table = []
    for n in [int(x) for x in args.levels.split(",")]:
        per_client = max(args.requests, 8 // n)
        runs = {"outcrop": [], "llama_server": []}
        ratios = []
        for r in range(args.rounds):
            # This machine drifts by 10% and more over minutes: alternate who goes first, so
            # that a drift favours neither, and compare each round's pair.
            order = ("outcrop", "llama_server") if r % 2 == 0 else ("llama_server", "outcrop")
            pair = {name: one_run(name, args, n, per_client) for name in order}
            for name in order:
                runs[name].append(pair[name])
            if args.batched_bench:
                pair["bare_engine"] = bare_engine(args, n)
                runs.setdefault("bare_engine", []).append(pair["bare_engine"])
            ratios.append(pair["outcrop"]["tok_s"] / pair["llama_server"]["tok_s"])
            print(json.dumps({"concurrency": n, "round": r, **pair}), flush=True)
        row = {"concurrency": n, "runs": runs, "ratios": ratios, "throughput_ratio": statistics.median(ratios)}
        for name, rs in runs.items():
            row[name] = {k: median_of(rs, k) for k in rs[0]}
        table.append(row)
    single = table[0]["outcrop"]["tok_s"] if table[0]["concurrency"] == 1 else None
    with open(args.out, "w") as f:
        json.dump({"outcrop_kv": args.outcrop_kv, "rounds": args.rounds, "levels": table,
                   "outcrop_single_stream_tok_s": single}, f, indent=2)
    print(f"medians of {args.rounds} rounds per level (ratio: median of the per-round ratios)")
    print("| N | Outcrop tok/s | llama-server tok/s | ratio (min-max) | Outcrop TTFT p50 / p95 ms | llama-server TTFT p50 / p95 ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in table:
        o, l = r["outcrop"], r["llama_server"]
        print(f"| {r['concurrency']} | {o['tok_s']:.1f} | {l['tok_s']:.1f} | {r['throughput_ratio']:.2f} "
              f"({min(r['ratios']):.2f}-{max(r['ratios']):.2f}) | "
              f"{o['ttft_p50_ms']:.0f} / {o['ttft_p95_ms']:.0f} | {l['ttft_p50_ms']:.0f} / {l['ttft_p95_ms']:.0f} |")
    if single:
        for r in table:
            line = f"N={r['concurrency']}: Outcrop {r['outcrop']['tok_s'] / single:.2f}x its single stream"
            line += f", llama-server {r['llama_server']['tok_s'] / table[0]['llama_server']['tok_s']:.2f}x"
            if "bare_engine" in r:
                b, b1 = r["bare_engine"], table[0]["bare_engine"]
                line += (f"; bare engine {b['tok_s']:.1f} tok/s ({b['tok_s'] / b1['tok_s']:.2f}x), "
                         f"decode only {b['decode_tok_s']:.1f} ({b['decode_tok_s'] / b1['decode_tok_s']:.2f}x)")
            print(line)


if __name__ == "__main__":
    main()
