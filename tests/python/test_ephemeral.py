"""`outcrop serve --ephemeral` for test suites, and the pytest-outcrop plugin's own example
test of an application's Bedrock code path, run as a user runs it."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3

from conftest import ROOT, outcrop_binary, shared_models_dir

PLUGIN = ROOT / "python" / "pytest-outcrop"


def test_ephemeral_server_announces_itself_and_leaves_nothing(tmp_path):
    script = tmp_path / "rules.toml"
    script.write_text('[[rule]]\nreply = { text = "scripted" }\n')
    env = dict(os.environ, OUTCROP_MODELS_DIR=str(shared_models_dir()))
    p = subprocess.Popen([outcrop_binary(), "serve", "--ephemeral", "--script", str(script)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        info = json.loads(p.stdout.readline())
        assert info["endpoint"].startswith("http://127.0.0.1:") and info["pid"] == p.pid
        data_dir = Path(info["data_dir"])
        assert data_dir.is_dir()
        # Every model is enabled, and answered by the script.
        client = boto3.client("bedrock-runtime", endpoint_url=info["endpoint"], region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        r = client.converse(modelId="meta.llama3-8b-instruct-v1:0",
                            messages=[{"role": "user", "content": [{"text": "hi"}]}])
        assert r["output"]["message"]["content"][0]["text"] == "scripted"
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    assert not data_dir.exists()


def test_the_pytest_plugin_example_passes():
    env = dict(os.environ, PYTHONPATH=str(PLUGIN), OUTCROP_BIN=outcrop_binary(),
               OUTCROP_MODELS_DIR=str(shared_models_dir()))
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "pytest_outcrop", "-p", "no:cacheprovider", "-q",
                        str(PLUGIN / "example")], capture_output=True, text=True, env=env, timeout=300, cwd=PLUGIN)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 passed" in r.stdout
