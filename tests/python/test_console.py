"""The web console over plain HTTP: sign-in with an access key pair, the session cookie's
attributes, the model catalog with access status and filters, CSRF-checked forms, the error
answer of every console action, and nothing without a session. The end-to-end tests in a real
browser are in tests/browser/."""
import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request
import re

import pytest

from conftest import Server


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def browser():
    jar = http.cookiejar.CookieJar()
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect()), jar


def call(opener, url, data=None):
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with opener.open(url, data=body, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


@pytest.fixture(scope="module")
def console_server():
    s = Server(enable=["anthropic.claude-v2"])
    yield s
    s.stop()


def sign_in(server, key="test", secret="test"):
    opener, jar = browser()
    status, headers, _ = call(opener, server.url + "/console/sign-in",
                              {"access_key_id": key, "secret_access_key": secret})
    return opener, jar, status, headers


def test_nothing_without_a_session(console_server):
    opener, _ = browser()
    status, headers, _ = call(opener, console_server.url + "/console/models")
    assert status == 303 and headers["location"] == "/console/sign-in"
    status, _, page = call(opener, console_server.url + "/console/sign-in")
    assert status == 200 and 'name="secret_access_key"' in page and 'type="password"' in page


def test_bad_keys_are_refused(console_server):
    _, jar, status, _ = sign_in(console_server, secret="wrong")
    assert status == 401 and not list(jar)
    _, jar, status, _ = sign_in(console_server, key="AKIANOBODY")
    assert status == 401


def test_sign_in_catalog_and_sign_out(console_server):
    opener, jar, status, headers = sign_in(console_server)
    assert status == 303 and headers["location"] == "/console/models"
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    status, _, page = call(opener, console_server.url + "/console/models")
    assert status == 200
    assert "anthropic.claude-v2" in page and "amazon.titan-embed-text-v2:0" in page
    row = re.search(r"<code>anthropic\.claude-v2</code>.*?</tr>", page, re.S).group(0)
    assert "Access granted" in row
    row = re.search(r"<code>meta\.llama3-8b-instruct-v1:0</code>.*?</tr>", page, re.S).group(0)
    assert "Available to request" in row and "$0.0003 / $0.0006" in row
    assert re.search(r'<option value="us-east-1" selected>us-east-1</option>', page)
    status, _, page = call(opener, console_server.url + "/console/models?provider=Meta&modality=TEXT")
    assert "meta.llama3-8b-instruct-v1:0" in page and "anthropic.claude-v2" not in page
    # Sign-out needs the form's CSRF token.
    status, _, _ = call(opener, console_server.url + "/console/sign-out", {"csrf": "forged"})
    assert status == 403
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    status, headers, _ = call(opener, console_server.url + "/console/sign-out", {"csrf": csrf})
    assert status == 303
    status, _, _ = call(opener, console_server.url + "/console/models")
    assert status == 303, "the session ended"


def test_a_cli_key_signs_in(console_server):
    import json
    import subprocess
    from pathlib import Path
    from conftest import outcrop_binary
    data = str(Path(console_server.dir.name) / "data")
    assert subprocess.run([outcrop_binary(), "users", "create", "zoe", "--data-dir", data]).returncode == 0
    key = json.loads(subprocess.run([outcrop_binary(), "keys", "create", "--user", "zoe", "--data-dir", data],
                                    capture_output=True, text=True).stdout)["AccessKey"]
    opener, _, status, _ = sign_in(console_server, key["AccessKeyId"], key["SecretAccessKey"])
    assert status == 303
    status, _, page = call(opener, console_server.url + "/console/models")
    import html
    assert status == 200 and "arn:aws:iam::000000000000:user/zoe" in html.unescape(page)


def test_access_edit_with_the_use_case_form_then_the_seed_script_works():
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    s = Server(enable=[])
    try:
        opener, _, status, _ = sign_in(s)
        status, _, page = call(opener, s.url + "/console/access")
        assert status == 200 and 'value="anthropic.claude-v2"' in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        # CSRF is checked.
        status, _, _ = call(opener, s.url + "/console/access", {"csrf": "x", "model": "anthropic.claude-v2"})
        assert status == 403
        # Selecting an Anthropic model opens the use-case form first.
        status, _, page = call(opener, s.url + "/console/access", {"csrf": csrf, "model": "anthropic.claude-v2"})
        assert status == 200 and 'name="companyName"' in page
        form = [("csrf", csrf), ("model", "anthropic.claude-v2"), ("model", "meta.llama3-8b-instruct-v1:0"),
                ("companyName", "Acme"), ("companyWebsite", "https://acme.example"), ("intendedUsers", "0"),
                ("industryOption", "Technology"), ("useCases", "Trying the seed")]
        req = urllib.request.Request(s.url + "/console/access", data=urllib.parse.urlencode(form).encode())
        try:
            opener.open(req, timeout=10)
        except urllib.error.HTTPError as e:
            assert e.code == 303, e.read()
        status, _, page = call(opener, s.url + "/console/access")
        row = re.search(r"<code>anthropic\.claude-v2</code>.*?</tr>", page, re.S).group(0)
        assert "Access granted" in row
        row = re.search(r"<code>meta\.llama3-8b-instruct-v1:0</code>.*?</tr>", page, re.S).group(0)
        assert "Access granted" in row
        assert list((Path(s.dir.name) / "data" / "outbox").glob("*anthropic.claude-v2.eml"))
        # The seed article's script, unchanged, now succeeds.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ENDPOINT_URL=s.url, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                   AWS_DEFAULT_REGION="us-east-1")
        seed = Path(__file__).parent / "seed" / "invoke_claude_v2.py"
        r = subprocess.run([sys.executable, str(seed)], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "completion" in r.stdout
    finally:
        s.stop()


def test_usage_page_shows_the_calls_and_their_cost():
    import html
    import json
    from decimal import Decimal

    from conftest import make_client

    s = Server(enable=["anthropic.claude-v2"])
    try:
        r = make_client(s).invoke_model(modelId="anthropic.claude-v2", body=json.dumps(
            {"prompt": "\n\nHuman: Hi\n\nAssistant:", "max_tokens_to_sample": 5}))
        h = r["ResponseMetadata"]["HTTPHeaders"]
        i, o = int(h["x-amzn-bedrock-input-token-count"]), int(h["x-amzn-bedrock-output-token-count"])
        cost = (i * Decimal("0.008") + o * Decimal("0.024")) / 1000
        opener, _, _, _ = sign_in(s)
        status, _, page = call(opener, s.url + "/console/usage")
        page = html.unescape(page)
        assert status == 200
        row = re.search(r"<code>anthropic\.claude-v2</code>.*?</tr>", page, re.S).group(0)
        cells = re.findall(r'<td class="num">([^<]*)</td>', row)
        assert cells == ["1", "0", str(i), str(o), "0", "0", f"${cost.normalize()}"]
        assert '<svg role="img" aria-label="Cost (USD) per day (UTC)"' in page
        assert '<svg role="img" aria-label="Cost (USD) per model"' in page
        assert f"<title>anthropic.claude-v2: ${cost.normalize()}</title>" in page
        _, _, page = call(opener, s.url + "/console/usage?metric=tokens")
        assert '<svg role="img" aria-label="Tokens (input + output) per model"' in page
        assert f"<title>anthropic.claude-v2: {i + o}</title>" in page
        _, _, page = call(opener, s.url + "/console/usage?metric=nonsense")
        assert '<svg role="img" aria-label="Cost (USD) per model"' in page
        status, headers, csv = call(opener, s.url + "/console/usage.csv")
        assert status == 200 and headers["content-type"].startswith("text/csv")
        assert f"anthropic.claude-v2,1,0,0,0,{i},{o},{cost.normalize()}" in csv
        status, _, page = call(opener, s.url + "/console/usage?since=2999-01-01")
        assert "No calls in this period." in page
        opener2, _ = browser()
        status, _, _ = call(opener2, s.url + "/console/usage.csv")
        assert status == 303
    finally:
        s.stop()


def csrf_of(opener, server):
    _, _, page = call(opener, server.url + "/console/models")
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_console_actions_refuse_bad_input_with_the_reason(console_server):
    import html

    s = console_server
    opener, _, _, _ = sign_in(s)
    csrf = csrf_of(opener, s)

    def post(path, **form):
        status, headers, page = call(opener, s.url + path, {"csrf": csrf, **form})
        return status, html.unescape(page)

    status, page = post("/console/users", name="bad name!")
    assert status == 400 and 'The user name "bad name!" is not valid' in page
    assert post("/console/users", name="dup")[0] == 303
    status, page = post("/console/users", name="dup")
    assert status == 400 and "User with name dup already exists." in page
    status, page = post("/console/users/nobody/keys")
    assert status == 404 and "The user with name nobody cannot be found." in page
    status, page = post("/console/users/nobody/delete")
    assert status == 404 and "The user with name nobody cannot be found." in page
    status, page = post("/console/keys/AKIANOSUCHKEY/delete")
    assert status == 404 and "The Access Key with id AKIANOSUCHKEY cannot be found." in page
    status, page = post("/console/users/dup/policies", policy_name="p", document="{not json")
    assert status == 400 and "The policy document is not valid" in page
    status, page = post("/console/users/dup/policies", policy_name="bad name", document="{}")
    assert status == 400 and 'The policy name "bad name" is not valid' in page
    status, page = post("/console/settings/quotas", model="meta.llama3-8b-instruct-v1:0", rpm="-1",
                        action="save")
    assert status == 400 and '"-1" is not a whole number' in page
    assert post("/console/settings/quotas", model="mistral.mistral-7b-instruct-v0:2", rpm="9",
                tpm="unlimited", action="save")[0] == 303
    _, _, page = call(opener, s.url + "/console/settings")
    row = re.search(r"<code>mistral\.mistral-7b-instruct-v0:2</code>.*?</tr>", page, re.S).group(0)
    assert re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)[:3] == ["9", "—", "—"]
    assert post("/console/settings/quotas", model="mistral.mistral-7b-instruct-v0:2", action="reset")[0] == 303
    _, _, page = call(opener, s.url + "/console/settings")
    row = re.search(r"<code>mistral\.mistral-7b-instruct-v0:2</code>.*?</tr>", page, re.S).group(0)
    assert re.findall(r'<td class="num[^"]*">([^<]*)</td>', row)[:2] == ["800", "300000"]
    status, page = post("/console/settings/quotas", model="no.such-model", rpm="5", action="save")
    assert status == 400 and "The provided model identifier is invalid." in page
    status, page = post("/console/settings/logging", action="save")
    assert status == 400 and "must name an S3 or a CloudWatch destination" in page
    status, page = post("/console/settings/logging", log_group="bad group!", action="save")
    assert status == 400 and "failed to satisfy constraint" in page
    status, page = post("/console/region", region="mars-north-1")
    assert status == 400 and "That region is not offered." in page
    status, _, _ = call(opener, s.url + "/console/region", {"csrf": csrf, "region": "eu-west-1",
                                                            "back": "https://evil.example/"})
    assert status == 303  # back to the console only, never elsewhere
    status, headers, _ = call(opener, s.url + "/console/region", {"csrf": csrf, "region": "us-east-1",
                                                                  "back": "//evil.example/"})
    assert headers["location"] == "/console/models"
    status, page = post("/console/models/no.such-model")  # a GET-only page
    assert status == 405
    status, _, page = call(opener, s.url + "/console/models/no.such-model")
    assert status == 404 and "Model no.such-model is not in the catalog." in html.unescape(page)
    # Every form checks the CSRF token.
    for path in ["/console/users", "/console/users/dup/keys", "/console/users/dup/delete",
                 "/console/settings/quotas", "/console/settings/logging", "/console/region"]:
        status, _, _ = call(opener, s.url + path, {"csrf": "forged", "name": "x"})
        assert status == 403, path


def test_playground_calls_go_through_the_api_pipeline(console_server):
    import json

    s = console_server
    opener, _, _, _ = sign_in(s)
    csrf = csrf_of(opener, s)

    def run(op, model, body):
        req = urllib.request.Request(s.url + f"/console/playground/{op}/{model}", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json", "x-csrf-token": csrf})
        try:
            with opener.open(req, timeout=120) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    hello = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}], "inferenceConfig": {"maxTokens": 4}}
    status, headers, body = run("converse", "anthropic.claude-v2", hello)
    assert status == 200 and json.loads(body)["usage"]["outputTokens"] >= 1
    # Access is checked as on the API: no agreement, AccessDeniedException.
    status, headers, body = run("converse", "meta.llama3-8b-instruct-v1:0", hello)
    assert status == 403 and headers["x-amzn-errortype"].startswith("AccessDeniedException")
    # Bedrock's own validation errors come back unchanged.
    status, headers, body = run("converse", "anthropic.claude-v2", {"messages": []})
    assert status == 400 and headers["x-amzn-errortype"].startswith("ValidationException")
    status, _, body = run("delete-everything", "anthropic.claude-v2", hello)
    assert status == 404 and body == b"No such playground operation."
    status, headers, body = run("converse-stream", "anthropic.claude-v2", hello)
    assert status == 200 and headers["content-type"] == "application/vnd.amazon.eventstream"
    # The console's calls are in the ledger like any other.
    _, _, page = call(opener, s.url + "/console/usage")
    row = re.search(r"<code>anthropic\.claude-v2</code>.*?</tr>", page, re.S).group(0)
    assert int(re.findall(r'<td class="num">([^<]*)</td>', row)[0]) >= 2


