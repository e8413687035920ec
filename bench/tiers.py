"""Service tiers as scheduling: time to first token per tier under a saturating mix. Every
round starts N ConverseStream calls at once, a third each `priority`, `default` and `flex`
(more than the engine's slots, so most wait), and records each call's time to its first text
delta. The same mix with no tier named (all `default`, first come first served) runs in the
same run on the same server as the baseline. One server, real model.

Usage: python bench/tiers.py [--calls 24] [--tokens 48] [--rounds 3]
(needs OUTCROP_BIN, boto3; prints one JSON line)."""
import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from conftest import Server, make_client  # noqa: E402

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
TIERS = ["priority", "default", "flex"]


def round_of(server, calls, tokens, tiered):
    """TTFT in ms of each call, by the tier it asked for (or would have)."""
    ttft = {t: [] for t in TIERS}
    barrier = threading.Barrier(calls)

    def call(i):
        tier = TIERS[i % 3]
        client = make_client(server)
        extra = {"serviceTier": {"type": tier}} if tiered else {}
        barrier.wait()
        started = time.monotonic()
        stream = client.converse_stream(
            modelId=MODEL, messages=[{"role": "user", "content": [{"text": f"Tell story number {i} about the sea."}]}],
            inferenceConfig={"maxTokens": tokens, "temperature": 0}, **extra)["stream"]
        first = None
        for event in stream:
            if first is None and "contentBlockDelta" in event:
                first = time.monotonic()
        ttft[tier].append((first - started) * 1000)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ttft


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--calls", type=int, default=24)
    p.add_argument("--tokens", type=int, default=48)
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    # Four slots and a queue long enough that nothing is refused: only the order differs.
    s = Server(config='[access]\nmode = "open"\n[engine]\nparallel = 4\nqueue_len = 64\n', enable=[])
    try:
        round_of(s, 3, 4, False)  # warm up
        samples = {"tiered": {t: [] for t in TIERS}, "fifo": {t: [] for t in TIERS}}
        for _ in range(a.rounds):  # interleaved, so drift hits both alike
            for name, tiered in [("tiered", True), ("fifo", False)]:
                for tier, values in round_of(s, a.calls, a.tokens, tiered).items():
                    samples[name][tier].extend(values)
    finally:
        s.stop()
    result = {"calls": a.calls, "tokens": a.tokens, "rounds": a.rounds}
    for name, by_tier in samples.items():
        result[name] = {t: round(statistics.median(v)) for t, v in by_tier.items()}
    result["priority_vs_fifo"] = round(result["tiered"]["priority"] / result["fifo"]["priority"], 2)
    result["flex_vs_fifo"] = round(result["tiered"]["flex"] / result["fifo"]["flex"], 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
