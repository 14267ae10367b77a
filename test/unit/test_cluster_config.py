"""mosquitto:cluster and bridge safety: every refused pillar names its key
(issue 9); the derivation gives each host its role and bridge."""
import pytest
from salt.exceptions import CommandExecutionError

from test.support.config import (
    BRIDGE,
    CLUSTER,
    cfg,
    installed,
    settings,
    validate,
)
from test.support.config import configure_loader_modules as configure_loader_modules  # a fixture


def error_of(minion="mqtt2", version="2.0.11", **pillar):
    with pytest.raises(CommandExecutionError) as exc:
        validate(minion, version, **pillar)
    return str(exc.value)


def test_no_cluster_by_default():
    assert validate()["cluster"]["role"] is None


def test_spoke_derives_its_bridge_to_the_hub():
    c = validate(cluster=dict(CLUSTER, keepalive_interval=10, restart_timeout=2))["cluster"]
    assert c["role"] == "spoke"
    assert c["bridge"] == "cluster"
    assert c["remote_clientid"] == "mqtt2.cluster"
    assert c["username"] == "bridge.mqtt2"
    assert c["topic_lines"] == ["fleet/# both 1"]
    assert (c["keepalive_interval"], c["restart_timeout"]) == (10, "2")


def test_hub_gets_no_bridge_and_the_acl_for_spokes():
    topics = ["up/# out 1", "down/# in 1", "fleet/# both 1"]
    c = validate(minion="mqtt1", cluster=dict(CLUSTER, topics=topics))["cluster"]
    assert c["role"] == "hub" and "bridge" not in c
    assert c["acl"] == ["write up/#", "read down/#", "readwrite fleet/#"]


def test_default_restart_timeout_is_a_backoff():
    assert validate(cluster=CLUSTER)["cluster"]["restart_timeout"] == "5 30"


REFUSED = [
    # cluster keys
    (dict(cluster={"topics": ["fleet/# both 1"]}), "mosquitto:cluster:hub: missing"),
    (dict(cluster=dict(CLUSTER, hub="bad id!")), "mosquitto:cluster:hub: must be a minion id"),
    (dict(cluster=dict(CLUSTER, topics=[])), "mosquitto:cluster:topics: a cluster needs at least one topic"),
    (dict(cluster=dict(CLUSTER, topics=["a/# sideways"])), "mosquitto:cluster:topics:0: must be"),
    (dict(cluster=dict(CLUSTER, topics=["a/# out 1 pre/ rem/"])), "mosquitto:cluster:topics:0: must be"),
    (dict(cluster=dict(CLUSTER, topics=["a/# both 2"])), "mosquitto:cluster:topics:0: QoS 2 on a bridge loses"),
    (dict(cluster=dict(CLUSTER, topics=["a/# out 1", "a/b in 1"])), "mosquitto:cluster:topics:1: 'a/b' overlaps"),
    (dict(cluster=dict(CLUSTER, keepalive_interval=2)), "mosquitto:cluster:keepalive_interval: must be between 5"),
    (dict(cluster=dict(CLUSTER, restart_timeout=[30, 5])), "mosquitto:cluster:restart_timeout: base 30 is above"),
    (dict(cluster=dict(CLUSTER, restart_timeout=[1, 2, 3])), "mosquitto:cluster:restart_timeout: must be seconds"),
    (dict(cluster=dict(CLUSTER, mesh=True)), "mosquitto:cluster:mesh: unknown key"),
    # a spoke the hub would not accept
    (dict(cluster=dict(CLUSTER, members="edge-*")), "mosquitto:cluster:members: 'edge-*' does not match this spoke"),
    # durable links need the persistence file
    (dict(cluster=CLUSTER, persistence={"enabled": False}),
     "mosquitto:persistence:enabled: must be true on a cluster member"),
    # a second path between cluster brokers
    (dict(cluster=CLUSTER, bridges={"b": dict(BRIDGE, topics=["fleet/x out 1"])}),
     "mosquitto:bridges:b:topics:0: overlaps cluster topic 'fleet/#'"),
    (dict(cluster=CLUSTER, bridges={"cluster": BRIDGE}), "mosquitto:bridges:cluster: the name 'cluster'"),
    # hand-written bridges: loops and two-way pairs
    (dict(bridges={"b": dict(BRIDGE, address="mqtt.example.com:8883")}),
     "mosquitto:bridges:b:address: mqtt.example.com is this broker itself"),
    (dict(bridges={"b1": BRIDGE, "b2": dict(BRIDGE, topics=["site/a in 1"])}),
     "mosquitto:bridges:b2: bridges to remote.example.com like bridges:b1"),
    (dict(bridges={"b": dict(BRIDGE, topics=["x/# both 1"], options={"try_private": False})}),
     "mosquitto:bridges:b:topics:0: 'both' with try_private false"),
    (dict(bridges={"b": dict(BRIDGE, topics=["x/# out 1", "x/# in 1"])}),
     "mosquitto:bridges:b:topics:1: repeats the filter"),
    # options: allowlist, formula-owned, misplaced both ways
    (dict(bridges={"b": dict(BRIDGE, options={"bridge_insecure": True})}),
     "mosquitto:bridges:b:options:bridge_insecure: refused: turns off the check"),
    (dict(bridges={"b": dict(BRIDGE, options={"frobnicate": 1})}),
     "mosquitto:bridges:b:options:frobnicate: unknown bridge option"),
    (dict(bridges={"b": dict(BRIDGE, options={"listener": 1884})}),
     "mosquitto:bridges:b:options:listener: is a global option"),
    (dict(bridges={"b": dict(BRIDGE, options={"log_type": "all"})}),
     "mosquitto:bridges:b:options:log_type: is a global option"),
    (dict(bridges={"b": dict(BRIDGE, options={"topic": "a out"})}),
     "mosquitto:bridges:b:options:topic: is managed by the formula"),
    (dict(config={"try_private": True}), "mosquitto:config:try_private: is a bridge option"),
    (dict(config={"restart_timeout": 5}), "mosquitto:config:restart_timeout: is a bridge option"),
    (dict(config={"bridge_insecure": True}), "mosquitto:config:bridge_insecure: is a bridge option"),
    # addresses and credentials
    (dict(bridges={"b": dict(BRIDGE, address="[2001:db8::1]:8883")}),
     "mosquitto:bridges:b:address: mosquitto 2.0 does not read '[ipv6]:port'"),
    (dict(bridges={"b": dict(BRIDGE, tls=False, remote_username="u", remote_password="p")}),
     "mosquitto:bridges:b:tls: false with remote_username/remote_password would send the password in clear"),
    # version-bound
    (dict(bridges={"b": dict(BRIDGE, topics=["x/# out 2"])}), "mosquitto:bridges:b:topics:0: QoS 2 on a bridge loses"),
    (dict(bridges={"b": dict(BRIDGE, options={"bridge_receive_maximum": 10})}),
     "mosquitto:bridges:b:options:bridge_receive_maximum: needs mosquitto 2.1"),
]


