"""The gateway's cost: llama-server alone vs Outcrop in front of it vs LiteLLM's proxy in front
of the same llama-server, same run, same client.

One llama-server (llama.cpp's own, built by bench/build-llama-server) serves the GGUF. Outcrop
reaches it as a remote engine (`engine = "openai"`) and is called on its OpenAI-compatible path
(`/openai/v1/chat/completions`, a Bedrock API key as bearer token), so that all three are driven
by the same client code (a new connection per request): streaming chat completions, greedy, `--max-tokens` tokens, usage in
the last chunk. For each concurrency C, in each of `--rounds` rounds (the order of the three
rotating), C client tasks send `--requests-per-client` requests back to back.

Reported per C: TTFT p50/p99 (first non-empty content delta) and aggregate output tokens/s per
target; the gateway's added TTFT (its p50/p99 minus llama-server's in the same round), its
tokens/s as a ratio of llama-server's, its peak RSS (VmHWM, the whole process tree) and CPU
seconds per request (utime+stime of the tree over the level / requests).
"""
import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import httpx

# Both gateways authenticate each request: Outcrop a Bedrock API key, LiteLLM its master key.
LITELLM_KEY = "sk-outcrop-bench-0123456789abcdef"
PROMPTS = [f"Write one sentence about the number {n}." for n in range(512)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ok(url, proc, timeout=180, headers=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited")
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not become ready")


def tree(pid):
    """The process and its descendants."""
    pids, frontier = [pid], [pid]
    while frontier:
        p = frontier.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                children = [int(c) for c in f.read().split()]
        except OSError:
            children = []
        pids += children
        frontier += children
    return pids


def cpu_seconds(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid):
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def start_llama_server(binary, model, parallel, threads, log):
    port = free_port()
    proc = subprocess.Popen([binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-np", str(parallel),
                             "-c", str(parallel * 256), "-t", str(threads), "--no-webui", "--jinja",
                             # A thread per connection, idle kept-alive ones included: the
                             # gateways' pools hold some, which must not starve new requests.
                             "--threads-http", str(4 * parallel + 16)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_ok(url + "/health", proc)
    return proc, url


def start_outcrop(binary, upstream, log):
    data = tempfile.mkdtemp(prefix="outcrop-gateway-bench-")
    cli = lambda *a: subprocess.run([binary, *a, "--data-dir", data], check=True, capture_output=True, text=True).stdout
    cli("users", "create", "bench")
    key = json.loads(cli("keys", "create", "--user", "bench", "--bedrock-api-key"))["ServiceSpecificCredential"]["ServiceCredentialSecret"]
    cfg = os.path.join(data, "outcrop.toml")
    with open(cfg, "w") as f:
        f.write('chat_model = "remote"\n[access]\nmode = "open"\n[backing_models.remote]\nengine = "openai"\n'
                f'url = "{upstream}/v1"\nmodel = "smollm2"\nmax_in_flight = 1024\n')
    port = free_port()
    env = dict(os.environ, OUTCROP_LOG=os.environ.get("OUTCROP_LOG", "warn"))
    env.pop("OUTCROP_CHAT_MODEL", None)
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data, "--config", cfg],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    wait_ok(url + "/_outcrop/health", proc)
    return proc, url + "/openai/v1", key


def start_litellm(litellm, upstream, log):
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    cfg.write("model_list:\n  - model_name: smollm2\n    litellm_params:\n      model: openai/smollm2\n"
              f"      api_base: {upstream}/v1\n      api_key: none\n"
              "litellm_settings:\n  drop_params: true\n  turn_off_message_logging: true\n"
              f"general_settings:\n  master_key: {LITELLM_KEY}\n")
    cfg.close()
    port = free_port()
    proc = subprocess.Popen([litellm, "--config", cfg.name, "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, LITELLM_LOG="ERROR"))
    url = f"http://127.0.0.1:{port}"
    wait_ok(url + "/health/liveliness", proc, timeout=300)
    return proc, url + "/v1"


async def one(client, base, key, model, prompt, max_tokens):
    body = {"model": model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
    started, ttft, tokens = time.perf_counter(), None, 0
    async with client.stream("POST", base + "/chat/completions", json=body,
                             headers={"authorization": f"Bearer {key}"}) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{base}: {r.status_code} {await r.aread()}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if ttft is None and (choice.get("delta") or {}).get("content"):
                    ttft = time.perf_counter() - started
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return ttft if ttft is not None else time.perf_counter() - started, tokens


async def level(base, key, model, concurrency, per_client, max_tokens, offset):
    # A fresh connection per request: llama-server's HTTP library closes kept-alive connections
    # after a few requests, which a reused connection sees as a disconnect.
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        ttfts, tokens = [], 0

        async def worker(w):
            nonlocal tokens
            for i in range(per_client):
                prompt = PROMPTS[(offset + w * per_client + i) % len(PROMPTS)]
                t, n = await one(client, base, key, model, prompt, max_tokens)
                ttfts.append(t)
                tokens += n

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        wall = time.perf_counter() - started
    return ttfts, tokens, wall


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outcrop", required=True)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--litellm", help="the litellm executable (litellm[proxy]); left out: Outcrop only")
    ap.add_argument("--model", required=True, help="the GGUF llama-server serves")
    ap.add_argument("--concurrency", default="1,8,32,128")
    ap.add_argument("--requests-per-client", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="bench/results/gateway.json")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    log = open(os.path.join(tempfile.gettempdir(), "outcrop-gateway-bench.log"), "w")
    llama, upstream = start_llama_server(args.llama_server, args.model, max(levels), args.threads, log)
    outcrop, outcrop_base, key = start_outcrop(args.outcrop, upstream, log)
    targets = {"llama-server": (upstream + "/v1", "none", "smollm2", llama.pid),
               "outcrop": (outcrop_base, key, "anthropic.claude-3-haiku-20240307-v1:0", outcrop.pid)}
    procs = [llama, outcrop]
    if args.litellm:
        litellm, litellm_base = start_litellm(args.litellm, upstream, log)
        targets["litellm"] = (litellm_base, LITELLM_KEY, "smollm2", litellm.pid)
        procs.append(litellm)
    try:
        # Warm every path (connections, templates, the model's first batch).
        for name, (base, key_, model, _) in targets.items():
            asyncio.run(level(base, key_, model, 4, 2, args.max_tokens, 0))
        results = {}
        for c in levels:
            per = {name: {"ttft": [], "tokens": 0, "wall": 0.0, "cpu": 0.0, "requests": 0} for name in targets}
            for r in range(args.rounds):
                names = list(targets)
                names = names[r % len(names):] + names[:r % len(names)]
                for name in names:
                    base, key_, model, pid = targets[name]
                    cpu0 = cpu_seconds(pid)
                    ttfts, tokens, wall = asyncio.run(level(base, key_, model, c, args.requests_per_client,
                                                            args.max_tokens, r * 1000))
                    p = per[name]
                    p["ttft"] += ttfts
                    p["tokens"] += tokens
                    p["wall"] += wall
                    p["cpu"] += cpu_seconds(pid) - cpu0
                    p["requests"] += len(ttfts)
            row = {}
            for name, p in per.items():
                row[name] = {"ttft_p50_ms": pct(p["ttft"], 50) * 1000, "ttft_p99_ms": pct(p["ttft"], 99) * 1000,
                             "tokens_per_s": p["tokens"] / p["wall"], "requests": p["requests"],
                             "cpu_ms_per_request": p["cpu"] / p["requests"] * 1000,
                             "peak_rss_mib": peak_rss_mib(targets[name][3])}
            results[c] = row
            direct = row["llama-server"]
            line = f"C={c:<4} llama-server: TTFT p50 {direct['ttft_p50_ms']:.1f} ms p99 {direct['ttft_p99_ms']:.1f} ms, {direct['tokens_per_s']:.1f} tok/s"
            for name in [n for n in row if n != "llama-server"]:
                g = row[name]
                line += (f" | {name}: +{g['ttft_p50_ms'] - direct['ttft_p50_ms']:.2f} ms p50, "
                         f"+{g['ttft_p99_ms'] - direct['ttft_p99_ms']:.2f} ms p99, "
                         f"{g['tokens_per_s'] / direct['tokens_per_s']:.3f}x tok/s, "
                         f"{g['cpu_ms_per_request']:.2f} ms CPU/request, {g['peak_rss_mib']:.0f} MiB peak")
            print(line, flush=True)
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"date": time.strftime("%Y-%m-%d"), "args": vars(args), "results": results}, f, indent=2)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
