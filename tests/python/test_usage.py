"""The usage ledger and `outcrop usage`: every call recorded with exact decimal costs from the
catalog prices, streams included (also when cut short), and nothing completed lost to kill -9."""
import json
import signal
import subprocess
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import Server, make_client, outcrop_binary

CLAUDE = "anthropic.claude-v2"
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
PRICES = {CLAUDE: (Decimal("0.008"), Decimal("0.024")), HAIKU: (Decimal("0.00025"), Decimal("0.00125")),
          TITAN: (Decimal("0.00002"), Decimal("0"))}
PROMPT = "\n\nHuman: Count to five.\n\nAssistant:"


def usage(server, *args):
    data_dir = str(Path(server.dir.name) / "data")
    r = subprocess.run([outcrop_binary(), "usage", "--data-dir", data_dir, *args], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def headers_usage(response):
    h = response["ResponseMetadata"]["HTTPHeaders"]
    return int(h["x-amzn-bedrock-input-token-count"]), int(h["x-amzn-bedrock-output-token-count"])


def test_ledger_totals_match_what_clients_saw():
    s = Server(enable=[CLAUDE, HAIKU, TITAN])
    try:
        rt = make_client(s)
        seen = {m: [0, 0, 0] for m in PRICES}  # input, output, invocations

        def add(model, i, o):
            seen[model][0] += i
            seen[model][1] += o
            seen[model][2] += 1

        for _ in range(2):
            r = rt.invoke_model(modelId=CLAUDE, body=json.dumps({"prompt": PROMPT, "max_tokens_to_sample": 12}))
            add(CLAUDE, *headers_usage(r))
        r = rt.invoke_model_with_response_stream(modelId=CLAUDE, body=json.dumps({"prompt": PROMPT, "max_tokens_to_sample": 9}))
        last = [json.loads(e["chunk"]["bytes"]) for e in r["body"]][-1]["amazon-bedrock-invocationMetrics"]
        add(CLAUDE, last["inputTokenCount"], last["outputTokenCount"])
        c = rt.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                        inferenceConfig={"maxTokens": 8})
        add(HAIKU, c["usage"]["inputTokens"], c["usage"]["outputTokens"])
        events = list(rt.converse_stream(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                                         inferenceConfig={"maxTokens": 8})["stream"])
        u = events[-1]["metadata"]["usage"]
        add(HAIKU, u["inputTokens"], u["outputTokens"])
        r = rt.invoke_model(modelId=TITAN, body=json.dumps({"inputText": "a cat"}))
        add(TITAN, *headers_usage(r))
        with pytest.raises(ClientError):
            rt.invoke_model(modelId=CLAUDE, body=json.dumps({"prompt": "no turns", "max_tokens_to_sample": 5}))

        report = json.loads(usage(s, "--format", "json"))
        rows = {row["model_id"]: row for row in report["rows"]}
        total_cost = Decimal(0)
        for model, (i, o, n) in seen.items():
            row = rows[model]
            assert (row["input_tokens"], row["output_tokens"], row["invocations"]) == (i, o, n), (model, row)
            expected = (i * PRICES[model][0] + o * PRICES[model][1]) / 1000
            assert Decimal(row["cost_usd"]) == expected, (model, row["cost_usd"], expected)
            assert isinstance(row["cost_usd"], str)
            total_cost += expected
        assert rows[CLAUDE]["client_errors"] == 1
        assert Decimal(report["total"]["cost_usd"]) == total_cost
        assert report["total"]["invocations"] == sum(n for _, _, n in seen.values())
        by_principal = json.loads(usage(s, "--group-by", "principal", "--format", "json"))["rows"]
        assert [r["principal_arn"] for r in by_principal] == ["arn:aws:iam::000000000000:root"]
        csv = usage(s, "--format", "csv").splitlines()
        assert csv[0].startswith("model_id,invocations") and len(csv) == 1 + len(rows)
        assert "total" in usage(s)
        assert json.loads(usage(s, "--since", "2999-01-01", "--format", "json"))["rows"] == []
    finally:
        s.stop()


def test_a_stream_cut_short_is_recorded_with_its_tokens():
    s = Server(enable=[CLAUDE])
    try:
        rt = make_client(s)
        r = rt.invoke_model_with_response_stream(
            modelId=CLAUDE, body=json.dumps({"prompt": "\n\nHuman: Tell a very long story.\n\nAssistant:",
                                             "max_tokens_to_sample": 2000}))
        stream = iter(r["body"])
        for _ in range(3):
            next(stream)
        r["body"].close()
        deadline = time.time() + 10
        row = None
        while time.time() < deadline:
            rows = json.loads(usage(s, "--format", "json"))["rows"]
            if rows:
                row = rows[0]
                break
            time.sleep(0.2)
        assert row is not None, s.logs()
        assert row["invocations"] == 0 and row["client_errors"] == 1
        assert 3 <= row["output_tokens"] < 2000 and row["input_tokens"] > 0
    finally:
        s.stop()


