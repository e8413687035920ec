"""Who may call, over the wire: HTTPS with the development CA, HTTP/2 (ALPN and cleartext
prior knowledge, SigV4 over `:authority`), Bedrock API keys from the CLI and from
aws-bedrock-token-generator through boto3 and the anthropic SDK, and the development key
refused through a forwarding proxy."""
import base64
import datetime
import hashlib
import hmac
import http.server
import json
import socketserver
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import boto3
import httpx
import pytest
from aws_bedrock_token_generator import BedrockTokenGenerator
from aws_bedrock_token_generator.token_generator import _generate_token
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from conftest import Server, free_port, make_client, outcrop_binary

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
INVALID = "Authentication failed: Please make sure your API Key is valid."
FORMAT = "Invalid API Key format: Must start with pre-defined prefix"
ALLOW_ALL = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "bedrock:*", "Resource": "*"}]})


class TlsServer:
    """HTTP on the suite's usual port, HTTPS (development CA) on a second one."""

    def __init__(self):
        self.tls_port = free_port()
        self.s = Server(
            config=f'[tls]\nself_signed = true\nlisten = "127.0.0.1:{self.tls_port}"\n',
            enable=["anthropic.claude-v2", HAIKU],
        )
        self.https = f"https://localhost:{self.tls_port}"
        self.ca = str(Path(self.s.dir.name) / "data" / "tls" / "ca.pem")

    def cli(self, *args):
        return self.s.cli(*args)

    def user(self, name):
        """A user allowed every Bedrock action, with an access key pair."""
        self.cli("users", "create", name)
        key = json.loads(self.cli("keys", "create", "--user", name))["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]


@pytest.fixture(scope="module")
def tls():
    t = TlsServer()
    yield t
    t.s.stop()


def trust(tls):
    return ssl.create_default_context(cafile=tls.ca)


def bearer_client(tls, token, monkeypatch):
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", token)
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return boto3.client("bedrock-runtime", endpoint_url=tls.https, region_name="us-east-1", verify=tls.ca,
                        config=Config(retries={"max_attempts": 1}))


def converse(client, text="Hello"):
    return client.converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": text}]}],
                           inferenceConfig={"maxTokens": 4})


def test_sigv4_over_https_with_the_development_ca(tls, monkeypatch):
    monkeypatch.setenv("AWS_CA_BUNDLE", tls.ca)
    client = boto3.client("bedrock-runtime", endpoint_url=tls.https, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    assert converse(client)["usage"]["outputTokens"] > 0
    # Without the CA the certificate is not trusted.
    monkeypatch.delenv("AWS_CA_BUNDLE")
    untrusted = boto3.client("bedrock-runtime", endpoint_url=tls.https, region_name="us-east-1",
                             aws_access_key_id="test", aws_secret_access_key="test",
                             config=Config(retries={"max_attempts": 1}))
    with pytest.raises(Exception, match="(?i)certificate"):
        converse(untrusted)


def test_long_term_api_key_from_the_cli_with_boto3(tls, monkeypatch):
    tls.user("bearer-alice")
    created = json.loads(tls.cli("keys", "create", "--user", "bearer-alice", "--bedrock-api-key", "--expires-in", "30"))
    cred = created["ServiceSpecificCredential"]
    assert cred["ServiceCredentialSecret"].startswith("ABSK") and cred["ServiceSpecificCredentialId"].startswith("ACCA")
    client = bearer_client(tls, cred["ServiceCredentialSecret"], monkeypatch)
    assert converse(client)["usage"]["outputTokens"] > 0
    stream = client.converse_stream(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "Hi"}]}],
                                    inferenceConfig={"maxTokens": 4})
    events = [next(iter(e)) for e in stream["stream"]]
    assert events[0] == "messageStart" and events[-1] == "metadata"

    # Revoked: refused with Bedrock's words.
    tls.cli("keys", "update", cred["ServiceSpecificCredentialId"], "--status", "inactive")
    with pytest.raises(ClientError) as e:
        converse(client)
    assert (e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]) == ("AccessDeniedException", INVALID)
    tls.cli("keys", "update", cred["ServiceSpecificCredentialId"], "--status", "active")
    assert converse(client)["usage"]["outputTokens"] > 0
    tls.cli("keys", "delete", cred["ServiceSpecificCredentialId"])
    with pytest.raises(ClientError) as e:
        converse(client)
    assert e.value.response["Error"]["Message"] == INVALID


