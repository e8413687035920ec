"""How close the default model's answers are when served re-encoded as Q8_0 (`expand_q4_1`, the
default on a CPU) to the stored Q4_1 file's (`expand_q4_1 = false`).

Starts Outcrop twice on the same model cache, one sequence each (so that batch composition
plays no part), and sends both the same greedy InvokeModel requests through boto3: 16 code-word
prompts (is the answer still right?) and 16 open prompts (how long do the texts stay equal?).
Prints the counts and each pair that differs; --out writes them as JSON.

Usage: .venv/bin/python bench/weights_agreement.py --outcrop "$OUTCROP_BIN" [--out FILE]
"""
import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
from conftest import Server, make_client  # noqa: E402
from test_stream import WORDS  # noqa: E402 - the cross-talk test's code words
TOPICS = ["the sea", "a lighthouse", "bread", "a fox", "winter", "trains", "a violin", "the moon",
          "rain", "a garden", "chess", "a volcano", "bees", "a library", "a river", "clocks"]
MAX_TOKENS = 64


def prompts():
    for w in WORDS:
        yield "word", w, f"\n\nHuman: The code word is {w}. What is the code word?\n\nAssistant: The code word is"
    for t in TOPICS:
        yield "open", t, f"\n\nHuman: Write a short paragraph about {t}.\n\nAssistant:"


def answers(expand):
    s = Server(f"[engine]\nparallel = 1\nexpand_q4_1 = {'true' if expand else 'false'}\n")
    try:
        rt = make_client(s)
        out = []
        for _, _, prompt in prompts():
            body = {"prompt": prompt, "max_tokens_to_sample": MAX_TOKENS, "temperature": 0}
            out.append(json.loads(rt.invoke_model(modelId="anthropic.claude-v2", body=json.dumps(body))["body"].read())["completion"])
        return out
    finally:
        s.stop()


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--outcrop", required=True)
    ap.add_argument("--out")
    args = ap.parse_args()
    os.environ["OUTCROP_BIN"] = args.outcrop
    q8, q4 = answers(True), answers(False)
    rows = []
    for (kind, key, _), a, b in zip(prompts(), q8, q4):
        rows.append({"kind": kind, "key": key, "q8_0": a, "q4_1": b, "same": a == b,
                     "common_prefix_chars": common_prefix(a, b),
                     "word_right": {"q8_0": key in a.upper(), "q4_1": key in b.upper()} if kind == "word" else None})
    words = [r for r in rows if r["kind"] == "word"]
    opens = [r for r in rows if r["kind"] == "open"]
    print(f"code words right: Q8_0 {sum(r['word_right']['q8_0'] for r in words)}/16, "
          f"Q4_1 {sum(r['word_right']['q4_1'] for r in words)}/16; identical answers {sum(r['same'] for r in words)}/16")
    prefixes = sorted(r["common_prefix_chars"] for r in opens if not r["same"])
    print(f"open prompts ({MAX_TOKENS} tokens): identical {sum(r['same'] for r in opens)}/16; "
          f"where they differ, equal for the first {prefixes} characters")
    for r in rows:
        if not r["same"]:
            print(f"- {r['key']}:\n    Q8_0 {r['q8_0']!r}\n    Q4_1 {r['q4_1']!r}")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
