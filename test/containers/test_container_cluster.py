"""The cluster pillar in container mode: a hub and two spokes, each broker in
a container of the suite's Docker engine, on one named Docker network, all
three converged by one `salt 'ctr-*' state.apply mosquitto` from a master.

Real parts: a salt-master (pytest-salt-factories, 127.0.0.1, free ports,
the README's peer rule) and three salt-minion daemons on this machine
(ctr-hub, ctr-spoke-a, ctr-spoke-b; each its own root dir, `docker.url` to
the suite's engine). One Jinja pillar gives each minion its own host paths
(/etc/mosquitto-<id>, /var/lib/mosquitto-<id>, renewal cron, bridge
secret), its own account (the container's uid: one image per broker, uids
3883/4883/5883), its container name and its fixed address on the network
NETWORK. Inside their own network namespaces the brokers use the standard
ports (1883 on each container's loopback, 8883 on its address).

TLS by name: the engine's DNS answers the broker's `domain` on the network
(the formula gives each container its domain as a network alias), so a
spoke's bridge dials `ctr-hub.ctr.test` and verifies the hub's certificate
by that name. The minions run on the host, where that name must resolve
too (a spoke logs in to the hub to check it accepts its bridge user): each
salt-minion runs in a private mount namespace with its own /etc/hosts
(NAMES); the clients of the tests too. The host's /etc/hosts is never
touched.

The network is made by this module before the apply (three minions
creating one network at once would race), with what the formula's
docker_network.present asks for: the apply finds it as wanted.

Tests run in file order on one module-scoped cluster; everything (minions,
master, containers, network, host paths, accounts) is removed at the end,
also on failure.
"""
import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
import yaml
from saltfactories.daemons.minion import SaltMinion

from scripts.saltlocal import changed
from test.containers import engine as eng
from test.support import fleet as fleetmod
from test.support.parallel import each

pytestmark = pytest.mark.containers

REPO = pathlib.Path(__file__).resolve().parents[2]
HUB, SPOKE_A, SPOKE_B = "ctr-hub", "ctr-spoke-a", "ctr-spoke-b"
IDS = [HUB, SPOKE_A, SPOKE_B]
# Not the container-mode module's 198.19.0.0/24 network: both may exist.
NETWORK, SUBNET = "mqcluster-net", "198.19.0.128/26"
NODES = {HUB: {"ip": "198.19.0.131", "uid": 3883},
         SPOKE_A: {"ip": "198.19.0.132", "uid": 4883},
         SPOKE_B: {"ip": "198.19.0.133", "uid": 5883}}
KEEPALIVE = 10
PASSWORD = "cluster-" + secrets.token_urlsafe(12)


def domain(minion):
    return f"{minion}.ctr.test"


def etc(minion):
    return f"/etc/mosquitto-{minion}"


def image(minion):
    return f"local/mosquitto:{NODES[minion]['uid']}"


def container(minion):
    return f"mosquitto-{minion}"


def host_paths(minion):
    """Every host path only this module's pillar names."""
    return [etc(minion), f"/var/lib/mosquitto-{minion}", f"/etc/cron.d/mosquitto-{minion}-tls-renew"]


NAMES = "".join(f"{NODES[m]['ip']} {domain(m)}\n" for m in IDS)