def test_short_term_token_from_the_official_generator(tls, monkeypatch):
    key, secret = tls.user("bearer-bob")
    token = BedrockTokenGenerator().get_token(Credentials(key, secret), "us-west-2")
    client = bearer_client(tls, token, monkeypatch)
    assert converse(client)["usage"]["outputTokens"] > 0

    # Expired (a one-second token), malformed, and foreign (signed by a key unknown here).
    expired = _generate_token(Credentials(key, secret), "us-west-2", 1)
    time.sleep(2)
    foreign = BedrockTokenGenerator().get_token(Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"), "us-east-1")
    for bad, message in [(expired, INVALID), (foreign, INVALID), ("bedrock-api-key-" + "A" * 40, INVALID), ("not-a-key", FORMAT)]:
        with pytest.raises(ClientError) as e:
            converse(bearer_client(tls, bad, monkeypatch))
        assert (e.value.response["Error"]["Code"], e.value.response["Error"]["Message"]) == ("AccessDeniedException", message)


def test_anthropic_sdk_with_an_api_key(tls):
    from anthropic import AnthropicBedrock, DefaultHttpxClient

    key, secret = tls.user("bearer-carol")
    token = BedrockTokenGenerator().get_token(Credentials(key, secret), "us-east-1")
    client = AnthropicBedrock(api_key=token, aws_region="us-east-1", base_url=tls.https,
                              http_client=DefaultHttpxClient(verify=trust(tls)), max_retries=0)
    message = client.messages.create(model=HAIKU, max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    assert message.usage.output_tokens > 0
    bad = AnthropicBedrock(api_key="ABSK" + base64.b64encode(b"BedrockAPIKey-none-at-000000000000:x").decode(),
                           aws_region="us-east-1", base_url=tls.https, http_client=DefaultHttpxClient(verify=trust(tls)), max_retries=0)
    with pytest.raises(Exception) as e:
        bad.messages.create(model=HAIKU, max_tokens=4, messages=[{"role": "user", "content": "Hi"}])
    assert getattr(e.value, "status_code", None) == 403 and INVALID in str(e.value)


def sign_with_authority(method, url, body, key="test", secret="test", region="us-east-1"):
    """SigV4 as an HTTP/2 client signs it: the `:authority` pseudo-header instead of `host`."""
    parts = urllib.parse.urlsplit(url)
    now = datetime.datetime.now(datetime.timezone.utc)
    amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    headers = {":authority": parts.netloc, "content-type": "application/json", "x-amz-date": amz_date}
    names = sorted(headers)
    canonical_path = "/".join(urllib.parse.quote(seg, safe="-_.~") for seg in parts.path.split("/"))
    canonical = "\n".join([
        method, canonical_path, "",
        "".join(f"{n}:{headers[n]}\n" for n in names), ";".join(names), hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{day}/{region}/bedrock/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    k = f"AWS4{secret}".encode()
    for part in (day, region, "bedrock", "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    del headers[":authority"]
    headers["authorization"] = f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    return headers


@pytest.mark.parametrize("over", ["tls-alpn", "h2c-prior-knowledge"])
def test_http2_clients_signing_authority(tls, over):
    if over == "tls-alpn":
        client, base = httpx.Client(http2=True, verify=trust(tls)), tls.https
    else:
        client, base = httpx.Client(http1=False, http2=True), tls.s.url
    body = json.dumps({"messages": [{"role": "user", "content": [{"text": "Hi"}]}], "inferenceConfig": {"maxTokens": 4}}).encode()
    url = f"{base}/model/{urllib.parse.quote(HAIKU, safe='')}/converse"
    r = client.post(url, content=body, headers=sign_with_authority("POST", url, body))
    assert r.http_version == "HTTP/2" and r.status_code == 200, r.text
    assert r.json()["usage"]["outputTokens"] > 0
    # An event stream over HTTP/2.
    url = url.replace("/converse", "/converse-stream")
    with client.stream("POST", url, content=body, headers=sign_with_authority("POST", url, body)) as r:
        assert r.http_version == "HTTP/2" and r.status_code == 200
        assert r.headers["content-type"] == "application/vnd.amazon.eventstream"
        data = b"".join(r.iter_bytes())
    assert b"messageStart" in data and b"messageStop" in data and b"metadata" in data
    # A wrong secret still fails over :authority.
    r = client.post(url.replace("-stream", ""), content=body, headers=sign_with_authority("POST", url, body, secret="nope"))
    assert r.status_code == 403 and r.headers["x-amzn-errortype"].startswith("InvalidSignatureException")


def test_console_cookie_is_secure_over_tls(tls):
    context = trust(tls)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
    form = urllib.parse.urlencode({"access_key_id": "test", "secret_access_key": "test"}).encode()
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(tls.https + "/console/sign-in", data=form)
    assert e.value.code == 303
    assert "; Secure" in e.value.headers["set-cookie"]


class Forwarder(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def forwarding_proxy(target):
    """A reverse proxy on loopback that says it forwarded (X-Forwarded-For), as nginx does."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
            headers["X-Forwarded-For"] = "203.0.113.7"
            req = urllib.request.Request(target + self.path, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req) as r:
                    status, rheaders, data = r.status, r.headers, r.read()
            except urllib.error.HTTPError as e:
                status, rheaders, data = e.code, e.headers, e.read()
            self.send_response(status)
            for k, v in rheaders.items():
                if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(k, v)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    proxy = Forwarder(("127.0.0.1", 0), Handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    return proxy


def test_development_key_is_refused_through_a_forwarding_proxy(tls):
    body = json.dumps({"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 3})
    direct = make_client(tls.s)
    assert json.loads(direct.invoke_model(modelId="anthropic.claude-v2", body=body)["body"].read())["completion"] is not None
    proxy = forwarding_proxy(tls.s.url)
    try:
        through = boto3.client("bedrock-runtime", endpoint_url=f"http://127.0.0.1:{proxy.server_address[1]}",
                               region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test",
                               config=Config(retries={"max_attempts": 1}))
        with pytest.raises(ClientError) as e:
            through.invoke_model(modelId="anthropic.claude-v2", body=body)
        assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
        # A user's own key goes through the same proxy.
        key, secret = tls.user("proxied")
        user = boto3.client("bedrock-runtime", endpoint_url=f"http://127.0.0.1:{proxy.server_address[1]}",
                            region_name="us-east-1", aws_access_key_id=key, aws_secret_access_key=secret,
                            config=Config(retries={"max_attempts": 1}))
        assert json.loads(user.invoke_model(modelId="anthropic.claude-v2", body=body)["body"].read())["stop_reason"]
    finally:
        proxy.shutdown()


def test_dev_key_false_removes_the_development_key():
    s = Server(config="[auth]\ndev_key = false\n", enable=[])
    try:
        with pytest.raises(ClientError) as e:
            make_client(s).converse(modelId=HAIKU, messages=[{"role": "user", "content": [{"text": "Hi"}]}])
        assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    finally:
        s.stop()


def make_cert(directory, name):
    """A self-signed certificate for localhost, written as NAME.pem and NAME.key (openssl)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def served_certificate(port):
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with context.wrap_socket(__import__("socket").create_connection(("127.0.0.1", port)), server_hostname="localhost") as s:
        return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def test_certificate_files_are_reloaded_on_sighup(tmp_path):
    import signal

    first, second = make_cert(tmp_path, "first"), make_cert(tmp_path, "second")
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    cert.write_bytes(first[0].read_bytes())
    key.write_bytes(first[1].read_bytes())
    port = free_port()
    s = Server(config=f'[tls]\ncert = "{cert}"\nkey = "{key}"\nlisten = "127.0.0.1:{port}"\n', enable=[])
    try:
        fingerprint = lambda path: hashlib.sha256(ssl.PEM_cert_to_DER_cert(path.read_text())).hexdigest()
        assert served_certificate(port) == fingerprint(first[0])
        cert.write_bytes(second[0].read_bytes())
        key.write_bytes(second[1].read_bytes())
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while served_certificate(port) != fingerprint(second[0]) and time.time() < deadline:
            time.sleep(0.1)
        assert served_certificate(port) == fingerprint(second[0])
        # A broken file on the next SIGHUP keeps the certificate in use, and says why.
        key.write_text("not a key")
        s.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert served_certificate(port) == fingerprint(second[0])
        assert s.proc.poll() is None
        assert "TLS certificate not reloaded" in s.logs()
    finally:
        s.stop()


def test_tls_configuration_errors_are_clear(tmp_path):
    cfg = tmp_path / "outcrop.toml"
    cfg.write_text(f'[tls]\ncert = "{tmp_path}/missing.pem"\nkey = "{tmp_path}/missing.key"\n')
    r = subprocess.run([outcrop_binary(), "serve", "--listen", f"127.0.0.1:{free_port()}", "--data-dir",
                        str(tmp_path / "data"), "--config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "missing.pem" in r.stderr, r.stderr
