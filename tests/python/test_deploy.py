"""The deployment files in deploy/ validated offline: the compose file against the Compose
specification's schema, the Kubernetes manifests against Kubernetes' schemas in strict mode
(unknown fields refused). A broken copy of each is refused too, so the checks can fail."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MANIFESTS = sorted((ROOT / "deploy/kubernetes").glob("*.yaml"))


def run(*args):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)


def test_compose_file_follows_the_compose_specification(tmp_path):
    ok = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", ROOT / "deploy/compose.yaml")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "compose.yaml"
    broken.write_text((ROOT / "deploy/compose.yaml").read_text().replace("stop_grace_period:", "stop_grace_periods:"))
    refused = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", broken)
    assert refused.returncode != 0


def test_kubernetes_manifests_are_valid_in_strict_mode(tmp_path):
    kinds = {p.name for p in MANIFESTS}
    assert {"deployment.yaml", "service.yaml", "secret.yaml", "pdb.yaml"} <= kinds
    ok = run(BIN / "kubernetes-validate", "--strict", *MANIFESTS)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    deployment = (ROOT / "deploy/kubernetes/deployment.yaml").read_text()
    assert "path: /_outcrop/health" in deployment and "secretKeyRef" in deployment
    broken = tmp_path / "deployment.yaml"
    broken.write_text(deployment.replace("readinessProbe:", "readinesProbe:"))
    refused = run(BIN / "kubernetes-validate", "--strict", broken)
    assert refused.returncode != 0
