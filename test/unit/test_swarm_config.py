"""Swarm mode's pillar rules (every refusal names its key) and the plain
logic of _utils/mosquitto_swarm.py: which brokers a pillar deploys, their
files and task paths, and the service spec the engine gets. The real
swarm runs in test/containers/test_swarm_mode.py."""
import pytest
from salt.exceptions import CommandExecutionError

from test.support.config import CLUSTER, passwd, settings, spoke_entry, validate
from test.support.config import configure_loader_modules as configure_loader_modules  # a fixture
from test.support.config import master_mine as mine_of
from test.support.modules import utils

SPOKES = ["mqtt2", "mqtt3"]
SWARM = {"enabled": True, "spokes": SPOKES}


def error_of(**pillar):
    with pytest.raises(CommandExecutionError) as exc:
        validate(minion="manager", **pillar)
    return str(exc.value)


def swarm_map(**pillar):
    return validate(minion="manager", **pillar)


def test_a_cluster_deploys_from_a_manager_that_is_no_member():
    data = swarm_map(cluster=dict(CLUSTER, members="mqtt*"), swarm=SWARM)
    # The manager has no role of its own and needs no mine.
    assert data["cluster"]["role"] is None and data["cluster"]["acl"] == ["readwrite fleet/#"]
    brokers = utils()["mosquitto_swarm.brokers"](data)
    assert [(b["name"], b["role"]) for b in brokers] == [("mqtt2", "spoke"), ("mqtt3", "spoke"), ("mqtt1", "hub")]


def test_without_a_cluster_one_broker_named_by_domain():
    data = swarm_map(swarm={"enabled": True})
    layout = utils()["mosquitto_swarm.layout"](data)
    assert list(layout) == ["mqtt-example-com"]
    broker = layout["mqtt-example-com"]
    assert broker["name"] == "mqtt.example.com" and broker["role"] == "broker"
    assert set(broker["secrets"]) == {"passwd", "server.crt", "server.key", "ca.crt"}
    assert set(broker["configs"]) == {"/etc/mosquitto/mosquitto.conf", "/etc/mosquitto/acl"}
    assert broker["secrets"]["ca.crt"] == data["tls"]["ca_cert"]
    assert broker["dir"] == "/etc/mosquitto/swarm/mqtt-example-com"


@pytest.mark.parametrize("swarm,cluster,key", [
    (dict(SWARM, spokes=["mqtt2", "other9"]), dict(CLUSTER, members="mqtt*"), "mosquitto:swarm:spokes:1"),
    (dict(SWARM, spokes=["mqtt2", "mqtt2"]), CLUSTER, "mosquitto:swarm:spokes:1"),
    (dict(SWARM, spokes=["mqtt1"]), CLUSTER, "mosquitto:swarm:spokes:0"),
    (dict(SWARM, spokes=["Bad_Name"]), CLUSTER, "mosquitto:swarm:spokes:0"),
    (dict(SWARM, stack="Has_Upper"), CLUSTER, "mosquitto:swarm:stack"),
    (dict(SWARM, subnet="10.0.0.0/33"), CLUSTER, "mosquitto:swarm:subnet"),
    (dict(SWARM, publish={"nobody": 8883}), CLUSTER, "mosquitto:swarm:publish:nobody"),
    (dict(SWARM, publish={"mqtt2": 8883, "mqtt3": 8883}), CLUSTER, "mosquitto:swarm:publish:mqtt3"),
    (dict(SWARM, dir="relative"), CLUSTER, "mosquitto:swarm:dir"),
    (dict(SWARM, wait=1), CLUSTER, "mosquitto:swarm:wait"),
    (dict(SWARM, replicas=2), CLUSTER, "mosquitto:swarm:replicas"),
    ({"enabled": True, "spokes": ["mqtt2"]}, {}, "mosquitto:swarm:spokes"),
], ids=["not-a-member", "twice", "the-hub", "not-dns", "stack", "subnet", "publish-unknown",
        "publish-same-port", "dir", "wait", "unknown-key", "spokes-without-hub"])
def test_refused_naming_the_key(swarm, cluster, key):
    text = error_of(cluster=cluster, swarm=swarm)
    assert key in text, text


@pytest.mark.parametrize("pillar,key", [
    ({"container": {"enabled": True}}, "mosquitto:container:enabled"),
    ({"bridges": {"b": {"address": "r.example.com:8883", "topics": ["a/# out 1"]}}}, "mosquitto:bridges"),
    ({"tls": {"ca_server": "ca1"}}, "mosquitto:tls:ca_server"),
    ({"domain": ""}, "mosquitto:domain"),
])
def test_what_swarm_mode_does_not_deploy_is_refused(pillar, key):
    text = error_of(swarm={"enabled": True}, **pillar)
    assert key in text, text


