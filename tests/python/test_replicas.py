"""Two `outcrop serve` replicas on one real Postgres database (a throwaway cluster started by
scripts/postgres, or the server `scripts/test` started: OUTCROP_TEST_DATABASE_URL): keys,
users and model access made through one are in force on the other, the usage ledger is one,
and a replica with another sealing key refuses to start."""
import json
import os
import secrets
import subprocess
import tempfile
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import Server, make_client, outcrop_binary
from helpers import signed

ROOT = Path(__file__).resolve().parents[2]
CLAUDE = "anthropic.claude-v2"
LLAMA = "meta.llama3-8b-instruct-v1:0"
SEED = "[store]\nseed_dev_key = true\n"
BODY = json.dumps({"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 3})


@pytest.fixture(scope="module")
def postgres():
    """A Postgres server's URL: the suite's, or a cluster of this module's own."""
    url = os.environ.get("OUTCROP_TEST_DATABASE_URL")
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix="outcrop-pg-") as d:
        started = subprocess.run([str(ROOT / "scripts/postgres"), "start", f"{d}/pg"], capture_output=True,
                                 text=True, timeout=300)
        assert started.returncode == 0, started.stderr
        try:
            yield started.stdout.strip()
        finally:
            subprocess.run([str(ROOT / "scripts/postgres"), "stop", f"{d}/pg"], timeout=60)


def fresh_database(url):
    name = "outcrop_" + uuid.uuid4().hex[:12]
    subprocess.run(["psql", url, "-qc", f"CREATE DATABASE {name}"], check=True, timeout=60)
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="module")
def replicas(postgres):
    url = fresh_database(postgres)
    key = secrets.token_hex(32)
    env = {"OUTCROP_DATABASE_URL": url, "OUTCROP_SEALING_KEY": key}
    config = ("chat_model = \"smollm2-135m-instruct\"\n[store]\nseed_dev_key = true\n"
              f'[quotas."{LLAMA}"]\nrequests_per_minute = 4\n')
    a = Server(config=config, env=env, enable=[CLAUDE, LLAMA])
    b = Server(config=config, env=env, enable=[])
    yield a, b, env
    a.stop()
    b.stop()


