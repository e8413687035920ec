"""Starts the real `outcrop` binary for the suite: a free port, a temporary data dir, and the
shared model cache (OUTCROP_MODELS_DIR). Tests talk to it only through real clients."""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from enable_model_access import enable_model_access  # noqa: E402

CLAUDE_MODELS = ["anthropic.claude-v2", "anthropic.claude-v2:1", "anthropic.claude-instant-v1"]

# Most tests prove wire behaviour, which any model shows: they run on the tiny chat model,
# several times faster than the default one. Tests of what only a capable model can do
# (test_default_model.py) ask for the default model by name.
DEFAULT_CHAT_MODEL = "qwen2.5-coder-0.5b-instruct"
os.environ.setdefault("OUTCROP_CHAT_MODEL", "smollm2-135m-instruct")


def outcrop_binary() -> str:
    explicit = os.environ.get("OUTCROP_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    return str(Path(target) / "release" / "outcrop")


def shared_models_dir() -> Path:
    """The model cache the suite's servers share (OUTCROP_MODELS_DIR, else the default)."""
    return Path(os.environ.get("OUTCROP_MODELS_DIR", Path.home() / ".cache" / "outcrop" / "models"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One running `outcrop serve` process."""

    def __init__(self, config: str = "", host: str = "127.0.0.1", enable=CLAUDE_MODELS, env=None, data_dir=None):
        """Starts a server; `enable` lists the models whose access is enabled first, through
        the control plane, as a user does in the console before calling them; `env` adds to
        (or overrides) its environment."""
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="outcrop-test-")
        self.log_path = Path(self.dir.name) / "server.log"
        cfg = Path(self.dir.name) / "outcrop.toml"
        cfg.write_text(config)
        extra, env = env or {}, dict(os.environ)
        env.setdefault("OUTCROP_MODELS_DIR", str(shared_models_dir()))
        env["OUTCROP_LOG"] = "info,outcrop_api=debug"
        env.update(extra)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [outcrop_binary(), "serve", "--listen", f"{host}:{self.port}",
             "--data-dir", str(data_dir or Path(self.dir.name) / "data"), "--config", str(cfg)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.wait_healthy()
        if enable:
            enable_model_access(enable, endpoint_url=self.url, region_name="us-east-1",
                                aws_access_key_id="test", aws_secret_access_key="test")

    def wait_healthy(self, timeout: float = 120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"outcrop exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.url + "/_outcrop/health", timeout=2) as r:
                    if r.status == 200:
                        self.health = json.load(r)
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("outcrop did not become healthy:\n" + self.log_path.read_text())

    def logs(self) -> str:
        return self.log_path.read_text()

    def cli(self, *args) -> str:
        """Runs an `outcrop` command on this server's data directory; its stdout."""
        data_dir = str(Path(self.dir.name) / "data")
        r = subprocess.run([outcrop_binary(), *args, "--data-dir", data_dir], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.dir.cleanup()
        return self.proc.returncode


@pytest.fixture(scope="session")
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def client_env(server):
    """The environment a user sets to point unmodified code at Outcrop."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=server.url, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    return env


def make_client(server, key="test", secret="test", token=None, region="us-east-1"):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime", endpoint_url=server.url, region_name=region,
        aws_access_key_id=key, aws_secret_access_key=secret, aws_session_token=token,
        config=Config(retries={"max_attempts": 1}, read_timeout=300),
    )


@pytest.fixture
def runtime(server):
    return make_client(server)
