"""Production load and the hardened unit on one bare systemd host.

cap1.test is as bare as a debootstrap minbase host (no procps, so no
/bin/kill; the formula's packages only in the apt cache). From the client
namespace (198.18.0.100), by name:

- Debian's own unit cannot reload there (ExecReload=/bin/kill: 203/EXEC);
  after the formula's apply it can, and the first apply (which reloads for
  the new users) succeeds;
- 10,000 authenticated TLS clients (one asyncio process) are all accepted
  and held for 30 s while a normal publish/subscribe works and the exporter
  counts them;
- with listeners:mqtts:max_connections N, N are accepted and the rest closed
  at once, the broker logs it, the exporter serves connected and the limit,
  and the alert rule fires on those figures (promtool);
- the unit is hardened (systemd-analyze security <= 3.0), the broker runs
  as mosquitto from the start with the open-files limit from pillar,
  reloads on a user change (clients stay), restarts on a listener change
  keeping queued QoS 1 messages, and a TLS bridge (outbound, by name) works.

Tests run in file order on one module-scoped host.
"""
import json
import os
import pathlib
import re
import secrets
import subprocess
import sys
import time

import pytest
import yaml

from scripts.saltlocal import changed
from test.support import fleet as fleetmod
from test.support.modules import load

RESERVE = load("_modules", "mosquitto_config").FD_RESERVE

pytestmark = pytest.mark.hosts

HOST = "cap1.test"
CA = "/etc/mosquitto/certs/ca.crt"
REPO = pathlib.Path(__file__).resolve().parents[2]
PASSWORD = "cap-" + secrets.token_urlsafe(12)
LOG = "/var/log/mosquitto/mosquitto.log"
CLIENTS = 10_000
LIMIT = 50


def pillar_sls(**extra):
    data = {"mosquitto": {
        "domain": HOST,
        "users": {"alice": {"password": PASSWORD}},
        # keep the run lean: firewalld is the fleet suite's subject
        "firewall": {"enabled": False},
    }}
    for key, value in extra.items():
        fleetmod._deep_update(data["mosquitto"], {key: value})
    return json.dumps(data)  # JSON is YAML