# One pillar for the three minions (rendered per minion on the master).
PILLAR_SLS = """\
{%- set nodes = NODES_JSON %}
{%- set id = grains['id'] %}
{%- set etc = '/etc/mosquitto-' ~ id %}
mosquitto:
  domain: {{ id }}.ctr.test
  users:
    alice:
      password: PASSWORD_JSON
      acl: ['readwrite fleet/#', 'read $SYS/#']
  firewall:
    enabled: false
  exporter:
    enabled: false
  config:
    sys_interval: 1
  persistence:
    location: /var/lib/mosquitto-{{ id }}/
  tls:
    ca_server: "{{ '' if id == 'HUB' else 'HUB' }}"
    # Read by the CA (the hub): each minion may have <id>.ctr.test.
    fleet_domains: [ctr.test]
    ca_cert: {{ etc }}/certs/ca.crt
    ca_key: {{ etc }}/ca/ca.key
    cert: {{ etc }}/certs/server.crt
    key: {{ etc }}/certs/server.key
  cluster:
    hub: HUB
    members: 'ctr-*'
    topics: ['fleet/# both 1']
    keepalive_interval: KEEPALIVE
    restart_timeout: 2
  container:
    enabled: true
    name: mosquitto-{{ id }}
    image: local/mosquitto:{{ nodes[id].uid }}
    uid: {{ nodes[id].uid }}
    gid: {{ nodes[id].uid }}
    nofile: 16384
    network: NETWORK
    subnet: SUBNET
    ip: {{ nodes[id].ip }}
    healthcheck: {interval: 2, timeout: 5, retries: 3, start_period: 5}
  lookup:
    paths:
      conf: {{ etc }}/mosquitto.conf
      passwd: {{ etc }}/passwd
      acl: {{ etc }}/acl
      bridges_dir: {{ etc }}/bridges.d
      cluster_secret: {{ etc }}/cluster/bridge.secret
      exporter_secret: {{ etc }}/exporter/password
      renew_cron: /etc/cron.d/mosquitto-{{ id }}-tls-renew
      sysv_limits_hook: ''
      log_file: ''
    service:
      user: mosquitto-{{ id }}
      group: mosquitto-{{ id }}
""".replace("NODES_JSON", json.dumps(NODES)).replace("HUB", HUB) \
   .replace("KEEPALIVE", str(KEEPALIVE)).replace("NETWORK", NETWORK).replace("SUBNET", SUBNET) \
   .replace("PASSWORD_JSON", json.dumps(PASSWORD))


def _remove_cluster_leftovers(engine=None):
    """Containers and network (when the engine runs), host paths, accounts:
    also what a killed earlier run left."""
    if engine is not None:
        engine.docker("rm", "-f", *[container(m) for m in IDS], check=False, timeout=120)
        engine.docker("network", "rm", NETWORK, check=False, timeout=60)
    for minion in IDS:
        for path in host_paths(minion):
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.unlink(path)
        subprocess.run(["userdel", f"mosquitto-{minion}"], capture_output=True)
        subprocess.run(["groupdel", f"mosquitto-{minion}"], capture_output=True)


def in_hosts_ns(hosts_file, cmd):
    """cmd with NAMES in /etc/hosts, in a private mount namespace."""
    return ["unshare", "-m", "sh", "-c", f"mount --bind {hosts_file} /etc/hosts && exec \"$@\"", "sh",
            *map(str, cmd)]


def minion_class(hosts_file):
    class NamesMinion(SaltMinion):
        """salt-minion with NAMES in its own /etc/hosts (same PID: unshare
        and sh exec the daemon)."""

        def cmdline(self, *args):
            return in_hosts_ns(hosts_file, super().cmdline(*args))
    return NamesMinion


@pytest.fixture(scope="module")
def workdir():
    path = pathlib.Path(tempfile.mkdtemp(prefix="mqclu-", dir="/tmp"))
    (path / "hosts").write_text("127.0.0.1 localhost\n" + NAMES)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def network(engine, workdir):
    _remove_cluster_leftovers(engine)
    try:
        eng.build_images(engine, {image(m): (NODES[m]["uid"],) * 2 for m in IDS}, workdir)
        engine.docker("network", "create", "--driver", "bridge", "--subnet", SUBNET, NETWORK)
        yield NETWORK
    finally:
        _remove_cluster_leftovers(engine)


@pytest.fixture(scope="module")
def master(salt_factories, network, workdir):
    opts = fleetmod.master_overrides({"interface": "127.0.0.1"})
    # The README's narrowed peer rule, for these minions only.
    opts["peer"] = {r"^ctr-.*$": ["mosquitto_ca.sign_csr", "mosquitto_cluster.accept"]}
    # Its root (keys, job cache, pillar with the password) in the module's
    # work dir: removed with it.
    daemon = salt_factories.salt_master_daemon("ctr-master", overrides=opts,
                                               defaults={"root_dir": workdir / "master"})
    fleetmod.link_formula_tree(daemon.state_tree.base.write_path)
    pillar_dir = pathlib.Path(daemon.pillar_tree.base.write_path)
    pillar_dir.mkdir(parents=True, exist_ok=True)
    (pillar_dir / "top.sls").write_text("base:\n  'ctr-*':\n    - mosquitto\n")
    (pillar_dir / "mosquitto.sls").write_text(PILLAR_SLS)
    with daemon.started(start_timeout=120):
        yield daemon