def test_a_model_scoped_policy_shows_the_playground_with_that_model_only(console_server):
    import html
    import json

    s = console_server
    opener, _, _, _ = sign_in(s)
    csrf = csrf_of(opener, s)
    assert call(opener, s.url + "/console/users", {"csrf": csrf, "name": "scoped"})[0] == 303
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
        "bedrock:InvokeModelWithResponseStream", "bedrock:ListFoundationModels"],
        "Resource": "arn:aws:bedrock:*::foundation-model/anthropic.claude-v2"}]}
    status, _, _ = call(opener, s.url + "/console/users/scoped/policies",
                        {"csrf": csrf, "policy_name": "OnlyClaude", "document": json.dumps(policy)})
    assert status == 303
    status, _, page = call(opener, s.url + "/console/users/scoped/keys", {"csrf": csrf})
    key = re.search(r'id="access-key-id">([^<]+)<', page).group(1)
    secret = html.unescape(re.search(r'id="secret-access-key">([^<]+)<', page).group(1))
    scoped, _, status, _ = sign_in(s, key, secret)
    assert status == 303
    _, _, page = call(scoped, s.url + "/console/playground")
    assert 'href="/console/playground"' in page
    assert re.findall(r'<option value="([^"]+)" data-format', page) == ["anthropic.claude-v2"]