@pytest.mark.parametrize("pillar,message", REFUSED,
                         ids=[m.split(":")[1] + ":" + m.split(":")[2][:20] for _, m in REFUSED])
def test_refused(pillar, message):
    assert message in error_of(**pillar)


def test_refusals_before_any_render_when_version_unknown():
    """A fresh host (no package yet): QoS 2 and 2.1-only options are refused
    with the reason, not let through."""
    message = error_of(version=None, bridges={"b": dict(BRIDGE, topics=["x/# out 2"])})
    assert "installed: unknown" in message


def test_version_allows_what_it_supports():
    assert validate(version="2.0.18", bridges={"b": dict(BRIDGE, topics=["x/# out 2"])})
    assert validate(version="2.1.2", bridges={"b": dict(BRIDGE, options={"bridge_receive_maximum": 10})})


def test_loopback_plain_bridge_with_password_is_allowed():
    """The password never leaves the host (the integration suite's remote)."""
    assert validate(bridges={"b": dict(BRIDGE, address="127.0.0.1:18883", tls=False,
                                       remote_username="u", remote_password="p")})


def test_allowed_options_pass():
    opts = {"try_private": True, "restart_timeout": "5 30", "remote_clientid": "a.b", "round_robin": False,
            "bridge_protocol_version": "mqttv311", "notifications_local_only": False}
    assert validate(bridges={"b": dict(BRIDGE, options=opts)})["bridges"]["b"]["options"] == opts


def test_cluster_needs_a_minion_id():
    with pytest.raises(CommandExecutionError) as exc:
        cfg.validate(settings(cluster=CLUSTER), minion_id=None, broker_version=installed("2.0.11"))
    assert "mosquitto:cluster: cannot tell this minion's id" in str(exc.value)


@pytest.mark.parametrize("a,b,overlap", [
    ("a/#", "a/b", True), ("a/+", "a/b", True), ("a/b", "a/c", False), ("a/+/c", "a/b/d", False),
    ("#", "x", True), ("a", "a/b", False), ("a/#", "a", True),
])
def test_filters_overlap(a, b, overlap):
    assert cfg.filters_overlap(a, b) is overlap


def test_cluster_needs_a_master(monkeypatch):
    monkeypatch.setattr(cfg, "__opts__", {"id": "mqtt2", "file_client": "local"}, raising=False)
    with pytest.raises(CommandExecutionError) as exc:
        cfg.validate(settings(cluster=CLUSTER), broker_version=installed("2.0.11"))
    assert "mosquitto:cluster: needs a Salt master" in str(exc.value)
