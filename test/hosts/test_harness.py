"""Smoke test of the fleet harness: two hosts, a master, a client netns."""
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from test.support import fleet as fleetmod

pytestmark = pytest.mark.hosts

NAMES = ["mqtt1.test", "mqtt2.test"]


@pytest.fixture(scope="module")
def fleet(fleet_factory):
    return fleet_factory(NAMES)


def test_ping_answers(fleet):
    assert fleet.salt("test.ping", check=True) == {n: True for n in NAMES}


def test_grains_systemd_debian12(fleet):
    grains = fleet.salt("grains.item", "init", "os", "osfinger", "fqdn_ip4", check=True)
    for name in NAMES:
        assert grains[name]["init"] == "systemd"
        assert grains[name]["os"] == "Debian"
        assert grains[name]["osfinger"] == "Debian-12"
    assert fleet["mqtt2.test"].salt_call("grains.get", "osfinger") == "Debian-12"


def test_hosts_see_each_other_by_name(fleet):
    h1, h2 = fleet["mqtt1.test"], fleet["mqtt2.test"]
    assert h1.ip == "198.18.0.11" and h2.ip == "198.18.0.12"
    assert h1.run("hostname").stdout.strip() == "mqtt1.test"
    assert h1.run("getent hosts mqtt2.test").stdout.split()[0] == h2.ip
    # no failed units on a fresh host
    assert h1.run("systemctl --failed --no-legend --plain").stdout.strip() == ""


def test_hosts_are_bare_with_the_formulas_packages_cached(fleet):
    """As bare as debootstrap's minbase: no procps (/bin/kill, ps, sysctl),
    no curl, none of the formula's packages installed; their .debs and the
    apt lists are there for the formula's pkg states (no network)."""
    h = fleet["mqtt2.test"]
    for tool in ("/bin/kill", "/usr/bin/ps", "/usr/sbin/sysctl", "/usr/bin/curl"):
        assert not h.path(tool).exists(), tool
    # ca-certificates comes with the harness's python3-venv (python3-pip-whl)
    for pkg in ("procps", "curl", *(p for p in fleetmod.FORMULA_PACKAGES if p != "ca-certificates")):
        status = h.run(["dpkg-query", "-W", "-f=${Status}", pkg], check=False).stdout
        assert "install ok installed" not in status, (pkg, status)
    for pkg in fleetmod.FORMULA_PACKAGES:
        assert list(h.path("/var/cache/apt/archives").glob(f"{pkg}_*.deb")), pkg
    assert list(h.path("/var/lib/apt/lists").glob("*_Packages")), "apt lists"


def test_client_reaches_hosts(fleet):
    for h in fleet:
        assert fleet.client.ping(h.ip), h.name
    # a TCP service inside a host, reached from the client namespace by name
    h = fleet["mqtt2.test"]
    h.run("systemd-run --unit=fleet-smoke-http /usr/bin/python3 -m http.server "
          f"--bind {h.ip} 8000")
    try:
        fleetmod._wait(lambda: fleet.client.tcp_open(h.ip, 8000), 15, "http.server")
        out = fleet.client.run(["curl", "-sf", "-o", "/dev/null", "-w", "%{http_code}",
                                "http://mqtt2.test:8000/"]).stdout
        assert out == "200"
    finally:
        h.run("systemctl stop fleet-smoke-http", check=False)
    assert not fleet.client.ping("198.18.0.99", timeout=0.5)


def test_pkg_state_offline(fleet):
    """The formula's package states install from the cache without network."""
    ret = fleet.salt("state.single", "pkg.installed", "name=mosquitto", tgt="mqtt1.test",
                     timeout=180, check=True)
    (state,) = ret["mqtt1.test"].values()
    assert state["result"] is True, state
    assert "mosquitto" in state["changes"], state  # really installed now
    h = fleet["mqtt1.test"]
    assert "install ok installed" in h.run(["dpkg-query", "-W", "-f=${Status}", "mosquitto"]).stdout


def test_fileserver_serves_the_repo(fleet):
    """salt:// is the repo: _modules, _states and _utils sync, the formula is listed."""
    repo = fleetmod.REPO_ROOT
    synced = fleet.salt("saltutil.sync_all", tgt="mqtt1.test", timeout=180, check=True)
    synced = synced["mqtt1.test"]
    for kind, folder in (("modules", "_modules"), ("states", "_states"), ("utils", "_utils")):
        want = {f"{kind}.{p.stem}" for p in (repo / folder).glob("*.py")}
        assert want <= set(synced[kind]), (kind, synced[kind])
    listed = fleet.salt("cp.list_master", tgt="mqtt1.test", check=True)["mqtt1.test"]
    want = {str(p.relative_to(repo)) for p in (repo / "mosquitto").rglob("*.sls")}
    assert want <= set(listed)
    assert not [f for f in listed if f.startswith((".venv/", ".git/"))]


