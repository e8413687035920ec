"""pytest-outcrop: tests of Bedrock code against a local Outcrop server.

The session fixture ``outcrop`` starts ``outcrop serve --ephemeral --script FILE`` once (a
throw-away data directory, every model enabled, a free port), points boto3 at it through the
``AWS_*`` environment variables, and stops it at the end. ``outcrop_script`` sets the rules the
server answers by for one test (TOML, see Outcrop's docs/scripts.md); they are cleared after
the test. Without a rule, a request fails with a ValidationException that names it.

The ``outcrop`` binary is taken from ``--outcrop-bin``, ``$OUTCROP_BIN`` or ``PATH``.
"""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest


class Outcrop:
    """One running ``outcrop serve --ephemeral``."""

    def __init__(self, binary, script_path, log_path, timeout=60.0):
        self.script_path = Path(script_path)
        self.script_path.write_text("")
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(
            [binary, "serve", "--ephemeral", "--script", str(self.script_path)],
            stdout=subprocess.PIPE, stderr=self._log, text=True,
        )
        self.info = self._ready_line(timeout)
        self.endpoint = self.info["endpoint"]

    def _ready_line(self, timeout):
        got = {}
        reader = threading.Thread(target=lambda: got.update(line=self.process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        line = got.get("line", "")
        if not line:
            self.stop()
            raise RuntimeError(f"outcrop did not start; its log: {Path(self._log.name).read_text()}")
        return json.loads(line)

    def script(self, rules):
        """Replaces the rules (TOML text); the server reads them before the next request."""
        before = self.script_path.stat().st_mtime_ns
        self.script_path.write_text(rules)
        # A distinct modification time even within the file system's clock resolution.
        later = max(time.time_ns(), before + 1_000_000)
        os.utime(self.script_path, ns=(later, later))

    def env(self):
        """The variables that point the AWS SDKs at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def pytest_addoption(parser):
    parser.addoption("--outcrop-bin", default=None, help="the outcrop binary (default: $OUTCROP_BIN, then PATH)")


def _binary(config):
    binary = config.getoption("--outcrop-bin") or os.environ.get("OUTCROP_BIN") or shutil.which("outcrop")
    if not binary:
        raise pytest.UsageError("pytest-outcrop: no outcrop binary; pass --outcrop-bin or set OUTCROP_BIN")
    return binary


@pytest.fixture(scope="session")
def outcrop(request):
    """The session's Outcrop server, with the AWS_* variables set for boto3."""
    work = tempfile.mkdtemp(prefix="pytest-outcrop-")
    server = Outcrop(_binary(request.config), Path(work) / "script.toml", Path(work) / "outcrop.log")
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    yield server
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def outcrop_script(outcrop):
    """Sets this test's rules: ``outcrop_script('[[rule]] ...')``; cleared afterwards."""
    yield outcrop.script
    outcrop.script("")