def test_off_by_default_and_the_host_path_unchanged():
    data = validate(minion="mqtt2", cluster=CLUSTER)
    assert data["swarm"]["enabled"] is False and data["cluster"]["role"] == "spoke"
    assert settings()["swarm"]["stack"] == "mosquitto"


def spec_for(publish=0):
    data = swarm_map(cluster=dict(CLUSTER, members="mqtt*"), swarm=dict(SWARM, publish={"mqtt1": publish}
                                                                       if publish else {}))
    layout = utils()["mosquitto_swarm.layout"](data)
    settings_ = {"image": "eclipse-mosquitto:2.0.18", "uid": 1883, "gid": 1883, "nofile": 4096,
                 "healthcheck": {"interval": 30, "timeout": 5, "retries": 3, "start_period": 10},
                 "data_dir": "/mosquitto/data/", "mqtt_port": 1883, "mqtts_port": 8883,
                 "update_delay": 5, "restart_delay": 5}
    hub = layout["mqtt1"]
    make = utils()["mosquitto_swarm.service_spec"]
    return make("mosquitto", "mqtt1", hub, {"/etc/mosquitto/mosquitto.conf": "mosquitto_mqtt1_conf_0123456789"},
                {"passwd": "mosquitto_mqtt1_passwd_0123456789"}, settings_)


def test_service_spec_is_hardened_and_rolls_stop_first():
    spec = spec_for()
    ctr = spec["TaskTemplate"]["ContainerSpec"]
    assert spec["Name"] == "mosquitto_mqtt1"
    assert (ctr["User"], ctr["ReadOnly"], ctr["CapabilityDrop"]) == ("1883:1883", True, ["ALL"])
    assert ctr["Ulimits"] == [{"Name": "nofile", "Soft": 4096, "Hard": 4096}]
    assert ctr["Mounts"][0]["Source"] == "mosquitto_mqtt1_data" and ctr["Mounts"][0]["Target"] == "/mosquitto/data"
    assert ctr["Secrets"] == [{"File": {"Name": "passwd", "UID": "1883", "GID": "1883", "Mode": 0o400},
                               "SecretName": "mosquitto_mqtt1_passwd_0123456789"}]
    assert (spec["UpdateConfig"]["Order"], spec["UpdateConfig"]["Parallelism"]) == ("stop-first", 1)
    assert spec["RollbackConfig"]["Order"] == "stop-first"
    assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "on-failure"
    assert spec["EndpointSpec"] == {"Mode": "dnsrr", "Ports": []}
    assert spec["TaskTemplate"]["Networks"] == [{"Target": "mosquitto_net", "Aliases": ["mqtt1"]}]
    assert spec["Labels"]["com.docker.stack.namespace"] == "mosquitto"
    # The digest labels the service and its tasks and is stable.
    assert spec["Labels"]["io.mosquitto-formula.spec"] == spec_for()["Labels"]["io.mosquitto-formula.spec"]
    assert ctr["Labels"]["io.mosquitto-formula.spec"] == spec["Labels"]["io.mosquitto-formula.spec"]


def test_publish_gives_the_tls_port_in_host_mode():
    spec = spec_for(publish=28883)
    assert spec["EndpointSpec"]["Ports"] == [{"Protocol": "tcp", "TargetPort": 8883, "PublishedPort": 28883,
                                              "PublishMode": "host"}]
    assert spec["Labels"]["io.mosquitto-formula.spec"] != spec_for()["Labels"]["io.mosquitto-formula.spec"]


def test_names_fit_dockers_limits_and_change_with_content():
    label, name = utils()["mosquitto_swarm.label"], utils()["mosquitto_swarm.object_name"]
    long = label("a-very-long-broker-name.with.many.labels.example.com")
    assert len(long) <= 20 and long != label("a-very-long-broker-name.with.other.labels.example.com")
    one, two = name("x" * 20, long, "passwd", b"a"), name("x" * 20, long, "passwd", b"b")
    assert one != two and len(one) <= 64


def test_task_config_reads_the_tasks_paths():
    data = swarm_map(cluster=dict(CLUSTER, members="mqtt*"), swarm=SWARM)
    conf = utils()["mosquitto_swarm.broker_settings"](data, "mqtt2", 4096)
    assert "users" not in conf and "bridges" not in conf
    assert conf["paths"]["passwd"] == "/run/secrets/passwd" and conf["paths"]["bridges_dir"] == "/run/secrets"
    assert conf["tls"]["key"] == "/run/secrets/server.key" and conf["container"]["enabled"] is True
    assert conf["listeners"]["mqtts"]["max_connections"] == 4096 - 64
    acl = utils()["mosquitto_swarm.acl_users"](data, {"role": "hub"})
    assert acl["bridge.mqtt3"] == ["readwrite fleet/#", "write $SYS/broker/connection/mqtt3.cluster/state"]
    assert "bridge.mqtt3" not in utils()["mosquitto_swarm.acl_users"](data, {"role": "spoke"})