def test_peer_publish(fleet):
    """Minions may call peers (the CA minion signs for the others)."""
    ret = fleet.salt("publish.publish", "mqtt2.test", "test.ping", tgt="mqtt1.test",
                     check=True)
    assert ret == {"mqtt1.test": {"mqtt2.test": True}}
    ret = fleet.salt("publish.publish", "mqtt2.test", "cmd.run", "id",
                     tgt="mqtt1.test")
    assert ret == {"mqtt1.test": {}}  # not allowed by the peer config


def test_reboot_reconnects(fleet):
    h = fleet["mqtt1.test"]
    pid1_before = h.leader
    t0 = time.monotonic()
    h.restart()
    took = time.monotonic() - t0
    assert h.leader != pid1_before
    assert h.run("ip -4 -o addr show host0").stdout.split()[3] == f"{h.ip}/24"
    assert fleet.salt("test.ping", tgt=h.name, check=True) == {h.name: True}
    assert took < 60, took


def test_crash_and_boot(fleet):
    h = fleet["mqtt2.test"]
    h.kill_pid1()
    assert not h.running
    after = time.time()
    h.start()
    fleet.wait_minions([h], after=after)
    assert fleet.salt("test.ping", tgt=h.name, check=True) == {h.name: True}


def test_teardown_leaves_nothing(fleet_lab, fleet_master):
    f = fleetmod.Fleet(fleet_lab, ["mqtt9.test"], master=fleet_master)
    try:
        f.start()
        h = f["mqtt9.test"]
        pid, hostdir = h.pid, h.dir
        assert f.salt("test.ping", tgt=h.name, check=True) == {h.name: True}
    finally:
        f.teardown()
    assert not os.path.exists(f"/proc/{pid}")
    assert not hostdir.exists()
    assert fleetmod._nspawn_pids_under(str(hostdir)) == []
    keys = fleet_master.salt_key_cli().run("-L").data
    assert "mqtt9.test" not in keys.get("minions", [])


# A second, independent lab (own bridge, netns, lock, run dir) run by a child
# process, so that the lab's own teardown and the stale cleanup after a crash
# can be checked while the session's lab is up.
ALT = {
    "run_dir": "/var/tmp/mosquitto-formula-fleet-selftest",
    "bridge": "mqtbr9",
    "client_ns": "mqtcli9",
    "network": "198.19.9",
    "lock_file": "/run/lock/mosquitto-formula-fleet-selftest.lock",
}
CHILD = """
import json, sys, time
from test.support import fleet as F
lab = F.Lab(**json.loads(sys.argv[1]))
lab.setup()
f = F.Fleet(lab, ["alt1.test"])
f.start()
print("READY", f["alt1.test"].pid, f["alt1.test"].leader, flush=True)
time.sleep(600)
"""


@pytest.fixture(autouse=True, scope="module")
def _no_child_leftovers():
    """Whatever happens to the child labs, remove their remains."""
    yield
    fleetmod.Lab(**ALT).cleanup()


def _start_child():
    proc = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(ALT)],
                            cwd=fleetmod.REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        proc.kill()
        pytest.fail(f"child lab did not start: {line}{proc.communicate()[1]}")
    _, nspawn, pid1 = line.split()
    return proc, int(nspawn), int(pid1)


def _leftovers():
    run_dir = pathlib.Path(ALT["run_dir"])
    return {
        "bridge": fleetmod._link_exists(ALT["bridge"]),
        "netns": pathlib.Path(f"/run/netns/{ALT['client_ns']}").exists(),
        "etc_netns": pathlib.Path(f"/etc/netns/{ALT['client_ns']}").exists(),
        "nspawn": fleetmod._nspawn_pids_under(ALT["run_dir"]),
        "mounts": fleetmod._mounts_under(run_dir) if run_dir.exists() else [],
        "run_dirs": sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else [],
    }


NOTHING = {"bridge": False, "netns": False, "etc_netns": False, "nspawn": [],
           "mounts": [], "run_dirs": []}


@pytest.mark.usefixtures("fleet_lab")  # the base root is built
def test_sigterm_tears_everything_down():
    proc, nspawn, pid1 = _start_child()
    assert _leftovers()["bridge"] and _leftovers()["nspawn"] == [nspawn]
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert not os.path.exists(f"/proc/{nspawn}") and not os.path.exists(f"/proc/{pid1}")
    assert _leftovers() == NOTHING


@pytest.mark.usefixtures("fleet_lab")
def test_crashed_run_is_cleaned_up_by_the_next():
    proc, nspawn, pid1 = _start_child()
    proc.kill()  # no teardown at all: host, bridge, netns, overlay stay behind
    proc.wait()
    left = _leftovers()
    assert left["bridge"] and left["netns"] and left["nspawn"] == [nspawn] and left["mounts"]
    lab = fleetmod.Lab(**ALT)
    try:
        lab.setup()
        assert not os.path.exists(f"/proc/{nspawn}") and not os.path.exists(f"/proc/{pid1}")
    finally:
        lab.teardown()
    assert _leftovers() == NOTHING