def cli(server, env, *args):
    """An `outcrop` command on the shared database, run beside `server`."""
    r = subprocess.run([outcrop_binary(), *args, "--data-dir", str(Path(server.dir.name) / "data")],
                       capture_output=True, text=True, timeout=60, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_keys_and_access_made_on_one_replica_work_on_the_other(replicas):
    a, b, env = replicas
    # Model access was granted through replica A only; B serves it at once.
    make_client(b).invoke_model(modelId=CLAUDE, body=BODY)
    cli(a, env, "users", "create", "alice")
    key = json.loads(cli(a, env, "keys", "create", "--user", "alice"))["AccessKey"]
    alice_on_b = make_client(b, key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    out = json.loads(alice_on_b.invoke_model(modelId=CLAUDE, body=BODY)["body"].read())
    assert "completion" in out
    # A model whose access was never granted is refused on both.
    for replica in (a, b):
        with pytest.raises(ClientError) as e:
            make_client(replica).invoke_model(modelId="anthropic.claude-3-haiku-20240307-v1:0", body=BODY)
        assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    # A user deleted through B loses its key on A.
    cli(b, env, "users", "delete", "alice")
    with pytest.raises(ClientError) as e:
        make_client(a, key=key["AccessKeyId"], secret=key["SecretAccessKey"]).invoke_model(modelId=CLAUDE, body=BODY)
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_the_usage_ledger_is_one(replicas):
    a, b, _ = replicas
    for replica in (a, b, b):
        make_client(replica).invoke_model(modelId=CLAUDE, body=BODY)
    reports = []
    for replica in (a, b):
        status, _, body = signed(replica, "GET", "/_outcrop/usage?group_by=model")
        assert status == 200, body
        reports.append(json.loads(body))
    assert reports[0] == reports[1]
    (row,) = [r for r in reports[0]["rows"] if r["model_id"] == CLAUDE]
    assert row["invocations"] >= 3


def test_a_quota_holds_across_replicas(replicas):
    """Ten concurrent calls, half through each replica, under 4 requests a minute: 4 in all
    get in (the window is the minute, so a minute turning mid-test is retried once)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    a, b, _ = replicas
    body = json.dumps({"prompt": "Hi", "max_gen_len": 2})

    def call(replica):
        try:
            make_client(replica).invoke_model(modelId=LLAMA, body=body)
            return "ok"
        except ClientError as e:
            return e.response["Error"]["Code"] + ": " + e.response["Error"]["Message"]

    for _ in range(2):
        if time.time() % 60 > 50:
            time.sleep(61 - time.time() % 60)
        minute = int(time.time() // 60)
        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(call, [a, b] * 5))
        if int(time.time() // 60) == minute:
            break
    assert results.count("ok") == 4, results
    refused = [r for r in results if r != "ok"]
    assert all(r.startswith("ThrottlingException: Too many requests") for r in refused), refused


def test_logging_configuration_is_shared(replicas):
    a, b, _ = replicas
    bedrock = {r: boto3.client("bedrock", endpoint_url=r.url, region_name="us-east-1", aws_access_key_id="test",
                               aws_secret_access_key="test", config=Config(retries={"total_max_attempts": 1}))
               for r in (a, b)}
    config = {"cloudWatchConfig": {"logGroupName": "/shared", "roleArn": "arn:aws:iam::000000000000:role/l"},
              "textDataDeliveryEnabled": True}
    bedrock[a].put_model_invocation_logging_configuration(loggingConfig=config)
    got = bedrock[b].get_model_invocation_logging_configuration()["loggingConfig"]
    assert got["cloudWatchConfig"]["logGroupName"] == "/shared"
    bedrock[b].delete_model_invocation_logging_configuration()
    assert "loggingConfig" not in bedrock[a].get_model_invocation_logging_configuration()


def test_a_replica_with_another_sealing_key_refuses_to_start(replicas):
    _, _, env = replicas
    with pytest.raises(RuntimeError) as e:
        Server(env={**env, "OUTCROP_SEALING_KEY": secrets.token_hex(32)}, enable=[])
    assert "give every replica the same key" in str(e.value)
    with pytest.raises(RuntimeError) as e:
        Server(env={**env, "OUTCROP_SEALING_KEY": "not hex"}, enable=[])
    assert "64 hex digits" in str(e.value)


def test_a_console_session_from_one_replica_works_on_the_other(replicas):
    from test_console import call, sign_in

    a, b, env = replicas
    cli(a, env, "users", "create", "carla")
    key = json.loads(cli(a, env, "keys", "create", "--user", "carla"))["AccessKey"]
    opener, _, status, _ = sign_in(a, key["AccessKeyId"], key["SecretAccessKey"])
    assert status == 303
    # The cookie jar sends the session to B too (cookies do not depend on the port).
    status, _, page = call(opener, b.url + "/console/models")
    assert status == 200 and "carla" in page
    # Deleting the key through B ends the session on A.
    cli(b, env, "keys", "delete", key["AccessKeyId"])
    status, headers, _ = call(opener, a.url + "/console/models")
    assert status == 303 and headers["location"] == "/console/sign-in"


def test_sealing_key_rotation(postgres, tmp_path):
    """`outcrop keys rotate-sealing` re-seals every secret: on SQLite the key file is replaced;
    on Postgres the new key is printed, the old key alone is then refused, the new one (or
    both, while replicas restart) serves, and keys made before still sign."""
    data = tmp_path / "data"

    def run(env, *args):
        r = subprocess.run([outcrop_binary(), *args, "--data-dir", str(data)], capture_output=True, text=True,
                           timeout=60, env={**os.environ, **env})
        assert r.returncode == 0, r.stderr
        return r.stdout, r.stderr

    for env in ({}, {"OUTCROP_DATABASE_URL": fresh_database(postgres), "OUTCROP_SEALING_KEY": secrets.token_hex(32)}):
        run(env, "users", "create", "rosa")
        key = json.loads(run(env, "keys", "create", "--user", "rosa")[0])["AccessKey"]
        before = (data / "secret.key").read_bytes() if not env else None
        out, err = run(env, "keys", "rotate-sealing")
        assert "re-sealed 1 secrets" in err, err
        if env:
            new = out.strip()
            with pytest.raises(RuntimeError) as e:
                Server(config=SEED, env=env, enable=[])
            assert "give every replica the same key" in str(e.value)
            env = {**env, "OUTCROP_SEALING_KEY": f"{new},{env['OUTCROP_SEALING_KEY']}"}
        else:
            assert (data / "secret.key.previous").read_bytes() == before != (data / "secret.key").read_bytes()
        s = Server(config=SEED, env=env, enable=[CLAUDE], data_dir=data)
        try:
            make_client(s, key=key["AccessKeyId"], secret=key["SecretAccessKey"]).invoke_model(modelId=CLAUDE, body=BODY)
        finally:
            s.stop()
        data = tmp_path / "data-pg"


def test_kill_9_of_one_replica_under_load_loses_no_completed_call(postgres):
    """Calls run through two replicas while one is killed with SIGKILL: every call a client got
    a whole answer for is in the shared ledger (its record is written before the answer's last
    byte), as the surviving replica's usage report shows."""
    import signal
    import threading
    import time

    url = fresh_database(postgres)
    env = {"OUTCROP_DATABASE_URL": url, "OUTCROP_SEALING_KEY": secrets.token_hex(32)}
    config = "chat_model = \"smollm2-135m-instruct\"\n" + SEED
    a = Server(config=config, env=env, enable=[CLAUDE])
    b = Server(config=config, env=env, enable=[])
    completed, stop = [], threading.Event()

    def load(replica):
        client = boto3.client("bedrock-runtime", endpoint_url=replica.url, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test",
                              config=Config(retries={"total_max_attempts": 1}, read_timeout=60))
        while not stop.is_set():
            try:
                r = client.invoke_model(modelId=CLAUDE, body=BODY)
                r["body"].read()
                completed.append(replica.url)
            except Exception:  # noqa: BLE001 - the killed replica's calls fail, as expected
                time.sleep(0.05)

    # Both models loaded first, so that the load runs on both replicas from its start.
    for replica in (a, b):
        make_client(replica).invoke_model(modelId=CLAUDE, body=BODY)
    threads = [threading.Thread(target=load, args=(r,)) for r in (a, a, b, b)]
    try:
        for t in threads:
            t.start()
        deadline = time.time() + 30
        while completed.count(a.url) < 3 and time.time() < deadline:
            time.sleep(0.1)
        a.stop(sig=signal.SIGKILL)
        time.sleep(2)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    try:
        assert completed.count(a.url) > 0 and completed.count(b.url) > 0, completed
        status, _, body = signed(b, "GET", "/_outcrop/usage?group_by=model")
        assert status == 200, body
        (row,) = [r for r in json.loads(body)["rows"] if r["model_id"] == CLAUDE]
        assert row["invocations"] >= len(completed), (row, len(completed))
        print(f"completed {len(completed)} calls ({completed.count(a.url)} through the killed replica); "
              f"ledger: {row['invocations']} invocations")
    finally:
        b.stop()


def test_an_unknown_database_scheme_is_refused_at_start():
    with pytest.raises(RuntimeError) as e:
        Server(env={"OUTCROP_DATABASE_URL": "mysql://db/outcrop"}, enable=[])
    assert "[store] url must start with sqlite:// or postgres://, not mysql" in str(e.value)