def test_test_mode_names_the_objects_a_changed_file_would_give(tmp_path):
    import difflib
    old = "".join(f"line {i}\n" for i in range(40))
    new = old.replace("line 3\n", "line three\n").replace("line 30\n", "") + "last\n"
    conf, passwd, other = tmp_path / "mosquitto.conf", tmp_path / "passwd", tmp_path / "acl"
    conf.write_text(old)
    diff = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True)))
    assert utils()["mosquitto_swarm.apply_diff"](old, diff) == new
    assert utils()["mosquitto_swarm.apply_diff"]("something else\n", diff) is None
    running = {
        "file_|-c": {"name": str(conf), "result": None, "changes": {"diff": diff}},
        "passwd_|-p": {"name": str(passwd), "result": None, "changes": {"users": {"updated": ["a"]}}},
        "file_|-a": {"name": str(other), "result": True, "changes": {}},
    }
    pending = utils()["mosquitto_swarm.pending_contents"](running, [str(conf), str(passwd), str(other)])
    assert pending == {str(conf): new.encode(), str(passwd): None}
    name = utils()["mosquitto_swarm.object_name"]
    assert name("s", "hub", "passwd", None) == "s_hub_passwd_pending"


# ------------------------------------------------------------------ spokes from the mine


@pytest.fixture
def master_mine(monkeypatch):
    """The Salt mine as a master hands it to the manager (mine.get of the
    real mosquitto_cluster module, the function a host hub lists its
    spokes with): minion id -> mosquitto_cluster_spoke entry."""
    entries = mine_of(monkeypatch, "manager")
    hashed = passwd.hash_password("spoke-secret")
    for minion in ("mqtt3", "mqtt2", "other9"):
        entries[minion] = spoke_entry(minion, hashed)
    # A malformed entry is skipped, as the host hub skips it.
    entries["mqtt4"] = {"username": "bridge.mqtt2", "clientid": "mqtt4.cluster", "password_hash": hashed}
    return entries


def test_spokes_default_to_the_cluster_spokes_the_mine_knows(master_mine):
    # A host cluster's pillar plus swarm:enabled: one key moves the cluster.
    data = swarm_map(cluster=dict(CLUSTER, members="mqtt*"), swarm={"enabled": True})
    assert data["swarm"]["spokes"] == ["mqtt2", "mqtt3"]
    layout = utils()["mosquitto_swarm.layout"](data)
    assert {b["name"]: b["role"] for b in layout.values()} == {"mqtt1": "hub", "mqtt2": "spoke", "mqtt3": "spoke"}
    assert set(layout["mqtt2"]["secrets"]) >= {"cluster.conf"}
    services = [utils()["mosquitto_swarm.service_spec"]("mosquitto", label, broker, {}, {}, SPEC_SETTINGS)["Name"]
                for label, broker in layout.items()]
    assert sorted(services) == ["mosquitto_mqtt1", "mosquitto_mqtt2", "mosquitto_mqtt3"]
    acl = utils()["mosquitto_swarm.acl_users"](data, layout["mqtt1"])
    assert {"bridge.mqtt2", "bridge.mqtt3"} <= set(acl) and "bridge.other9" not in acl
    # An explicit list wins, [] too (the hub alone).
    assert swarm_map(cluster=CLUSTER, swarm={"enabled": True, "spokes": ["other9"]})["swarm"]["spokes"] == ["other9"]
    assert swarm_map(cluster=CLUSTER, swarm={"enabled": True, "spokes": []})["swarm"]["spokes"] == []
    # Swarm mode off or no cluster: nothing asked of the mine.
    master_mine.clear()
    assert swarm_map(cluster=CLUSTER)["swarm"]["spokes"] == []


def test_masterless_without_spokes_is_refused_naming_the_key(monkeypatch):
    from test.support.config import cfg
    monkeypatch.setattr(cfg, "__opts__", {"file_client": "local"}, raising=False)
    text = error_of(cluster=CLUSTER, swarm={"enabled": True})
    assert "mosquitto:swarm:spokes" in text and "mine" in text, text
    # The broker alone needs no spokes.
    assert swarm_map(swarm={"enabled": True})["swarm"]["spokes"] == []


# ------------------------------------------------------------------ the exporter service

