"""The seed article's scripts, run verbatim as subprocesses with environment variables only."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

SEED = Path(__file__).parent / "seed"


def run_seed(python, script, env):
    return subprocess.run([python, str(SEED / script)], env=env, capture_output=True, text=True, timeout=300)


def old_boto_python():
    """The interpreter of a venv with boto3 1.28.57, the version the seed names."""
    python = os.environ.get("OUTCROP_OLD_BOTO_PYTHON")
    if not python:
        if os.environ.get("CI"):
            pytest.fail("OUTCROP_OLD_BOTO_PYTHON must be set in CI (scripts/test sets it)")
        pytest.skip("OUTCROP_OLD_BOTO_PYTHON not set")
    return python


def check_seed_success(result):
    assert result.returncode == 0, result.stderr
    body = ast.literal_eval(result.stdout.strip().splitlines()[-1])
    assert set(body) == {"completion", "stop_reason", "stop"}
    assert body["completion"].strip(), "a real, non-empty completion"
    assert body["stop_reason"] in ("stop_sequence", "max_tokens")
    if body["stop_reason"] == "stop_sequence":
        assert body["stop"] == "\n\nHuman:"
    else:
        assert body["stop"] is None


def check_seed_wrong_prompt(result):
    assert result.returncode != 0
    assert "ValidationException" in result.stderr
    assert ('Invalid prompt: prompt must start with "\n\nHuman:" turn, prompt must end with "\n\nAssistant:" turn'
            in result.stderr)


def test_seed_script_newest_boto3(client_env):
    check_seed_success(run_seed(sys.executable, "invoke_claude_v2.py", client_env))


def test_seed_wrong_prompt_newest_boto3(client_env):
    check_seed_wrong_prompt(run_seed(sys.executable, "invoke_claude_v2_wrong_prompt.py", client_env))


def test_seed_script_boto3_1_28_57(client_env):
    python = old_boto_python()
    version = subprocess.run([python, "-c", "import boto3; print(boto3.__version__)"], capture_output=True, text=True)
    assert version.stdout.strip() == "1.28.57"
    check_seed_success(run_seed(python, "invoke_claude_v2.py", client_env))


def test_seed_wrong_prompt_boto3_1_28_57(client_env):
    check_seed_wrong_prompt(run_seed(old_boto_python(), "invoke_claude_v2_wrong_prompt.py", client_env))


def test_aws_cli_v1_invoke_model(client_env, tmp_path):
    out = tmp_path / "out.json"
    result = subprocess.run(
        [sys.executable, "-m", "awscli", "bedrock-runtime", "invoke-model", "--region", "us-east-1",
         "--model-id", "anthropic.claude-v2",
         "--body", '{"prompt": "\\n\\nHuman: Name a colour.\\n\\nAssistant:", "max_tokens_to_sample": 20}',
         str(out)],
        env=client_env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    import json
    assert json.loads(result.stdout)["contentType"] == "application/json"
    body = json.loads(out.read_text())
    assert body["completion"].strip()
    assert body["stop_reason"] in ("stop_sequence", "max_tokens")
