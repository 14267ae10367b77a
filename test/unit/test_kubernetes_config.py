"""mosquitto_config.validate for mosquitto:kubernetes (issue #23): each bad
value names its key; with kubernetes on, a cluster pillar needs no master
(the hub and spokes are pods) and the image's tag is the broker version."""
import pytest
from salt.exceptions import CommandExecutionError

from test.support.config import cfg, error_of, settings
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)


def kubernetes(**values):
    return {"kubernetes": {"enabled": True, "exporter_image": "registry.example.com/exporter:1", **values}}


def test_kubernetes_defaults_are_valid_and_off():
    out = cfg.validate(settings())
    assert out["kubernetes"]["enabled"] is False
    assert out["kubernetes"]["exporter_image"] == "" and out["kubernetes"]["uid"] == 1883


def test_cluster_rendered_for_kubernetes_needs_no_master_and_no_role():
    cluster = {"hub": "mqtt1.example.com", "topics": ["fleet/# both 2"]}
    out = cfg.validate(settings(cluster=cluster, **kubernetes(image="eclipse-mosquitto:2.0.18", spokes=2)),
                       minion_id="render-host", broker_version={"version": "2.0.18", "where": "image"})
    assert out["kubernetes"]["spokes"] == 2
    assert out["cluster"]["role"] is None and out["cluster"]["topic_lines"] == ["fleet/# both 2"]
    assert out["cluster"]["acl"] == ["readwrite fleet/#"]
    # The same pillar on hosts: this minion would be a spoke the hub's
    # members glob does not match.
    with pytest.raises(CommandExecutionError, match="mosquitto:cluster:members"):
        cfg.validate(settings(cluster=dict(cluster, members="mqtt*")), minion_id="render-host",
                     broker_version={"version": "2.0.18", "where": "installed"})


def test_unset_spokes_are_as_many_as_the_mine_knows_masterless_refused(monkeypatch):
    """kubernetes:spokes unset: one replica per spoke of the host cluster
    the Salt mine knows (mine.get of the real mosquitto_cluster module);
    masterless, or with none known, refused naming the key."""
    from test.support.config import master_mine, passwd, spoke_entry
    entries = master_mine(monkeypatch, "render-host")
    hashed = passwd.hash_password("spoke-secret")
    entries.update({m: spoke_entry(m, hashed) for m in ("mqtt2", "mqtt3", "mqtt4", "other9")})
    cluster = {"hub": "mqtt1", "members": "mqtt*", "topics": ["fleet/# both 1"]}
    out = cfg.validate(settings(cluster=cluster, **kubernetes()), minion_id="render-host")
    assert out["kubernetes"]["spokes"] == 3
    # An explicit count wins.
    out = cfg.validate(settings(cluster=cluster, **kubernetes(spokes=5)), minion_id="render-host")
    assert out["kubernetes"]["spokes"] == 5
    entries.clear()
    assert "mosquitto:kubernetes:spokes: not set, and the Salt mine knows no spoke" in \
        error_of(cluster=cluster, **kubernetes())
    monkeypatch.setattr(cfg, "__opts__", {"file_client": "local"}, raising=False)
    text = error_of(cluster=cluster, **kubernetes())
    assert "mosquitto:kubernetes:spokes: not set, and without a Salt master" in text, text


def test_broker_version_is_the_kubernetes_images_tag():
    data = settings(cluster={"hub": "h", "topics": ["a/# both 2"]}, **kubernetes(image="eclipse-mosquitto:2.0.15"))
    assert cfg.broker_version(data) == {"version": "2.0.15", "where": "image eclipse-mosquitto:2.0.15"}


def test_exporter_image_is_needed_only_with_the_exporter():
    assert "mosquitto:kubernetes:exporter_image: missing" in error_of(kubernetes={"enabled": True})
    cfg.validate(settings(kubernetes={"enabled": True}, exporter={"enabled": False}))


@pytest.mark.parametrize("values,message", [
    ({"enabled": "yes"}, "mosquitto:kubernetes:enabled: must be true or false"),
    ({"dir": "relative/dir"}, "mosquitto:kubernetes:dir: must be an absolute path"),
    ({"name": "Mosquitto"}, "mosquitto:kubernetes:name: must be a DNS label"),
    ({"name": "m" * 31}, "mosquitto:kubernetes:name: must be a DNS label"),
    ({"namespace": "a_b"}, "mosquitto:kubernetes:namespace: must be a DNS label"),
    ({"monitoring_namespace": ""}, "mosquitto:kubernetes:monitoring_namespace: must not be empty"),
    ({"cluster_domain": "bad domain"}, "mosquitto:kubernetes:cluster_domain: is not a DNS name"),
    ({"image": "bad image"}, "mosquitto:kubernetes:image: is not an image reference"),
    ({"exporter_image": "a b"}, "mosquitto:kubernetes:exporter_image: is not an image reference"),
    ({"uid": 0}, "mosquitto:kubernetes:uid: must not be 0"),
    ({"gid": "1883"}, "mosquitto:kubernetes:gid: must be an integer"),
    ({"spokes": 0}, "mosquitto:kubernetes:spokes: must be between 1 and 100"),
    ({"storage": "1 GB"}, "mosquitto:kubernetes:storage: is not a Kubernetes quantity"),
    ({"storage_class": "Fast_SSD"}, "mosquitto:kubernetes:storage_class: is not a StorageClass name"),
    ({"service_type": "ExternalName"}, "mosquitto:kubernetes:service_type: must be one of"),
    ({"service_monitor": 1}, "mosquitto:kubernetes:service_monitor: must be true or false"),
    ({"resources": {"broker": {"limits": {"memory": "lots"}}}},
     "mosquitto:kubernetes:resources:broker:limits:memory: is not a Kubernetes quantity"),
    ({"resources": {"broker": {"limit": {}}}}, "mosquitto:kubernetes:resources:broker:limit: unknown key"),
    ({"resources": {"sidecar": {}}}, "mosquitto:kubernetes:resources:sidecar: unknown key"),
    ({"kubeconfig": "kube.yaml"}, "mosquitto:kubernetes:kubeconfig: must be an absolute path"),
    ({"kubectl": ""}, "mosquitto:kubernetes:kubectl: must not be empty"),
    ({"replicas": 3}, "mosquitto:kubernetes:replicas: unknown key"),
])
def test_bad_kubernetes_pillar_names_the_key(values, message):
    assert message in error_of(**kubernetes(**values))