@pytest.fixture(scope="module")
def minions(master, engine, workdir):
    factory = minion_class(workdir / "hosts")
    daemons = [master.salt_minion_daemon(minion, factory_class=factory,
                                         defaults={"root_dir": workdir / minion},
                                         overrides={"docker.url": engine.url}) for minion in IDS]
    try:
        t0 = time.monotonic()
        each(lambda daemon: daemon.start(start_timeout=120), daemons)
        print(f"three minions started in {time.monotonic() - t0:.1f} s")
        yield daemons
    finally:
        each(lambda daemon: daemon.terminate(), daemons)
        master.salt_key_cli().run("-y", "-d", "ctr-*")


def salt(master, *args, tgt="ctr-*", timeout=600):
    """The salt CLI on the master: ({minion: return}, ProcessResult)."""
    res = master.salt_cli(timeout=timeout).run("--static", *args, minion_tgt=tgt)
    try:
        data = json.loads(res.stdout) if res.stdout.strip() else {}
    except ValueError:
        data = {}
    return data, res


def problems(data):
    return fleetmod._salt_problems(data, state_run=True)


@pytest.fixture(scope="module")
def applied(master, minions):
    t0 = time.monotonic()
    rets, res = salt(master, "state.apply", "mosquitto", "sync_mods=all", timeout=900)
    first = round(time.monotonic() - t0, 1)
    assert set(rets) == set(IDS) and not problems(rets), (problems(rets), res.stdout[-3000:], res.stderr)
    return {"rets": rets, "first_apply_s": first}


