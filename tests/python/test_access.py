"""Model access as in the seed story: without it every call is refused; the console flow
(agreement, and for Anthropic the use-case form) grants it at once, with a notification."""
import email
import json
from pathlib import Path
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import Server, make_client
from enable_model_access import USE_CASE, enable_model_access

DENIED = "You don't have access to the model with the specified model ID."
BODY = json.dumps({"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 3})


@pytest.fixture(scope="module")
def fresh():
    s = Server(enable=[])
    yield s
    s.stop()


def control(server):
    return boto3.client("bedrock", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}))


def error(call, *args, **kwargs):
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def availability(bedrock, model):
    a = bedrock.get_foundation_model_availability(modelId=model)
    return a["agreementAvailability"]["status"], a["entitlementAvailability"], a["authorizationStatus"]


def outbox(server):
    return sorted((Path(server.dir.name) / "data" / "outbox").glob("*.eml"))


def test_access_flow(fresh):
    runtime, bedrock = make_client(fresh), control(fresh)
    model = "anthropic.claude-v2"
    # Nothing enabled: every runtime call is refused, streaming too.
    assert error(runtime.invoke_model, modelId=model, body=BODY) == (403, "AccessDeniedException", DENIED)
    assert error(runtime.invoke_model_with_response_stream, modelId=model, body=BODY)[:2] == (403, "AccessDeniedException")
    assert availability(bedrock, model) == ("NOT_AVAILABLE", "NOT_AVAILABLE", "AUTHORIZED")
    assert error(bedrock.get_use_case_for_model_access)[:2] == (404, "ResourceNotFoundException")

    # The agreement alone is not enough for Anthropic.
    offers = bedrock.list_foundation_model_agreement_offers(modelId=model)["offers"]
    token = offers[0]["offerToken"]
    rates = offers[0]["termDetails"]["usageBasedPricingTerm"]["rateCard"]
    assert [r["price"] for r in rates] == ["0.008", "0.024"]
    r = bedrock.create_foundation_model_agreement(modelId=model, offerToken=token)
    assert (r["ResponseMetadata"]["HTTPStatusCode"], r["modelId"]) == (202, model)
    assert availability(bedrock, model) == ("AVAILABLE", "NOT_AVAILABLE", "AUTHORIZED")
    assert error(runtime.invoke_model, modelId=model, body=BODY)[:2] == (403, "AccessDeniedException")

    # The use-case form completes it, at once.
    form = json.dumps(USE_CASE).encode()
    assert bedrock.put_use_case_for_model_access(formData=form)["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert bedrock.get_use_case_for_model_access()["formData"] == form
    assert availability(bedrock, model) == ("AVAILABLE", "AVAILABLE", "AUTHORIZED")
    assert json.loads(runtime.invoke_model(modelId=model, body=BODY)["body"].read())["stop_reason"]
    # ...for that model only.
    assert error(runtime.invoke_model, modelId="anthropic.claude-v2:1", body=BODY)[:2] == (403, "AccessDeniedException")

    # The notification: an RFC 5322 message in the outbox.
    messages = [email.message_from_bytes(p.read_bytes()) for p in outbox(fresh)]
    assert messages and messages[0]["Subject"].startswith("Agreement recorded: Claude")
    assert messages[0]["Date"] and messages[0]["Message-ID"]

    # Deleting the agreement takes access away again.
    r = bedrock.delete_foundation_model_agreement(modelId=model)
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert error(runtime.invoke_model, modelId=model, body=BODY)[:2] == (403, "AccessDeniedException")
    assert error(bedrock.delete_foundation_model_agreement, modelId=model)[:2] == (404, "ResourceNotFoundException")

    # With the form on file, a new agreement grants access and says so.
    bedrock.create_foundation_model_agreement(modelId=model, offerToken=token)
    assert json.loads(runtime.invoke_model(modelId=model, body=BODY)["body"].read())["stop_reason"]
    assert email.message_from_bytes(outbox(fresh)[-1].read_bytes())["Subject"].startswith("Access granted: Claude")


def test_access_errors(fresh):
    bedrock = control(fresh)
    token_v21 = bedrock.list_foundation_model_agreement_offers(modelId="anthropic.claude-v2:1")["offers"][0]["offerToken"]
    assert error(bedrock.create_foundation_model_agreement, modelId="anthropic.claude-instant-v1", offerToken=token_v21) == (
        400, "ValidationException", "The provided offer token is invalid.")
    assert error(bedrock.create_foundation_model_agreement, modelId="acme.nothing-v1", offerToken=token_v21) == (
        400, "ValidationException", "The provided model identifier is invalid.")
    assert error(bedrock.get_foundation_model_availability, modelId="acme.nothing-v1")[:2] == (400, "ValidationException")
    assert error(bedrock.put_use_case_for_model_access, formData=b"[1, 2, 3, 4, 5]")[:2] == (400, "ValidationException")
    assert error(bedrock.put_use_case_for_model_access, formData=b"{}")[:2] == (400, "ValidationException")  # < 10 bytes


def test_unknown_model_is_invalid_before_access(fresh):
    assert error(make_client(fresh).invoke_model, modelId="anthropic.claude-v9", body=BODY) == (
        400, "ValidationException", "The provided model identifier is invalid.")


def test_open_mode_needs_no_grant():
    s = Server(config='[access]\nmode = "open"\n', enable=[])
    try:
        assert json.loads(make_client(s).invoke_model(modelId="anthropic.claude-instant-v1", body=BODY)["body"].read())
        assert availability(control(s), "anthropic.claude-instant-v1")[1] == "AVAILABLE"
    finally:
        s.stop()


class SmtpSink:
    """A minimal SMTP server (one thread) that keeps every message it receives."""

    def __init__(self):
        import socket
        import threading
        self.messages = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as r:
                def say(line):
                    conn.sendall(line.encode() + b"\r\n")
                say("220 sink ESMTP")
                data, in_data = [], False
                for raw in r:
                    line = raw.decode(errors="replace").rstrip("\r\n")
                    if in_data:
                        if line == ".":
                            self.messages.append("\r\n".join(data))
                            data, in_data = [], False
                            say("250 queued")
                        else:
                            data.append(line[1:] if line.startswith("..") else line)
                    elif line.upper().startswith("EHLO"):
                        say("250 sink")
                    elif line.upper() == "DATA":
                        in_data = True
                        say("354 go on")
                    elif line.upper() == "QUIT":
                        say("221 bye")
                        break
                    else:
                        say("250 ok")


def test_grant_is_mailed_over_smtp_when_configured():
    sink = SmtpSink()
    s = Server(config=f'[smtp]\nhost = "127.0.0.1"\nport = {sink.port}\nto = "owner@example.com"\n', enable=[])
    try:
        enable_model_access(["meta.llama3-8b-instruct-v1:0"], endpoint_url=s.url, region_name="us-east-1",
                            aws_access_key_id="test", aws_secret_access_key="test")
        deadline = time.time() + 10
        while not sink.messages and time.time() < deadline:
            time.sleep(0.1)
        assert sink.messages, s.logs()
        assert "Subject: Access granted: Llama 3 8B Instruct" in sink.messages[0]
    finally:
        s.stop()
        sink.sock.close()
