"""SigV4 authentication and its errors, as boto3 and raw requests see them."""
import json

import pytest
from botocore.exceptions import ClientError

from conftest import make_client
from helpers import error_of, raw, signed

BODY = json.dumps({"prompt": "\n\nHuman: hi\n\nAssistant:", "max_tokens_to_sample": 2})
CORAL = ":http://internal.amazon.com/coral/com.amazon.coral.service/"


def boto_error(client):
    with pytest.raises(ClientError) as e:
        client.invoke_model(modelId="anthropic.claude-v2", body=BODY)
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"], r["ResponseMetadata"]["HTTPHeaders"]


def test_unknown_access_key(server):
    status, code, msg, headers = boto_error(make_client(server, key="AKIAUNKNOWN", secret="x"))
    assert (status, code, msg) == (403, "UnrecognizedClientException", "The security token included in the request is invalid.")
    assert headers["x-amzn-errortype"] == "UnrecognizedClientException" + CORAL


def test_wrong_secret(server):
    status, code, msg, headers = boto_error(make_client(server, secret="not-the-secret"))
    assert (status, code) == (403, "InvalidSignatureException")
    assert msg == ("The request signature we calculated does not match the signature you provided. Check your AWS "
                   "Secret Access Key and signing method. Consult the service documentation for details.")
    assert headers["x-amzn-errortype"] == "InvalidSignatureException" + CORAL


def test_unexpected_session_token(server):
    status, code, _, _ = boto_error(make_client(server, token="FwoGZXIvYXdzEXAMPLE"))
    assert (status, code) == (403, "UnrecognizedClientException")


def test_any_region_and_both_service_names(server):
    r = make_client(server, region="ap-northeast-1").invoke_model(modelId="anthropic.claude-v2", body=BODY)
    assert json.loads(r["body"].read())["stop_reason"]
    status, _, data = signed(server, "POST", "/model/anthropic.claude-v2/invoke", BODY.encode(), service="bedrock-runtime")
    assert status == 200, data
    status, code, msg, _ = error_of(signed(server, "POST", "/model/anthropic.claude-v2/invoke", BODY.encode(), service="s3"))
    assert (status, code) == (403, "InvalidSignatureException" + CORAL)
    assert "scoped to correct service" in msg


def test_double_encoded_model_id_signature(server):
    # boto3 sends %3A on the wire and signs %253A; raw "%3A" signed by botocore must verify too.
    status, _, data = signed(server, "POST", "/model/anthropic.claude-v2%3A1/invoke", BODY.encode())
    assert status == 200, data


def test_missing_authorization(server):
    status, code, msg, headers = error_of(raw(server, "POST", "/model/anthropic.claude-v2/invoke", BODY))
    assert (status, code, msg) == (403, "MissingAuthenticationTokenException" + CORAL, "Missing Authentication Token")
    assert len(headers["x-amzn-requestid"]) == 36


def test_malformed_authorization(server):
    status, code, msg, _ = error_of(raw(server, "POST", "/model/anthropic.claude-v2/invoke", BODY,
                                        {"Authorization": "AWS4-HMAC-SHA256 Credential=test/20261125/us-east-1/bedrock/aws4_request"}))
    assert (status, code) == (403, "IncompleteSignatureException" + CORAL)
    assert "requires 'Signature' parameter" in msg and "requires 'SignedHeaders' parameter" in msg


def test_expired_signature(server, monkeypatch):
    import datetime

    import botocore.auth
    past = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(minutes=20)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: past)
    status, code, msg, _ = error_of(signed(server, "POST", "/model/anthropic.claude-v2/invoke", BODY.encode()))
    assert (status, code) == (403, "InvalidSignatureException" + CORAL)
    assert msg.startswith("Signature expired: ")


def test_unknown_route(server):
    status, code, _, headers = error_of(signed(server, "GET", "/no/such/operation"))
    assert (status, code.split(":")[0]) == (404, "UnknownOperationException")
    status, code, _, _ = error_of(raw(server, "DELETE", "/model/anthropic.claude-v2/invoke"))
    assert status == 404
