"""Users and access keys from the CLI: the way to authenticate when the server is reachable
from other machines (the development key only works on loopback)."""
import json
import subprocess
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import CLAUDE_MODELS, Server, enable_model_access, make_client, outcrop_binary

BODY = json.dumps({"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 3})


def cli(server, *args):
    data_dir = str(Path(server.dir.name) / "data")
    return subprocess.run([outcrop_binary(), *args, "--data-dir", data_dir], capture_output=True, text=True, timeout=60)


def test_cli_user_key_works_off_loopback():
    s = Server(host="0.0.0.0", enable=[])
    try:
        with pytest.raises(ClientError) as e:
            make_client(s).invoke_model(modelId="anthropic.claude-v2", body=BODY)
        assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"

        user = cli(s, "users", "create", "alice")
        assert user.returncode == 0, user.stderr
        assert json.loads(user.stdout)["User"]["Arn"] == "arn:aws:iam::000000000000:user/alice"
        created = cli(s, "keys", "create", "--user", "alice")
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)["AccessKey"]
        assert key["AccessKeyId"].startswith("AKIA") and len(key["SecretAccessKey"]) == 40

        creds = dict(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
        enable_model_access(CLAUDE_MODELS[:1], endpoint_url=s.url, region_name="us-east-1", **creds)
        r = make_client(s, key=key["AccessKeyId"], secret=key["SecretAccessKey"]).invoke_model(
            modelId="anthropic.claude-v2", body=BODY)
        assert json.loads(r["body"].read())["stop_reason"]
        with pytest.raises(ClientError) as e:
            make_client(s, key=key["AccessKeyId"], secret="wrong" + key["SecretAccessKey"][5:]).invoke_model(
                modelId="anthropic.claude-v2", body=BODY)
        assert e.value.response["Error"]["Code"] == "InvalidSignatureException"
    finally:
        s.stop()


def test_cli_identity_errors(server):
    taken = cli(server, "users", "create", "bob")
    assert taken.returncode == 0
    again = cli(server, "users", "create", "bob")
    assert again.returncode != 0 and "already exists" in again.stderr
    bad = cli(server, "users", "create", "no spaces")
    assert bad.returncode != 0 and "invalid user name" in bad.stderr
    nobody = cli(server, "keys", "create", "--user", "nobody")
    assert nobody.returncode != 0 and "no user nobody" in nobody.stderr
