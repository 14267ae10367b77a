"""mosquitto_kubernetes.plan without the exporter and with pillar bridges:
no sidecar, no metrics Service or port in the NetworkPolicy, and the pillar
bridge goes on the single broker with its password as a pillar key. (The
rendered cluster is tested in test/functional/test_kubernetes_manifests.py.)"""
import yaml

from test.support.config import BRIDGE, cfg, settings
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)
from test.support.modules import load

plan = load("_modules", "mosquitto_kubernetes").plan


def rendered(**pillar):
    data = cfg.validate(settings(kubernetes={"enabled": True}, exporter={"enabled": False}, **pillar),
                        minion_id="render-host")
    out = plan(data)
    docs = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out["files"]["broker.yaml"])}
    return out, docs


def test_without_exporter_there_is_no_sidecar_metrics_service_or_port():
    out, docs = rendered()
    pod = docs[("StatefulSet", "mosquitto")]["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["mosquitto"]
    assert ("Service", "mosquitto-metrics") not in docs
    assert docs[("NetworkPolicy", "mosquitto")]["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8883}]}]
    kustomization = yaml.safe_load(out["files"]["kustomization.yaml"])
    assert [s["name"] for s in kustomization["secretGenerator"]] == ["mosquitto-broker"]
    (role,) = out["roles"]
    assert set(role["users"]) == {"alice"}
    assert role["users"]["alice"] == {"password_pillar": "mosquitto:users:alice:password"}


def test_pillar_bridges_go_on_the_broker_with_their_password_by_key():
    bridge = dict(BRIDGE, remote_username="site-a", remote_password="never-in-the-plan")
    out, _ = rendered(bridges={"site-b": bridge})
    (role,) = out["roles"]
    assert role["bridges"]["site-b"]["remote_password_pillar"] == "mosquitto:bridges:site-b:remote_password"
    assert "never-in-the-plan" not in repr(out)
    kustomization = yaml.safe_load(out["files"]["kustomization.yaml"])
    assert "site-b.conf=secrets/broker/bridges/site-b.conf" in kustomization["secretGenerator"][0]["files"]