SPEC_SETTINGS = {"image": "eclipse-mosquitto:2.0.18", "uid": 1883, "gid": 1883, "nofile": 4096,
                 "healthcheck": {"interval": 30, "timeout": 5, "retries": 3, "start_period": 10},
                 "data_dir": "/mosquitto/data/", "mqtt_port": 1883, "mqtts_port": 8883,
                 "update_delay": 5, "restart_delay": 5, "exporter_image": "local/exporter:1",
                 "exporter_user": "mosquitto-exporter", "exporter_port": 9234, "max_connections": 4032}


def exporter_layout(**swarm):
    data = swarm_map(cluster=dict(CLUSTER, members="mqtt*"),
                     swarm=dict(SWARM, exporter_image="local/exporter:1", **swarm))
    return data, utils()["mosquitto_swarm.layout"](data)


def test_exporter_service_per_broker_hardened_password_a_secret():
    data, layout = exporter_layout()
    hub = layout["mqtt1"]
    assert hub["exporter"]["secrets"] == {"exporter-password": "/etc/mosquitto/swarm/mqtt1/exporter.secret",
                                          "ca.crt": data["tls"]["ca_cert"],
                                          "server.crt": "/etc/mosquitto/swarm/mqtt1/server.crt"}
    assert hub["exporter"]["publish"] == 0
    # Its user may read $SYS on its broker.
    assert utils()["mosquitto_swarm.acl_users"](data, hub)["mosquitto-exporter"] == ["read $SYS/#"]
    spec = utils()["mosquitto_swarm.exporter_spec"](
        "mosquitto", "mqtt1", hub, {"/opt/mosquitto-exporter/mosquitto_exporter.py": "mosquitto_mqtt1_exporter_x"},
        {"exporter-password": "mosquitto_mqtt1_exppass_x"}, SPEC_SETTINGS)
    ctr = spec["TaskTemplate"]["ContainerSpec"]
    assert spec["Name"] == "mosquitto_mqtt1-exporter"
    assert (ctr["User"], ctr["ReadOnly"], ctr["CapabilityDrop"]) == ("1883:1883", True, ["ALL"])
    env = dict(e.split("=", 1) for e in ctr["Env"])
    assert env["BROKER_ENDPOINT"] == "ssl://mqtt1:8883" and env["MQTT_CAFILE"] == "/run/secrets/ca.crt"
    assert env["MQTT_PASS_FILE"] == "/run/secrets/exporter-password" and "MQTT_PASS" not in env
    assert ctr["Secrets"] == [{"File": {"Name": "exporter-password", "UID": "1883", "GID": "1883", "Mode": 0o400},
                               "SecretName": "mosquitto_mqtt1_exppass_x"}]
    assert ctr["Mounts"] == [{"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 16 << 20}}]
    assert spec["EndpointSpec"] == {"Mode": "dnsrr", "Ports": []}
    assert spec["TaskTemplate"]["Networks"][0]["Target"] == "mosquitto_net"


def test_exporter_publish_gives_metrics_in_host_mode_and_no_image_no_exporter():
    _, layout = exporter_layout(exporter_publish={"mqtt2": 19234})
    spec = utils()["mosquitto_swarm.exporter_spec"]("mosquitto", "mqtt2", layout["mqtt2"], {}, {}, SPEC_SETTINGS)
    assert spec["EndpointSpec"]["Ports"] == [{"Protocol": "tcp", "TargetPort": 9234, "PublishedPort": 19234,
                                              "PublishMode": "host"}]
    # '' (the default) and exporter:enabled false: no exporter service.
    data = swarm_map(cluster=CLUSTER, swarm=SWARM)
    assert all(b["exporter"] is None for b in utils()["mosquitto_swarm.layout"](data).values())
    data = swarm_map(cluster=CLUSTER, swarm=dict(SWARM, exporter_image="x:1"), exporter={"enabled": False})
    assert all(b["exporter"] is None for b in utils()["mosquitto_swarm.layout"](data).values())
    assert "mosquitto-exporter" not in utils()["mosquitto_swarm.acl_users"](data, {"role": "hub"})


@pytest.mark.parametrize("swarm,key", [
    (dict(SWARM, exporter_image="bad image"), "mosquitto:swarm:exporter_image"),
    (dict(SWARM, exporter_publish={"mqtt2": 19234}), "mosquitto:swarm:exporter_publish"),
    (dict(SWARM, exporter_image="x:1", exporter_publish={"nobody": 19234}), "mosquitto:swarm:exporter_publish:nobody"),
    (dict(SWARM, exporter_image="x:1", publish={"mqtt1": 19234}, exporter_publish={"mqtt2": 19234}),
     "mosquitto:swarm:exporter_publish:mqtt2"),
], ids=["image", "publish-without-image", "publish-unknown", "publish-same-port"])
def test_exporter_keys_refused_naming_the_key(swarm, key):
    text = error_of(cluster=dict(CLUSTER, members="mqtt*"), swarm=swarm)
    assert key in text, text
