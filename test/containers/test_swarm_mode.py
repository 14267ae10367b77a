"""Swarm mode on a real single-node swarm: the suite's engine becomes a
swarm manager (test/support/swarm.py), and `salt-call --local state.apply
mosquitto` with `swarm:enabled` deploys the hosts' cluster pillar (a hub
and two spokes) as a stack, as an operator would.

Clients run inside the brokers' tasks (the image has mosquitto's clients):
by name over TLS on the stack's overlay network, verified with the CA the
stack carries as a secret. Tests share one deployed stack and run in file
order; the cluster's clean test comes before the broker-alone stack's test
(its own stack, files and subnet), and the module's teardown leaves the
swarm and deletes its gateway link.
"""
import json
import pathlib
import secrets
import shlex
import subprocess

import pytest

from scripts.saltlocal import changed, failed
from test.containers import engine as eng
from test.containers.engine import DOCKER
from test.support import swarm as sw
from test.support.container import engine_salt
from test.support.localhost import wait_for

pytestmark = pytest.mark.containers

HUB, SPOKE1, SPOKE2 = sw.HUB, sw.SPOKE1, sw.SPOKE2
BROKERS = (HUB, SPOKE1, SPOKE2)
EXPORTERS = tuple(sw.exporter_service(b) for b in BROKERS)
STATE_ID = "mosquitto-swarm-stack-deployed"


@pytest.fixture(scope="module")
def passwords():
    return {"alice": "a:" + secrets.token_urlsafe(12), "ops": "o-" + secrets.token_urlsafe(12)}


@pytest.fixture(scope="module")
def swarm(engine, tmp_path_factory):
    # The exporter services' image (the Kubernetes pods' one: built once
    # per engine, cached after).
    eng.build_exporter_image(engine, sw.EXPORTER_IMAGE, sw.IMAGE, tmp_path_factory.mktemp("swarm-exporter"))
    sw.remove_host_leftovers()
    sw.init(engine)
    try:
        yield engine
    finally:
        sw.leave(engine)
        sw.remove_host_leftovers()
    assert not sw.gwbridge_link(), "the swarm's gateway link is still on the host"
    assert "inactive" in engine.docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout


@pytest.fixture(scope="module")
def salt_swarm(tmp_path_factory, passwords, swarm):
    # cache_jobs: the minion keeps every return in its job cache, which the
    # secrets test then greps.
    return engine_salt(tmp_path_factory.mktemp("salt-swarm"), sw.spokes_pillar(passwords), swarm, cache_jobs=True)


@pytest.fixture(scope="module")
def deployed(salt_swarm, swarm):
    rc, states, err = salt_swarm.apply()
    assert rc == 0 and not failed(states), (failed(states), err[-3000:])
    return states


def stack_objects(engine, kind, stack=sw.STACK):
    out = engine.docker(kind, "ls", "--filter", f"label={sw.NAMESPACE}={stack}", "--format", "{{.Name}}").stdout
    return sorted(out.split())