@pytest.fixture(scope="module")
def host(fleet_factory, fleet_pillar_dir):
    (fleet_pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
    (fleet_pillar_dir / "mosquitto.sls").write_text(pillar_sls())
    fleet = fleet_factory([HOST])
    yield fleet[HOST]
    for name in ("top.sls", "mosquitto.sls"):
        (fleet_pillar_dir / name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def fleet(host):
    return host.fleet


def set_pillar(fleet_pillar_dir, **extra):
    (fleet_pillar_dir / "mosquitto.sls").write_text(pillar_sls(**extra))


def apply(fleet, *args):
    ret = fleet.salt("state.apply", "mosquitto", "sync_mods=all", *args, tgt=HOST,
                     timeout=900, check=True)[HOST]
    return ret


def main_pid(h):
    return int(h.run(["systemctl", "show", "-p", "MainPID", "--value", "mosquitto"]).stdout)


def metrics(fleet):
    out = fleet.client.run([sys.executable, "-c",
                            "import sys,urllib.request;sys.stdout.write(urllib.request.urlopen("
                            f"'http://{HOST}:9234/metrics',timeout=5).read().decode())"]).stdout
    values = {}
    for line in out.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def wait_metric(fleet, name, predicate, timeout=40):
    """The exporter's value once predicate holds ($SYS every 10 s)."""
    deadline = time.monotonic() + timeout
    while True:
        value = metrics(fleet).get(name)
        if value is not None and predicate(value):
            return value
        assert time.monotonic() < deadline, (name, value)
        time.sleep(1)


@pytest.fixture(scope="module")
def cafile(host, tmp_path_factory, applied):
    path = tmp_path_factory.mktemp("cap") / "ca.crt"
    path.write_bytes(host.path(CA).read_bytes())
    return path


class LoadRun:
    """test/support/mqtt_load.py in the client namespace; JSON events."""

    def __init__(self, fleet, cafile, count, hold, prefix):
        env = dict(os.environ, MQTT_LOAD_PASSWORD=PASSWORD, PYTHONPATH=str(REPO))
        self.proc = fleet.client.popen(
            [sys.executable, "-m", "test.support.mqtt_load", "--host", HOST, "--port", "8883",
             "--cafile", str(cafile), "--user", "alice", "--count", str(count),
             "--hold", str(hold), "--prefix", prefix, "--deadline", "240"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)

    def event(self, name):
        line = self.proc.stdout.readline()  # bounded by the script's --deadline and --timeout
        assert line, self.proc.stderr.read()
        data = json.loads(line)
        assert data["event"] == name, data
        return data

    def finish(self):
        try:
            self.proc.wait(60)
        finally:
            fleetmod_stop(self.proc)


def fleetmod_stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def mqtt(fleet, tool, cafile, *args, user="alice", password=PASSWORD):
    return [tool, "-h", HOST, "-p", "8883", "--cafile", str(cafile), "-u", user, "-P", password,
            *args]


# ----------------------------------------------------------------------------


def test_debians_unit_cannot_reload_on_a_bare_host(fleet, host):
    """The issue's 203/EXEC: mosquitto installed from the cache, no procps."""
    assert not host.path("/bin/kill").exists()
    ret = fleet.salt("state.single", "pkg.installed", "name=mosquitto", tgt=HOST,
                     timeout=300, check=True)[HOST]
    assert "mosquitto" in next(iter(ret.values()))["changes"]
    assert host.run(["systemctl", "is-active", "mosquitto"], check=False).stdout.strip() == "active"
    reload = host.run(["systemctl", "reload", "mosquitto"], check=False)
    assert reload.returncode != 0
    journal = host.journal("mosquitto")
    assert "status=203/EXEC" in journal, journal


@pytest.fixture(scope="module")
def applied(fleet, host):
    t0 = time.monotonic()
    ret = apply(fleet)
    print(f"\nfirst apply on a bare host: {time.monotonic() - t0:.1f} s")
    assert all(v["result"] is True for v in ret.values())
    return ret, None


def test_first_apply_reloads_without_procps(applied, host):
    ret, _ = applied
    done = changed(ret)
    # users were added: the broker was reloaded (SIGHUP through the drop-in's sh)
    assert "mosquitto-runtime-service-reloaded" in done, sorted(done)
    assert "mosquitto-configure-service-dropin-file-managed" in done
    assert "mosquitto-configure-service-systemd-reloaded" in done
    reload = host.run(["systemctl", "reload", "mosquitto"], check=False)
    assert reload.returncode == 0, reload.stderr


def test_second_apply_changes_nothing(fleet, applied):
    assert changed(apply(fleet)) == {}
    assert changed(apply(fleet, "test=True")) == {}


def test_unit_is_hardened_and_runs_as_mosquitto_with_its_limit(host, applied):
    out = host.run(["systemd-analyze", "security", "--no-pager", "mosquitto.service"]).stdout
    score = float(re.search(r"Overall exposure level for mosquitto.service: ([0-9.]+)", out).group(1))
    assert score <= 3.0, out
    print(f"\nsystemd-analyze security mosquitto: {score}")
    pid = main_pid(host)
    status = host.run(["cat", f"/proc/{pid}/status"]).stdout
    uid = host.run(["id", "-u", "mosquitto"]).stdout.strip()
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", status, re.M), status
    # the unit itself starts it as mosquitto: no root phase, no capabilities
    assert host.run(["systemctl", "show", "-p", "User", "--value", "mosquitto"]).stdout.strip() == "mosquitto"
    assert re.search(r"^CapEff:\s+0+$", status, re.M), status
    # open-files limit: limits:open_files (65536) capped by this host's hard limit
    pid1 = host.run(["cat", "/proc/1/limits"]).stdout
    hard = int(re.search(r"^Max open files\s+\S+\s+(\d+)", pid1, re.M).group(1))
    limits = host.run(["cat", f"/proc/{pid}/limits"]).stdout
    want = min(65536, hard)
    assert re.search(rf"^Max open files\s+{want}\s+{want}\s", limits, re.M), limits
    conf = host.path("/etc/mosquitto/mosquitto.conf").read_text()
    assert f"max_connections {want - RESERVE}\n" in conf
    assert want - RESERVE >= CLIENTS
    # writes go where ReadWritePaths allow: its log (logins are `notice`,
    # logged by default; the exporter logs in once the broker is up)
    fleetmod._wait(lambda: "New client connected from" in host.path(LOG).read_text(), 20,
                   "a login in the broker's log")


def test_ten_thousand_tls_clients_are_held_while_pubsub_works(fleet, host, cafile):
    sub = fleet.client.popen(mqtt(fleet, "mosquitto_sub", cafile, "-t", "cap/live", "-C", "1",
                                  "-W", "200", "-i", "cap-live-sub"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    load = LoadRun(fleet, cafile, CLIENTS, hold=30, prefix="cap")
    try:
        connected = load.event("connected")
        assert connected["accepted"] == CLIENTS, connected
        # the broker still serves a normal client while holding them
        pub = fleet.client.run(mqtt(fleet, "mosquitto_pub", cafile, "-t", "cap/live",
                                    "-m", "still here", "-q", "1"), check=False)
        assert pub.returncode == 0, pub.stderr
        out, err = sub.communicate(timeout=30)
        assert out.strip() == "still here", err
        # the exporter counts them (10,000 + the live subscriber + itself)
        seen = wait_metric(fleet, "broker_clients_connected", lambda v: v >= CLIENTS)
        held = load.event("held")
        assert held["alive"] == CLIENTS, held
        load.finish()
    finally:
        fleetmod_stop(sub)
        fleetmod_stop(load.proc)
    rss = host.run(["cat", f"/proc/{main_pid(host)}/status"]).stdout
    print(f"\n10k TLS clients: connected in {connected['seconds']} s "
          f"({connected['rate']}/s), exporter saw {seen:.0f}, "
          f"{re.search(r'VmHWM:.*', rss).group(0)}")


def test_max_connections_refuses_the_rest_and_the_alert_fires(fleet, host, cafile, fleet_pillar_dir,
                                                              tmp_path):
    # a persistent session with QoS 1 messages queued while it is away
    fleet.client.run(mqtt(fleet, "mosquitto_sub", cafile, "-t", "cap/queue", "-q", "1", "-c",
                          "-i", "cap-queue", "-E"))
    for i in range(5):
        fleet.client.run(mqtt(fleet, "mosquitto_pub", cafile, "-t", "cap/queue", "-q", "1",
                              "-m", f"queued {i}"))
    pid = main_pid(host)
    set_pillar(fleet_pillar_dir, listeners={"mqtts": {"max_connections": LIMIT}})
    done = changed(apply(fleet))
    assert "mosquitto-runtime-service-running" in done  # a listener change restarts
    assert main_pid(host) != pid
    assert f"max_connections {LIMIT}\n" in host.path("/etc/mosquitto/mosquitto.conf").read_text()
    # the queue survived the restart (persistence written under ProtectSystem=strict)
    got = fleet.client.run(mqtt(fleet, "mosquitto_sub", cafile, "-t", "cap/queue", "-q", "1",
                                "-c", "-i", "cap-queue", "-C", "5", "-W", "20"), check=False)
    assert got.stdout.split("\n")[:5] == [f"queued {i}" for i in range(5)], got.stderr

    # The broker may hold LIMIT + RESERVE files, so the open-files limit
    # refuses before LIMIT + RESERVE clients (stdio, listeners, log, epoll and
    # the exporter take some of the reserve). mosquitto 2.0.11's own
    # max_connections count drifts at disconnects (upstream #1460): seen
    # here letting about twice LIMIT in. Two rounds, so the second runs
    # after the first one's disconnects: the limit still holds.
    limits = host.run(["cat", f"/proc/{main_pid(host)}/limits"]).stdout
    assert re.search(rf"^Max open files\s+{LIMIT + RESERVE}\s+{LIMIT + RESERVE}\s", limits, re.M), limits
    tries = LIMIT + RESERVE + 50
    rounds = []
    for n in range(2):
        log_before = len(host.path(LOG).read_text())
        load = LoadRun(fleet, cafile, tries, hold=25 if n == 0 else 0, prefix=f"capn{n}")
        try:
            connected = load.event("connected")
            if n == 0:
                connected_now = wait_metric(fleet, "broker_clients_connected", lambda v: v >= LIMIT)
                served_limit = metrics(fleet)["mosquitto_max_connections"]
                held = load.event("held")
                assert held["alive"] == connected["accepted"], held
            load.finish()
        finally:
            fleetmod_stop(load.proc)
        rounds.append(connected)
        log = host.path(LOG).read_text()[log_before:]
        refused = log.count("denied access by tcpd.") + log.count("denied: max_connections exceeded.")
        assert LIMIT <= connected["accepted"] < LIMIT + RESERVE, connected
        assert connected["closed"] == tries - connected["accepted"], connected  # closed at once
        assert connected["timeout"] == connected["error"] == connected["rejected"] == 0, connected
        assert refused == connected["closed"], log[-2000:]
    print(f"\nmax_connections {LIMIT}, {tries} tries: accepted "
          f"{[r['accepted'] for r in rounds]}, closed {[r['closed'] for r in rounds]}")
    assert served_limit == LIMIT

    # the alert rule, fed the figures this exporter served
    instance = f"{HOST}:9234"
    rules = yaml.safe_load((REPO / "monitoring/alerts.yml").read_text())["groups"][0]["rules"]
    (rule,) = [r for r in rules if r.get("alert") == "MosquittoConnectionsNearLimit"]
    annotations = {k: v.replace("{{ $labels.instance }}", instance)
                   .replace("{{ $value }}", f"{connected_now:.0f}")
                   for k, v in rule["annotations"].items()}
    test = {
        "rule_files": [str(REPO / "monitoring/alerts.yml")],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": f'broker_clients_connected{{job="node", instance="{instance}"}}',
                 "values": f"{connected_now:.0f}x10"},
                {"series": f'mosquitto_max_connections{{job="node", instance="{instance}"}}',
                 "values": f"{served_limit:.0f}x10"},
            ],
            "alert_rule_test": [{
                "eval_time": "5m", "alertname": "MosquittoConnectionsNearLimit",
                "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "node",
                                               "instance": instance},
                                "exp_annotations": annotations}],
            }],
        }],
    }
    path = tmp_path / "capacity_alert_test.yml"
    path.write_text(json.dumps(test))
    res = subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_user_change_reloads_and_clients_stay(fleet, host, cafile, fleet_pillar_dir):
    sub = fleet.client.popen(mqtt(fleet, "mosquitto_sub", cafile, "-t", "cap/reload", "-C", "1",
                                  "-W", "120", "-i", "cap-reload-sub"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        fleetmod._wait(lambda: "cap-reload-sub" in host.path(LOG).read_text(), 20, "subscriber")
        pid = main_pid(host)
        set_pillar(fleet_pillar_dir, listeners={"mqtts": {"max_connections": LIMIT}},
                   users={"bob": {"password": PASSWORD + "-bob"}})
        done = changed(apply(fleet))
        assert "mosquitto-runtime-service-reloaded" in done
        assert "mosquitto-runtime-service-running" not in done
        assert main_pid(host) == pid
        bob = fleet.client.run(mqtt(fleet, "mosquitto_pub", cafile, "-t", "cap/reload", "-m", "after reload",
                                    user="bob", password=PASSWORD + "-bob"), check=False)
        assert bob.returncode == 0, bob.stderr
        out, err = sub.communicate(timeout=30)
        assert out.strip() == "after reload", err  # the subscriber from before the reload
    finally:
        fleetmod_stop(sub)


def test_a_tls_bridge_works_under_the_sandbox(fleet, host, cafile, fleet_pillar_dir):
    """Outbound TLS (AF_INET, the CA file, the certificate's IP SAN) from the
    broker: a bridge from cap1 to itself maps here/# to there/#. By its own
    address: validation refuses a bridge to the broker's own name (a loop in
    general; the prefixes make this one loop-free)."""
    set_pillar(fleet_pillar_dir, tls={"ip_addresses": [host.ip]}, bridges={"self": {
        "address": f"{host.ip}:8883", "topics": ["# out 1 here/ there/"],
        "remote_username": "alice", "remote_password": PASSWORD, "tls": True,
        "options": {"remote_clientid": "cap1-self"}}})
    pid = main_pid(host)
    done = changed(apply(fleet))
    assert "mosquitto-runtime-service-running" in done and main_pid(host) != pid
    sub = fleet.client.popen(mqtt(fleet, "mosquitto_sub", cafile, "-t", "there/#", "-C", "1", "-W", "60",
                                  "-v"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 45
        while sub.poll() is None and time.monotonic() < deadline:
            fleet.client.run(mqtt(fleet, "mosquitto_pub", cafile, "-t", "here/x", "-m", "bridged", "-q", "1"))
            time.sleep(1)
        out, err = sub.communicate(timeout=30)
    finally:
        fleetmod_stop(sub)
    assert out.strip() == "there/x bridged", (err, host.path(LOG).read_text()[-2000:])