TOOL_ENV = {"MQTT_USER": "alice", "MQTT_PASSWORD": PASSWORD, "PYTHONPATH": str(REPO),
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
CA = f"{etc(HUB)}/certs/ca.crt"


def tool(workdir, *args):
    """test/support/mqtt_tool.py over TLS to <minion>.ctr.test:8883 (the
    container's address), the name verified against the cluster's CA."""
    return in_hosts_ns(workdir / "hosts", [sys.executable, "-m", "test.support.mqtt_tool", *args])


def sub(workdir, minion, topic, count, timeout, client_id=None):
    """A QoS 1 subscriber on minion's broker; returns once subscribed. A
    client id makes its session persistent."""
    args = [domain(minion), CA, topic, count, timeout] + ([client_id] if client_id else [])
    proc = subprocess.Popen(tool(workdir, "sub", *args),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env=TOOL_ENV)
    line = proc.stderr.readline()
    assert line.strip() == "SUBSCRIBED", (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def pub_lines(workdir, minion, topic, lines):
    result = subprocess.run(tool(workdir, "pub", domain(minion), CA, topic), input="\n".join(lines) + "\n",
                            capture_output=True, text=True, cwd=REPO, env=TOOL_ENV, timeout=120)
    assert result.returncode == 0, result.stderr


def sys_values(workdir, minion, topic_filter, count, timeout=5):
    """Retained $SYS values on minion's broker: {topic: payload}."""
    proc = sub(workdir, minion, topic_filter, count, timeout)
    out, _ = proc.communicate(timeout=timeout + 30)
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def bridge_states(workdir):
    got = sys_values(workdir, HUB, "$SYS/broker/connection/+/state", 2)
    return {t.split("/")[3]: v for t, v in got.items()}


def wait_bridges_up(workdir, timeout=90):
    want = {f"{SPOKE_A}.cluster": "1", f"{SPOKE_B}.cluster": "1"}
    deadline = time.monotonic() + timeout
    while True:
        states = bridge_states(workdir)
        if states == want:
            return
        assert time.monotonic() < deadline, f"bridges on the hub: {states}"
        time.sleep(1)


def attrs(engine, minion):
    return engine.client().containers.get(container(minion)).attrs


# ------------------------------------------------------------------ converge


def test_one_command_converges_three_containers(applied, engine):
    rets = applied["rets"]
    for minion in IDS:
        info = attrs(engine, minion)
        assert info["State"]["Running"] and info["Config"]["Image"] == image(minion)
        net = info["NetworkSettings"]["Networks"]
        assert list(net) == [NETWORK]
        assert net[NETWORK]["IPAMConfig"]["IPv4Address"] == NODES[minion]["ip"]
        # Its name on the network is the one its certificate holds.
        assert domain(minion) in net[NETWORK]["Aliases"]
        assert "mosquitto-build-container-network-present" not in changed(rets[minion])
    for spoke in (SPOKE_A, SPOKE_B):
        conf = pathlib.Path(f"{etc(spoke)}/bridges.d/cluster.conf").read_text()
        assert f"address {domain(HUB)}:8883" in conf
        assert f"remote_clientid {spoke}.cluster" in conf
        assert f"bridge_cafile {etc(spoke)}/certs/ca.crt" in conf
        assert "topic fleet/# both 1" in conf
    assert not pathlib.Path(f"{etc(HUB)}/bridges.d/cluster.conf").exists()
    passwd = pathlib.Path(f"{etc(HUB)}/passwd").read_text()
    assert f"bridge.{SPOKE_A}:$7$" in passwd and f"bridge.{SPOKE_B}:$7$" in passwd
    # Each spoke's certificate was signed by the hub's CA: one CA file.
    ca = pathlib.Path(CA).read_bytes()
    assert all(pathlib.Path(f"{etc(m)}/certs/ca.crt").read_bytes() == ca for m in IDS)
    waited = {m: round(v.get("duration", 0) / 1000, 1) for m in (SPOKE_A, SPOKE_B)
              for k, v in rets[m].items() if "mosquitto-runtime-cluster-spoke-accepted" in k}
    print(f"first apply of the three containers: {applied['first_apply_s']} s; "
          f"spokes waited for the hub (s): {waited}")


def test_spoke_containers_resolve_the_hub_by_name(applied, engine):
    """The engine's DNS, not a hosts entry written into the container."""
    for spoke in (SPOKE_A, SPOKE_B):
        c = engine.client().containers.get(container(spoke))
        code, out = c.exec_run(["getent", "hosts", domain(HUB)])
        assert code == 0 and out.split()[0].decode() == NODES[HUB]["ip"], out
        code, out = c.exec_run(["cat", "/etc/hosts"])
        assert domain(HUB).encode() not in out


def test_both_bridges_connect_to_the_hub(applied, workdir):
    wait_bridges_up(workdir)


def test_bridge_secrets_stay_on_the_spokes(applied, master):
    dump = json.dumps(applied["rets"])
    cache = pathlib.Path(master.config["cachedir"])
    for spoke in (SPOKE_A, SPOKE_B):
        path = pathlib.Path(f"{etc(spoke)}/cluster/bridge.secret")
        assert oct(path.stat().st_mode & 0o777) == "0o600" and path.stat().st_uid == 0
        secret = path.read_text().strip()
        assert len(secret) >= 32 and secret not in dump
        hits = subprocess.run(["grep", "-rlF", secret, str(cache)], capture_output=True, text=True)
        assert hits.stdout == "", hits.stdout
    assert PASSWORD not in dump


# ------------------------------------------------------------------ delivery


def test_a_message_from_one_spoke_arrives_exactly_once_on_the_other(applied, workdir):
    wait_bridges_up(workdir)
    run = secrets.token_hex(4)
    n = 20
    sent = {s: [f"fleet/d/{run}/{s} {s}-{i}" for i in range(n)] for s in (SPOKE_A, SPOKE_B)}
    want = sorted(sent[SPOKE_A] + sent[SPOKE_B])
    # One more than sent: each subscriber runs until its timeout, so a
    # duplicate would show.
    subs = {m: sub(workdir, m, f"fleet/d/{run}/#", len(want) + 1, 12) for m in IDS}
    for spoke in (SPOKE_A, SPOKE_B):
        pub_lines(workdir, spoke, f"fleet/d/{run}/{spoke}", [f"{spoke}-{i}" for i in range(n)])
    for minion, proc in subs.items():
        out, err = proc.communicate(timeout=60)
        got = sorted(out.splitlines())
        assert got == want, (minion, len(got), sorted(set(got) ^ set(want))[:5], err)
    # No loop: nothing keeps circulating on the hub.
    counter = "$SYS/broker/publish/messages/received"
    before = sys_values(workdir, HUB, counter, 1)
    time.sleep(5)
    after = sys_values(workdir, HUB, counter, 1)
    assert before == after and before.get(counter), (before, after)


# ------------------------------------------------------------------ hub re-created


def test_hub_container_recreated_bridges_return_and_queued_messages_arrive(applied, master, engine,
                                                                           workdir):
    """The operator removes the hub's container; while it is gone spoke A
    takes QoS 1 messages for a persistent subscriber on spoke B. Applying
    the hub re-creates it on the same data dir, address and alias: both
    bridges reconnect by name and every message arrives."""
    wait_bridges_up(workdir)
    run = secrets.token_hex(4)
    topic, client_id, n = f"fleet/r/{run}", f"recreate-{run}", 50
    first = sub(workdir, SPOKE_B, f"{topic}/#", 0, 30, client_id)  # subscribed, then offline
    first.communicate(timeout=60)
    before = attrs(engine, HUB)["Id"]
    engine.docker("stop", container(HUB))  # SIGTERM: the hub saves its database
    engine.docker("rm", container(HUB))
    pub_lines(workdir, SPOKE_A, f"{topic}/x", [f"m{i}" for i in range(n)])
    rets, res = salt(master, "state.apply", "mosquitto", tgt=HUB)
    assert not problems(rets) and HUB in rets, (problems(rets), res.stderr)
    assert "mosquitto-runtime-container-broker-running" in changed(rets[HUB])
    assert attrs(engine, HUB)["Id"] != before
    # The hub's retained bridge states come back from its database, so they
    # prove nothing here: the messages do (spoke A -> hub -> spoke B, both
    # bridges reconnected by name to the new container).
    proc = sub(workdir, SPOKE_B, f"{topic}/#", n, 60, client_id)
    out, err = proc.communicate(timeout=120)
    # QoS 1 across a reconnect: at least once, so compared as a set.
    assert sorted(set(out.splitlines())) == sorted(f"{topic}/x m{i}" for i in range(n)), \
        (len(out.splitlines()), err)


# ------------------------------------------------------------------ idempotence


def test_second_apply_and_test_mode_change_nothing(applied, master, engine):
    ids = {m: attrs(engine, m)["Id"] for m in IDS}
    for args in (("state.apply", "mosquitto"), ("state.apply", "mosquitto", "test=True")):
        rets, res = salt(master, *args)
        assert set(rets) == set(IDS) and not problems(rets), (problems(rets), res.stderr)
        for minion in IDS:
            assert changed(rets[minion]) == {}, (args, minion, changed(rets[minion]))
    assert {m: attrs(engine, m)["Id"] for m in IDS} == ids


# ------------------------------------------------------------------ one key to Swarm


def test_swarm_or_kubernetes_enabled_alone_takes_the_clusters_spokes_from_the_mine(applied, master):
    """The README's move to Swarm: this cluster's pillar plus
    swarm:enabled (no swarm:spokes) on a minion of this master gives the
    stack the hub and both spokes, learned from the spokes' mine entries
    (the apply published them) as the hub learns its bridge users.
    state.show_sls only renders: nothing is deployed or written."""
    override = {"mosquitto": {"container": {"enabled": False},
                              "swarm": {"enabled": True, "stack": "mqmove", "dir": f"{etc(HUB)}/swarm"}}}
    rets, res = salt(master, "state.show_sls", "mosquitto.swarm.stack", f"pillar={json.dumps(override)}", tgt=HUB)
    states = rets.get(HUB)
    assert isinstance(states, dict) and "mosquitto-swarm-stack-deployed" in states, (res.stdout[-3000:], res.stderr)
    args = states["mosquitto-swarm-stack-deployed"]["mosquitto_swarm"]
    brokers = next(arg["brokers"] for arg in args if isinstance(arg, dict) and "brokers" in arg)
    assert {b["name"]: b["role"] for b in brokers.values()} == {HUB: "hub", SPOKE_A: "spoke", SPOKE_B: "spoke"}
    assert not pathlib.Path(f"{etc(HUB)}/swarm").exists()
    # Kubernetes likewise: kubernetes:spokes unset is one spoke replica
    # per spoke the mine knows.
    k8s_dir = f"{etc(HUB)}/k8s"
    override = {"mosquitto": {"container": {"enabled": False},
                              "kubernetes": {"enabled": True, "dir": k8s_dir, "image": "local/mosquitto:2.0.11"}}}
    rets, res = salt(master, "state.show_sls", "mosquitto.kubernetes", f"pillar={json.dumps(override)}", tgt=HUB)
    states = rets.get(HUB)
    sid = "mosquitto-kubernetes-manifest-spoke.yaml-file-managed"
    assert isinstance(states, dict) and sid in states, (res.stdout[-3000:], res.stderr)
    contents = next(a["contents"] for a in states[sid]["file"] if isinstance(a, dict) and "contents" in a)
    sets = [d for d in yaml.safe_load_all(contents) if d and d["kind"] == "StatefulSet"]
    assert [d["spec"]["replicas"] for d in sets] == [2]
    assert not pathlib.Path(k8s_dir).exists()
