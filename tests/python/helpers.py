"""Raw requests for what boto3 will not send (no auth, broken headers), signed with botocore's
own SigV4 signer when a signature is wanted."""
import json

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

HTTP = urllib3.PoolManager()


def raw(server, method, path, body=b"", headers=None):
    r = HTTP.request(method, server.url + path, body=body, headers=headers or {}, retries=False)
    return r.status, dict(r.headers), r.data


def signed(server, method, path, body=b"", key="test", secret="test", headers=None, service="bedrock"):
    req = AWSRequest(method=method, url=server.url + path, data=body, headers=headers or {})
    SigV4Auth(Credentials(key, secret), service, "us-east-1").add_auth(req)
    return raw(server, method, path, body, dict(req.headers))


def error_of(status_headers_body):
    status, headers, body = status_headers_body
    lower = {k.lower(): v for k, v in headers.items()}
    return status, lower.get("x-amzn-errortype", ""), json.loads(body)["message"], lower


def signed_headers(server, method, path, body=b"", key="test", secret="test"):
    """Headers of a request signed by botocore, for clients built on plain sockets."""
    req = AWSRequest(method=method, url=server.url + path, data=body, headers={})
    SigV4Auth(Credentials(key, secret), "bedrock", "us-east-1").add_auth(req)
    return dict(req.headers)