def test_kill_9_loses_no_completed_call():
    s = Server(enable=[CLAUDE])
    completed = []
    stop = threading.Event()

    def worker():
        rt = make_client(s)
        while not stop.is_set():
            try:
                rt.invoke_model(modelId=CLAUDE, body=json.dumps({"prompt": PROMPT, "max_tokens_to_sample": 6}))
                completed.append(1)
            except Exception:  # the server went away mid-call
                return

    try:
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        deadline = time.time() + 30
        while len(completed) < 12 and time.time() < deadline:
            time.sleep(0.05)
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
        stop.set()
        for t in threads:
            t.join(10)
        done = len(completed)
        assert done >= 12
        recorded = json.loads(usage(s, "--format", "json"))["total"]["invocations"]
        assert recorded >= done, (recorded, done)
    finally:
        s.stop()


def test_usage_over_http_for_the_console():
    from helpers import signed

    s = Server(enable=[CLAUDE])
    try:
        r = make_client(s).invoke_model(modelId=CLAUDE, body=json.dumps({"prompt": PROMPT, "max_tokens_to_sample": 4}))
        i, o = headers_usage(r)
        status, _, body = signed(s, "GET", "/_outcrop/usage?group_by=model")
        assert status == 200, body
        report = json.loads(body)
        assert report["rows"][0]["model_id"] == CLAUDE
        assert (report["total"]["input_tokens"], report["total"]["output_tokens"]) == (i, o)
        assert Decimal(report["total"]["cost_usd"]) == (i * PRICES[CLAUDE][0] + o * PRICES[CLAUDE][1]) / 1000
        assert report == json.loads(usage(s, "--format", "json"))
        status, _, body = signed(s, "GET", "/_outcrop/usage?group_by=week")
        assert status == 400 and b"group_by" in body
        status, _, _ = signed(s, "GET", "/_outcrop/usage", key="AKIANOBODY", secret="x")
        assert status == 403
    finally:
        s.stop()


def test_usage_the_store_refuses_is_spooled_and_written_on_the_next_start(tmp_path):
    """A database that refuses writes (here a trigger answering as a full disk would) does not
    lose usage: the records go to the spool file, and the next start writes them into the
    store."""
    import sqlite3

    from conftest import Server, make_client

    data = tmp_path / "data"
    config = '[access]\nmode = "open"\n'

    def call(s):
        make_client(s).converse(modelId="anthropic.claude-v2", messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                                inferenceConfig={"maxTokens": 2})

    def records():
        with sqlite3.connect(data / "outcrop.db") as db:
            return db.execute("SELECT COUNT(*) FROM usage_records").fetchone()[0]

    s = Server(config=config, enable=[], data_dir=data)
    try:
        call(s)
        assert records() == 1
        with sqlite3.connect(data / "outcrop.db") as db:
            db.execute("CREATE TRIGGER refuse BEFORE INSERT ON usage_records "
                       "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        call(s)
        call(s)
        assert records() == 1
        spooled = (data / "ledger-spool.jsonl").read_text().splitlines()
        assert len(spooled) == 2 and all('"operation":"Converse"' in line for line in spooled)
        assert "spooled to disk" in s.logs()
    finally:
        s.stop()
    with sqlite3.connect(data / "outcrop.db") as db:
        db.execute("DROP TRIGGER refuse")
    again = Server(config=config, enable=[], data_dir=data)
    try:
        assert records() == 3
        assert not (data / "ledger-spool.jsonl").exists()
    finally:
        again.stop()


def test_an_answer_whose_usage_can_be_kept_nowhere_is_not_given(tmp_path):
    """When the store refuses a usage record and the spool cannot take it either (here the
    spool's path is a directory), the call is answered InternalServerException (a stream ends
    with its exception frame) instead of an answer that would not be billed."""
    import sqlite3

    import pytest
    from botocore.exceptions import ClientError, EventStreamError
    from conftest import Server, make_client

    data = tmp_path / "data"
    s = Server(config='[access]\nmode = "open"\n', enable=[], data_dir=data)
    try:
        messages = [{"role": "user", "content": [{"text": "Hi"}]}]
        args = dict(modelId="anthropic.claude-v2", messages=messages, inferenceConfig={"maxTokens": 2})
        assert make_client(s).converse(**args)["output"]
        with sqlite3.connect(data / "outcrop.db") as db:
            db.execute("CREATE TRIGGER refuse BEFORE INSERT ON usage_records "
                       "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        (data / "ledger-spool.jsonl").mkdir()
        with pytest.raises(ClientError) as e:
            make_client(s).converse(**args)
        assert e.value.response["Error"]["Code"] == "InternalServerException"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
        with pytest.raises(EventStreamError) as e:
            list(make_client(s).converse_stream(**args)["stream"])
        assert e.value.response["Error"]["Code"] == "internalServerException"
        assert "neither the store nor the spool took it" in s.logs()
        (data / "ledger-spool.jsonl").rmdir()
    finally:
        s.stop()
