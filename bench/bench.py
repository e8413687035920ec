"""Outcrop vs llama.cpp's Python bindings, batch 1, same GGUF, same machine, same run.

Outcrop is measured through InvokeModel (boto3): server-side from the response headers
(X-Amzn-Bedrock-Invocation-Latency) and end to end on the client. Prompt speed comes from a
1-token call, decode speed from the difference between a 128-token call and the 1-token call.
The peer decodes the same rendered prompt (checked to be the same token count) greedily with
llama_cpp.Llama.eval/sample. Alternating runs, medians reported.
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

USER = ("You are reviewing a long technical report about building a self-hosted service that speaks the "
        "Amazon Bedrock API. " * 7 + "Write a long, detailed story about a lighthouse keeper and the sea.")
PROMPT = f"\n\nHuman: {USER}\n\nAssistant:"
CHATML = f"<|im_start|>user\n{USER}<|im_end|>\n<|im_start|>assistant\n"
DECODE_TOKENS = 128


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024


def start_outcrop(binary, model, data_dir, threads):
    models_dir = os.path.dirname(model)
    port = free_port()
    cfg = os.path.join(data_dir, "bench.toml")
    with open(cfg, "w") as f:
        # The peer runs the stored Q4_1 file: so does Outcrop here (same weights, same kernels),
        # since this measures what Outcrop adds per request, not the weights' speed.
        f.write(f"[access]\nmode = \"open\"\n[engine]\nthreads = {threads}\nexpand_q4_1 = false\n")
    # Every chat id backed by the measured file (a cached model found by its name).
    name = os.path.splitext(os.path.basename(model))[0]
    env = dict(os.environ, OUTCROP_MODELS_DIR=models_dir, OUTCROP_CHAT_MODEL=name, OUTCROP_LOG="warn")
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir, "--config", cfg],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    while True:
        try:
            with urllib.request.urlopen(url + "/_outcrop/health", timeout=1) as r:
                if r.status == 200:
                    break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("outcrop exited")
            time.sleep(0.005)
    return proc, url, time.perf_counter() - t0


def outcrop_call(client, max_tokens):
    body = json.dumps({"prompt": PROMPT, "max_tokens_to_sample": max_tokens, "temperature": 0})
    t0 = time.perf_counter()
    r = client.invoke_model(modelId="anthropic.claude-v2", body=body)
    r["body"].read()
    wall = time.perf_counter() - t0
    h = r["ResponseMetadata"]["HTTPHeaders"]
    return {"server_s": int(h["x-amzn-bedrock-invocation-latency"]) / 1000, "wall_s": wall,
            "input_tokens": int(h["x-amzn-bedrock-input-token-count"]),
            "output_tokens": int(h["x-amzn-bedrock-output-token-count"])}


def peer_call(llm, tokens, max_tokens):
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(tokens)
    t1 = time.perf_counter()
    n = 0
    for _ in range(max_tokens - 1):
        tok = llm.sample(temp=0.0)
        n += 1
        if llm.token_eos() == tok:
            break
        llm.eval([tok])
    t2 = time.perf_counter()
    return {"prompt_s": t1 - t0, "decode_s": t2 - t1, "decoded": n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--outcrop", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    import llama_cpp
    llm = llama_cpp.Llama(model_path=args.model, n_ctx=8192, n_batch=512, n_threads=args.threads,
                          n_threads_batch=args.threads, verbose=False)
    peer_tokens = llm.tokenize(CHATML.encode(), add_bos=True, special=True)

    data_dir = tempfile.mkdtemp(prefix="outcrop-bench-")
    proc, url, cold_start = start_outcrop(args.outcrop, args.model, data_dir, args.threads)
    client = boto3.client("bedrock-runtime", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test",
                          config=Config(retries={"max_attempts": 1}))
    outcrop_call(client, 4)  # warm-up, both sides
    peer_call(llm, peer_tokens, 4)

    ours_1, ours_n, peer = [], [], []
    for _ in range(args.runs):
        ours_1.append(outcrop_call(client, 1))
        ours_n.append(outcrop_call(client, DECODE_TOKENS))
        peer.append(peer_call(llm, peer_tokens, DECODE_TOKENS))
    rss = peak_rss_mb(proc.pid)
    proc.terminate()
    proc.wait()

    med = statistics.median
    input_tokens = ours_n[0]["input_tokens"]
    out_tokens = ours_n[0]["output_tokens"]
    assert all(r["output_tokens"] == out_tokens for r in ours_n), "greedy runs must agree"
    srv_prompt = med(r["server_s"] for r in ours_1)
    srv_decode = med(n["server_s"] - o["server_s"] for o, n in zip(ours_1, ours_n))
    e2e_prompt = med(r["wall_s"] for r in ours_1)
    e2e_decode = med(n["wall_s"] - o["wall_s"] for o, n in zip(ours_1, ours_n))
    peer_prompt = med(p["prompt_s"] for p in peer)
    peer_decode = med(p["decode_s"] / p["decoded"] for p in peer)
    result = {
        "runs": args.runs, "threads": args.threads, "model": os.path.basename(args.model),
        "prompt_tokens": {"outcrop": input_tokens, "peer": len(peer_tokens)},
        "decode_tokens": out_tokens - 1,
        "outcrop_server": {"prompt_tok_s": input_tokens / srv_prompt, "decode_tok_s": (out_tokens - 1) / srv_decode},
        "outcrop_end_to_end": {"prompt_tok_s": input_tokens / e2e_prompt, "decode_tok_s": (out_tokens - 1) / e2e_decode},
        "peer_llama_cpp_python": {"prompt_tok_s": len(peer_tokens) / peer_prompt, "decode_tok_s": 1 / peer_decode,
                                  "version": llama_cpp.__version__},
        "cold_start_to_ready_s": cold_start,
        "outcrop_peak_rss_mb": rss,
    }
    result["ratio_decode_server"] = result["outcrop_server"]["decode_tok_s"] / result["peer_llama_cpp_python"]["decode_tok_s"]
    result["ratio_prompt_server"] = result["outcrop_server"]["prompt_tok_s"] / result["peer_llama_cpp_python"]["prompt_tok_s"]
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