def pub(engine, broker, password, topic, messages, target=None, qos=1):
    """Publish ``messages`` from inside ``broker``'s task, by name over TLS
    to ``target`` (default: the broker itself), one connection."""
    args = sw.sub_args(target or broker, password, "-t", topic, "-q", str(qos), "-l")
    cid = sw.wait_task(engine, broker)
    proc = subprocess.run([DOCKER, "-H", engine.url, "exec", "-i", cid, "mosquitto_pub", *args],
                          input="\n".join(messages) + "\n", capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def persistent_sub(engine, broker, password, client_id, topic=None, count=None, wait=5):
    """A persistent (clean session false) QoS 1 subscriber on ``broker``'s
    plain listener: subscribe and leave (count None), or take what is
    queued for it (up to ``count``, at most ``wait`` s without a message)."""
    args = ["-c", "-i", client_id, "-q", "1", "-v"]
    if count is None:
        args += ["-t", topic, "-E"]
    else:
        args += ["-t", topic, "-C", str(count), "-W", str(wait)]
    out = sw.exec_in(engine, broker, "mosquitto_sub", *sw.sub_args(broker, password, *args, tls=False),
                     check=False, timeout=wait + 60).stdout
    return out.splitlines()


# ------------------------------------------------------------------ deploy


def test_first_apply_deploys_the_stack(deployed, swarm):
    change = deployed[next(k for k in deployed if STATE_ID in k)]["changes"]
    services = [sw.service(b) for b in BROKERS] + list(EXPORTERS)
    assert sorted(change["services"]["created"]) == sorted(services)
    assert change["network"]["created"] == [f"{sw.STACK}_net"]
    assert stack_objects(swarm, "service") == sorted(services)
    # Per broker: mosquitto.conf, ACL and the exporter program as configs;
    # password file, key, certificate and CA (and a spoke's bridge file)
    # and the exporter's MQTT password as secrets.
    configs, secret_names = stack_objects(swarm, "config"), stack_objects(swarm, "secret")
    assert len(configs) == 3 * 3 and len(secret_names) == 3 * 5 + 2
    assert len([n for n in secret_names if "_exppass_" in n]) == 3
    assert all(n.startswith(f"{sw.STACK}_spoke") for n in secret_names if "_bridge_" in n)
    net = sw.inspect(swarm, f"{sw.STACK}_net", "network")
    assert net["Driver"] == "overlay" and net["IPAM"]["Config"][0]["Subnet"] == sw.SUBNET
    for broker in BROKERS:
        sw.wait_task(swarm, broker)


def test_services_are_hardened_and_roll_stop_first(deployed, swarm):
    for broker in BROKERS:
        spec = sw.inspect(swarm, sw.service(broker), "service")["Spec"]
        ctr = spec["TaskTemplate"]["ContainerSpec"]
        assert ctr["User"] == "1883:1883" and ctr["ReadOnly"] is True
        assert ctr["CapabilityDrop"] == ["ALL"]
        assert ctr["Healthcheck"]["Test"][0] == "CMD-SHELL"
        assert not ctr.get("Env") and not ctr.get("Args")
        assert [m["Source"] for m in ctr["Mounts"]] == [f"{sw.service(broker)}_data"]
        assert spec["UpdateConfig"]["Order"] == "stop-first" and spec["UpdateConfig"]["Parallelism"] == 1
        assert spec["TaskTemplate"]["RestartPolicy"]["Condition"] == "on-failure"
        # swarm:update_delay and swarm:restart_delay (1 s in this pillar).
        assert spec["UpdateConfig"]["Delay"] == spec["TaskTemplate"]["RestartPolicy"]["Delay"] == 10**9
        assert spec["EndpointSpec"]["Mode"] == "dnsrr"
        assert spec["Mode"]["Replicated"]["Replicas"] == 1
        assert spec["TaskTemplate"]["Networks"][0]["Aliases"] == [broker]
        # What the kernel says about the broker in its task.
        info = sw.inspect(swarm, sw.wait_task(swarm, broker))
        status = dict(line.split(":", 1) for line in
                      pathlib.Path(f"/proc/{info['State']['Pid']}/status").read_text().splitlines())
        assert status["Name"].strip() == "mosquitto"
        assert status["Uid"].split() == ["1883"] * 4
        assert status["CapEff"].strip() == "0000000000000000"
        limits = pathlib.Path(f"/proc/{info['State']['Pid']}/limits").read_text()
        assert any(line.startswith("Max open files") and line.split()[3:5] == ["16384", "16384"]
                   for line in limits.splitlines())  # container:nofile
        assert info["State"]["Health"]["Status"] == "healthy"
    code = sw.exec_in(swarm, HUB, "touch", "/etc/x", check=False)
    assert code.returncode != 0 and "Read-only file system" in code.stderr


def test_tls_by_name_between_services_and_bridges_up(deployed, swarm, passwords):
    # A client in spoke1's task reaches the hub by its name over TLS,
    # verified against the stack's CA; a wrong name fails verification.
    pub(swarm, SPOKE1, passwords["alice"], "local/tls", ["by-name"], target=HUB)
    task = sw.wait_task(swarm, SPOKE1)
    hub_ip = swarm.docker("exec", task, "getent", "hosts", HUB).stdout.split()[0]
    bad = swarm.docker("exec", task, "mosquitto_pub", *sw.sub_args(hub_ip, passwords["alice"], "-t", "local/x",
                                                                   "-m", "x"), check=False)
    assert bad.returncode != 0, "TLS to the hub by IP (not in its certificate) was accepted"
    assert wait_for(lambda: sw.bridges_up(swarm, passwords["ops"]), 60, 1), "the spokes' bridges never came up"


def test_qos1_exactly_once_across_the_clusters_bridges(deployed, swarm, passwords):
    assert wait_for(lambda: sw.bridges_up(swarm, passwords["ops"]), 60, 1)
    for broker in (HUB, SPOKE2):
        assert persistent_sub(swarm, broker, passwords["alice"], f"eo-{broker}", "fleet/eo/#") == []
    messages = [f"m{i}" for i in range(50)]
    pub(swarm, SPOKE1, passwords["alice"], "fleet/eo/s1", messages)
    for broker in (HUB, SPOKE2):
        got = persistent_sub(swarm, broker, passwords["alice"], f"eo-{broker}", "fleet/eo/#", count=50, wait=20)
        assert sorted(line.split(" ", 1)[1] for line in got) == sorted(messages), broker
        # Nothing more queued: no message came twice.
        assert persistent_sub(swarm, broker, passwords["alice"], f"eo-{broker}", "fleet/eo/#",
                              count=1, wait=3) == [], broker


def test_exporter_services_scrape_their_brokers_hardened(deployed, swarm):
    for broker in BROKERS:
        spec = sw.inspect(swarm, sw.exporter_service(broker), "service")["Spec"]
        ctr = spec["TaskTemplate"]["ContainerSpec"]
        assert ctr["User"] == "1883:1883" and ctr["ReadOnly"] is True and ctr["CapabilityDrop"] == ["ALL"]
        assert ctr["Image"].startswith(sw.EXPORTER_IMAGE)
        env = dict(e.split("=", 1) for e in ctr["Env"])
        # Its password is a secret file; it logs in to its broker by name
        # over TLS (the plain listener stays on the broker's loopback).
        assert "MQTT_PASS" not in env and env["MQTT_PASS_FILE"] == "/run/secrets/exporter-password"
        assert env["BROKER_ENDPOINT"] == f"ssl://{broker}:8883"
        net = spec["TaskTemplate"]["Networks"]
        assert net == [{"Target": sw.inspect(swarm, f"{sw.STACK}_net", "network")["Id"],
                        "Aliases": [f"{sw.LABELS[broker]}-exporter"]}]
        assert spec["EndpointSpec"]["Mode"] == "dnsrr" and not spec["EndpointSpec"].get("Ports")
        info = sw.inspect(swarm, sw.exporter_task(swarm, broker))
        status = dict(line.split(":", 1) for line in
                      pathlib.Path(f"/proc/{info['State']['Pid']}/status").read_text().splitlines())
        assert status["Uid"].split() == ["1883"] * 4 and status["CapEff"].strip() == "0000000000000000"
    # Each exporter, scraped over the stack's network from another
    # exporter's task, serves its own broker's $SYS series.
    for broker, other in ((HUB, SPOKE1), (SPOKE1, HUB), (SPOKE2, HUB)):
        text = wait_for(lambda b=broker, o=other: _connected(sw.scrape(swarm, o, b)), 60, 1)
        assert text, f"{sw.exporter_service(broker)} never served its broker's series"
        read_ok = [line for line in text.splitlines() if line.startswith("mosquitto_certificate_read_ok{")]
        assert len(read_ok) == 2 and all(line.endswith(" 1.0") for line in read_ok), read_ok
    # The hub's exporter sees both spokes' bridges (its broker's $SYS).
    hub = wait_for(lambda: _bridges_in(sw.scrape(swarm, SPOKE1, HUB)), 60, 1)
    assert hub, "the hub's exporter does not show both bridges up"
    code = swarm.docker("exec", sw.exporter_task(swarm, HUB), "touch", "/x", check=False)
    assert code.returncode != 0 and "Read-only file system" in code.stderr


def _connected(text):
    return text if "mosquitto_exporter_connected 1.0" in text and "broker_uptime" in text else None


def _bridges_in(text):
    want = [f'broker_connection_state{{connection="{s}.cluster"}} 1.0' for s in (SPOKE1, SPOKE2)]
    return text if all(line in text for line in want) else None


# ------------------------------------------------------------------ idempotent


def test_second_apply_and_test_mode_change_nothing(salt_swarm, deployed):
    rc, states, err = salt_swarm.apply()
    assert rc == 0 and not failed(states), failed(states)
    assert changed(states) == {}
    rc, states, err = salt_swarm.apply(test=True)
    assert rc == 0, err
    assert changed(states) == {}


def test_no_secret_in_output_cache_services_or_logs(salt_swarm, deployed, swarm, passwords):
    files = pathlib.Path(sw.SWARM_DIR)
    keys = [p.read_text() for p in files.glob("*/server.key")]
    bridge = [p.read_text().strip() for p in files.glob("*/bridge.secret")]
    exporter = [p.read_text().strip() for p in files.glob("*/exporter.secret")]
    hashes = [line.split(":", 1)[1] for p in files.glob("*/passwd") for line in p.read_text().splitlines()]
    needles = [*passwords.values(), *bridge, *exporter, *hashes, *(k.splitlines()[1] for k in keys)]
    assert len(bridge) == 2 and len(exporter) == 3 and len(keys) == 3 and all(needles)
    shown = [salt_swarm.call(fun, "mosquitto")[1] for fun in ("state.show_sls", "state.show_lowstate")]
    texts = {"apply return": json.dumps(deployed), "show_sls/show_lowstate": json.dumps(shown)}
    # (Salt puts the cachedir under root_dir: <dir>/root/<dir>/cache.)
    jobs = [p for p in pathlib.Path(salt_swarm.dir).rglob("return.p") if "minion_jobs" in p.parts]
    assert jobs, "no job cache to check"
    for path in pathlib.Path(salt_swarm.dir).rglob("*"):
        if path.is_file() and path.parent.name != "pillar":
            texts[str(path)] = path.read_text(errors="replace")
    for service in [sw.service(b) for b in BROKERS] + list(EXPORTERS):
        texts[f"inspect {service}"] = swarm.docker("service", "inspect", service).stdout
        texts[f"logs {service}"] = swarm.docker("service", "logs", service, timeout=60).stdout
    for name in stack_objects(swarm, "config"):
        texts[f"config {name}"] = swarm.docker("config", "inspect", name).stdout
    for where, text in texts.items():
        for needle in needles:
            assert needle not in text, f"a secret in {where}"
    # The secrets' inspect holds no data (the engine never gives it back).
    for name in stack_objects(swarm, "secret"):
        assert "Data" not in json.loads(swarm.docker("secret", "inspect", name).stdout)[0]["Spec"]
    assert oct(files.stat().st_mode & 0o777) == "0o700"


# ------------------------------------------------------------------ changes


def test_config_change_rolls_the_services_and_queued_messages_survive(salt_swarm, deployed, swarm, passwords):
    before = {b: sw.wait_task(swarm, b) for b in BROKERS}
    old_configs = stack_objects(swarm, "config")
    for broker in (HUB, SPOKE2):
        assert persistent_sub(swarm, broker, passwords["alice"], f"roll-{broker}", "local/roll/#") == []
        pub(swarm, broker, passwords["alice"], "local/roll/q", [f"{broker}-{i}" for i in range(20)])
    salt_swarm.write_pillar(sw.spokes_pillar(passwords, config={"sys_interval": 2}))
    try:
        rc, planned, err = salt_swarm.apply(test=True)
        assert rc == 0, err
        plan = planned[next(k for k in planned if STATE_ID in k)]
        assert plan["result"] is None
        assert sorted(plan["changes"]["services"]["updated"]) == sorted(sw.service(b) for b in BROKERS)
        assert sorted(plan["changes"]["configs"]["removed"]) == sorted(n for n in old_configs if "_conf_" in n)
        assert "secrets" not in plan["changes"]
        rc, states, err = salt_swarm.apply()
        assert rc == 0 and not failed(states), failed(states)
        done = states[next(k for k in states if STATE_ID in k)]["changes"]
        assert done == plan["changes"]
        # Every broker runs a new task from the same volume; the old
        # configs are gone.
        for broker in BROKERS:
            assert sw.wait_task(swarm, broker, other_than=before[broker]) != before[broker]
        assert not set(old_configs) - set(stack_objects(swarm, "config")) - set(plan["changes"]["configs"]["removed"])
        assert not set(plan["changes"]["configs"]["removed"]) & set(stack_objects(swarm, "config"))
        for broker in (HUB, SPOKE2):
            got = persistent_sub(swarm, broker, passwords["alice"], f"roll-{broker}", "local/roll/#",
                                 count=20, wait=10)
            assert sorted(line.split(" ", 1)[1] for line in got) == sorted(f"{broker}-{i}" for i in range(20))
        assert changed(salt_swarm.apply(test=True)[1]) == {}
    finally:
        salt_swarm.write_pillar(sw.spokes_pillar(passwords))


def test_killed_task_is_replaced(deployed, swarm, passwords):
    old = sw.wait_task(swarm, SPOKE2)
    swarm.docker("kill", old)
    new = sw.wait_task(swarm, SPOKE2, other_than=old)
    assert new != old
    assert len(swarm.docker("service", "ps", "-q", "--filter", "desired-state=running",
                            sw.service(SPOKE2)).stdout.split()) == 1
    assert wait_for(lambda: sw.bridges_up(swarm, passwords["ops"]), 60, 1)


def test_bad_swarm_pillar_is_refused_naming_the_key(salt_swarm, deployed, swarm, passwords):
    before = stack_objects(swarm, "service"), stack_objects(swarm, "config")
    bad = sw.spokes_pillar(passwords)
    bad["mosquitto"]["swarm"]["spokes"] = [SPOKE1, "rogue.example.org"]
    salt_swarm.write_pillar(bad)
    try:
        rc, out, err = salt_swarm.apply()
        assert rc != 0
        assert "mosquitto:swarm:spokes:1" in json.dumps(out) + err
        # The host cluster's pillar plus swarm:enabled alone: masterless
        # there is no mine to learn the spokes from, so the list is asked for.
        salt_swarm.write_pillar(sw.pillar(passwords))
        rc, out, err = salt_swarm.apply()
        assert rc != 0
        assert "mosquitto:swarm:spokes: not set" in json.dumps(out) + err
    finally:
        salt_swarm.write_pillar(sw.spokes_pillar(passwords))
    assert (stack_objects(swarm, "service"), stack_objects(swarm, "config")) == before


def test_clean_removes_the_stack_and_the_managers_files(salt_swarm, deployed, swarm):
    rc, states, err = salt_swarm.apply("mosquitto.clean")
    assert rc == 0 and not failed(states), failed(states)
    for kind in ("service", "config", "secret", "network", "volume"):
        assert stack_objects(swarm, kind) == [], kind
    assert not swarm.docker("ps", "-aq", "--filter", f"label={sw.NAMESPACE}").stdout.strip()
    assert not pathlib.Path(sw.SWARM_DIR).exists()
    assert pathlib.Path(f"{sw.ETC}/certs/ca.crt").exists()  # the CA stays, as in host mode
    rc, states, err = salt_swarm.apply("mosquitto.clean")
    assert rc == 0 and changed(states) == {}


# ------------------------------------------------------------------ broker alone


def solo_client(engine, password, *commands):
    """mosquitto_pub/sub ``commands`` (each a list of arguments) in one
    throwaway container on the solo stack's network, by the broker's name
    over TLS, verified against the manager's CA file (not the stack's
    secret)."""
    tls = ["-h", sw.SOLO, "-p", "8883", "--cafile", "/ca.crt", "-u", "alice", "-P", password]
    script = " && ".join(shlex.join([cmd[0], *tls, *cmd[1:]]) for cmd in commands)
    return engine.docker("run", "--rm", "--network", f"{sw.SOLO_STACK}_net",
                         "-v", f"{sw.ETC}/certs/ca.crt:/ca.crt:ro", sw.IMAGE, "sh", "-c", script,
                         check=False, timeout=120)


def test_broker_alone_deploys_serves_tls_and_cleans(salt_swarm, swarm, passwords):
    salt_swarm.write_pillar(sw.solo_pillar(passwords))
    service = f"{sw.SOLO_STACK}_solo-swarm-test"
    try:
        rc, states, err = salt_swarm.apply()
        assert rc == 0 and not failed(states), (failed(states), err[-3000:])
        change = states[next(k for k in states if STATE_ID in k)]["changes"]
        assert change["services"]["created"] == [service, f"{service}-exporter"]
        # mosquitto.conf, ACL, the exporter program; passwd, key, cert, CA,
        # the exporter's password.
        assert len(stack_objects(swarm, "config", sw.SOLO_STACK)) == 3
        assert len(stack_objects(swarm, "secret", sw.SOLO_STACK)) == 5
        # swarm:exporter_image '' (the default): the exporter service and
        # its own objects go; its user leaves the broker's password file
        # and ACL, so the broker rolls to the new ones.
        salt_swarm.write_pillar(sw.solo_pillar(passwords, exporter_image=""))
        rc, states, err = salt_swarm.apply()
        assert rc == 0 and not failed(states), (failed(states), err[-3000:])
        change = states[next(k for k in states if STATE_ID in k)]["changes"]
        assert change["services"] == {"removed": [f"{service}-exporter"], "updated": [service]}
        assert sorted(n.split("_")[2] for n in change["configs"]["removed"]) == ["acl", "exporter"]
        assert sorted(n.split("_")[2] for n in change["secrets"]["removed"]) == ["exppass", "passwd"]
        assert stack_objects(swarm, "service", sw.SOLO_STACK) == [service]
        assert len(stack_objects(swarm, "config", sw.SOLO_STACK)) == 2  # mosquitto.conf, ACL
        assert len(stack_objects(swarm, "secret", sw.SOLO_STACK)) == 4  # passwd, key, cert, CA
        net = sw.inspect(swarm, f"{sw.SOLO_STACK}_net", "network")
        assert net["IPAM"]["Config"][0]["Subnet"] == sw.SOLO_SUBNET
        # A persistent QoS 1 session: subscribe and leave, publish, then
        # take what was queued: exactly the one message.
        sub = ["mosquitto_sub", "-c", "-i", "solo-rt", "-q", "1", "-t", "local/solo/#"]
        out = solo_client(swarm, passwords["alice"], [*sub, "-E"],
                          ["mosquitto_pub", "-q", "1", "-t", "local/solo/m", "-m", "hello-solo"],
                          [*sub, "-v", "-C", "1", "-W", "20"])
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["local/solo/m hello-solo"]
        # Its password file is the pillar's: a wrong password is refused.
        bad = solo_client(swarm, passwords["alice"] + "x", ["mosquitto_pub", "-t", "local/solo/m", "-m", "x"])
        assert bad.returncode != 0 and "not authorised" in bad.stderr.lower(), bad.stderr
        rc, states, err = salt_swarm.apply()
        assert rc == 0 and changed(states) == {}, changed(states)
        rc, states, err = salt_swarm.apply("mosquitto.clean")
        assert rc == 0 and not failed(states), failed(states)
        for kind in ("service", "config", "secret", "network", "volume"):
            assert stack_objects(swarm, kind, sw.SOLO_STACK) == [], kind
        assert not pathlib.Path(sw.SOLO_DIR).exists()
    finally:
        if stack_objects(swarm, "service", sw.SOLO_STACK):
            salt_swarm.apply("mosquitto.clean")
        salt_swarm.write_pillar(sw.spokes_pillar(passwords))
