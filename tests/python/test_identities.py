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
    # The CLI acts through the service: its errors are the service's (IAM's) texts.
    assert bad.returncode != 0 and 'The user name "no spaces" is not valid' in bad.stderr
    nobody = cli(server, "keys", "create", "--user", "nobody")
    assert nobody.returncode != 0 and "The user with name nobody cannot be found." in nobody.stderr
    assert "outcrop users create nobody" in nobody.stderr


def deny_policy(tmp_path, model_arn):
    doc = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"], "Resource": model_arn}]}
    path = tmp_path / "deny.json"
    path.write_text(json.dumps(doc))
    return path


def new_key(server, user, *extra):
    assert cli(server, "users", "create", user, *extra).returncode == 0
    key = json.loads(cli(server, "keys", "create", "--user", user).stdout)["AccessKey"]
    return make_client(server, key=key["AccessKeyId"], secret=key["SecretAccessKey"]), key


def test_policy_deny_blocks_exactly_the_denied_model(server, tmp_path):
    client, _ = new_key(server, "carol")
    client.invoke_model(modelId="anthropic.claude-v2", body=BODY)
    put = cli(server, "policies", "put", "--user", "carol", "--name", "NoClaudeV2",
              "--document", str(deny_policy(tmp_path, "arn:aws:bedrock:*::foundation-model/anthropic.claude-v2")))
    assert put.returncode == 0, put.stderr
    with pytest.raises(ClientError) as e:
        client.invoke_model(modelId="anthropic.claude-v2", body=BODY)
    err = e.value.response["Error"]
    assert err["Code"] == "AccessDeniedException"
    assert err["Message"].startswith(
        "User: arn:aws:iam::000000000000:user/carol is not authorized to perform: bedrock:InvokeModel on resource: "
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-v2")
    # Converse needs bedrock:InvokeModel too, as on AWS.
    with pytest.raises(ClientError) as e:
        client.converse(modelId="anthropic.claude-v2", messages=[{"role": "user", "content": [{"text": "Hi"}]}])
    assert e.value.response["Error"]["Code"] == "AccessDeniedException"
    # Another model stays allowed by the default full-access policy.
    client.invoke_model(modelId="anthropic.claude-v2:1", body=BODY)
    listed = json.loads(cli(server, "policies", "list", "--user", "carol", "--format", "json").stdout)
    assert [p["PolicyName"] for p in listed["Policies"]] == ["BedrockFullAccess", "NoClaudeV2"]


def test_a_user_without_policies_may_do_nothing(server):
    client, _ = new_key(server, "dave", "--no-default-policy")
    with pytest.raises(ClientError) as e:
        client.invoke_model(modelId="anthropic.claude-v2", body=BODY)
    assert e.value.response["Error"]["Message"].endswith(
        "because no identity-based policy allows the bedrock:InvokeModel action")
    import boto3
    bedrock = boto3.client("bedrock", endpoint_url=server.url, region_name="us-east-1",
                           aws_access_key_id=client._request_signer._credentials.access_key,
                           aws_secret_access_key=client._request_signer._credentials.secret_key)
    with pytest.raises(ClientError) as e:
        bedrock.list_foundation_models()
    assert "bedrock:ListFoundationModels on resource: *" in e.value.response["Error"]["Message"]


def test_bad_policy_documents_are_refused(server, tmp_path):
    assert cli(server, "users", "create", "erin").returncode == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"Statement": [{"Effect": "Perhaps", "Action": "*", "Resource": "*"}]}')
    r = cli(server, "policies", "put", "--user", "erin", "--name", "x", "--document", str(bad))
    assert r.returncode != 0 and "not valid" in r.stderr


def test_secrets_are_sealed_at_rest_and_never_logged(server):
    _, key = new_key(server, "frank")
    secret = key["SecretAccessKey"].encode()
    data = Path(server.dir.name) / "data"
    for f in data.glob("outcrop.db*"):
        assert secret not in f.read_bytes(), f
    key_file = data / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key["SecretAccessKey"] not in server.logs()


def test_cli_lists_and_deletes(server):
    client, key = new_key(server, "grace")
    users = json.loads(cli(server, "users", "list", "--format", "json").stdout)["Users"]
    assert "grace" in [u["UserName"] for u in users]
    table = cli(server, "keys", "list").stdout
    assert key["AccessKeyId"] in table and key["SecretAccessKey"] not in table
    assert cli(server, "keys", "delete", key["AccessKeyId"]).returncode == 0
    with pytest.raises(ClientError) as e:
        client.invoke_model(modelId="anthropic.claude-v2", body=BODY)
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    assert cli(server, "users", "delete", "grace").returncode == 0
    assert cli(server, "users", "delete", "grace").returncode != 0
    catalog = json.loads(cli(server, "models", "list", "--catalog", "--format", "json").stdout)["Models"]
    assert {"anthropic.claude-v2", "amazon.titan-embed-text-v2:0"} <= {m["ModelId"] for m in catalog}


def test_cli_access_request_grant_and_revoke(tmp_path):
    s = Server(enable=[])
    try:
        rt = make_client(s)
        with pytest.raises(ClientError) as e:
            rt.invoke_model(modelId="anthropic.claude-v2", body=BODY)
        assert e.value.response["Error"]["Code"] == "AccessDeniedException"
        refused = cli(s, "access", "grant", "anthropic.claude-v2")
        assert refused.returncode != 0 and "use-case form" in refused.stderr
        form = tmp_path / "form.json"
        form.write_text(json.dumps({"companyName": "Acme", "companyWebsite": "https://acme.example", "intendedUsers": "0",
                                    "industryOption": "Technology", "useCases": "Testing"}))
        r = cli(s, "access", "request", "anthropic.claude-v2", "--use-case", str(form))
        assert r.returncode == 0, r.stderr
        rt.invoke_model(modelId="anthropic.claude-v2", body=BODY)
        listed = json.loads(cli(s, "access", "list", "--format", "json").stdout)["ModelAccess"]
        status = {m["ModelId"]: m["Status"] for m in listed}
        assert status["anthropic.claude-v2"] == "AUTHORIZED" and status["anthropic.claude-v2:1"] == "NOT_AUTHORIZED"
        assert any((Path(s.dir.name) / "data" / "outbox").glob("*anthropic.claude-v2.eml"))
        assert cli(s, "access", "revoke", "anthropic.claude-v2").returncode == 0
        with pytest.raises(ClientError) as e:
            rt.invoke_model(modelId="anthropic.claude-v2", body=BODY)
        assert e.value.response["Error"]["Code"] == "AccessDeniedException"
        assert cli(s, "access", "grant", "meta.llama3-8b-instruct-v1:0").returncode == 0
        rt.invoke_model(modelId="meta.llama3-8b-instruct-v1:0", body=json.dumps({"prompt": "Hi", "max_gen_len": 3}))
    finally:
        s.stop()
