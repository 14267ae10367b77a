"""mosquitto.clean undoes the formula (keeping the CA); on the bare host that
leaves, test=True plans without touching anything, and a real apply brings
everything back. Runs last in this folder: it reinstalls the broker."""
import os
import pathlib
import shutil
import subprocess

import pytest

from scripts.saltlocal import changed, failed
from test.support.integration import CA
from test.support.mqtt import Client

pytestmark = pytest.mark.integration


ROOT = pathlib.Path(__file__).resolve().parents[2]
VENV = "/opt/mosquitto-exporter"
# The CA and its record of issued certificates stay (README: clean keeps the CA).
KEPT = {"/etc/mosquitto", "/etc/mosquitto/ca", "/etc/mosquitto/ca/ca.key", "/etc/mosquitto/ca/issued.json",
        "/etc/mosquitto/certs", "/etc/mosquitto/certs/ca.crt"}


def leftovers():
    """Every path, package, unit, user, process and port the formula
    touches that is still there after clean (the CA excepted)."""
    found = []
    for pkg in ("mosquitto", "mosquitto-clients", "python3-paho-mqtt", "python3-prometheus-client"):
        status = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg],
                                capture_output=True, text=True).stdout
        if status not in ("", "not-installed"):
            found.append(f"package {pkg}: {status}")
    paths = ["/etc/mosquitto", "/var/lib/mosquitto", "/var/log/mosquitto", "/run/mosquitto",
             "/etc/default/mosquitto-exporter", "/usr/local/sbin/mosquitto_exporter", VENV,
             "/etc/init.d/mosquitto", "/etc/init.d/mosquitto-exporter", "/run/mosquitto-exporter.pid",
             "/etc/systemd/system/mosquitto-exporter.service"]
    for root in paths:
        path = pathlib.Path(root)
        for p in ([path, *path.rglob("*")] if path.is_dir() else [path] if path.exists() else []):
            if str(p) not in KEPT:
                found.append(str(p))
    found += [str(p) for p in pathlib.Path("/etc").glob("rc?.d/*mosquitto*")]
    # (the broker's own user stays: its package made it and keeps it)
    for user in ("mosquitto-exporter",):
        for db in ("/etc/passwd", "/etc/group"):
            if any(line.split(":")[0] == user for line in pathlib.Path(db).read_text().splitlines()):
                found.append(f"{db}: {user}")
    for port in (1883, 8883, 9234):
        if subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout:
            found.append(f"port {port} listening")
    found += [f"process {args}" for args in _own_processes()
              if "/etc/mosquitto/mosquitto.conf" in args or "/usr/local/sbin/mosquitto_exporter" in args]
    found += [f"command {c}" for c in ("mosquitto", "mosquitto_pub", "mosquitto_sub") if shutil.which(c)]
    return found


def _own_processes():
    """Command lines of processes in this host's mount namespace (the test
    hosts and containers of other suites show in /proc too)."""
    ours = os.readlink("/proc/self/ns/mnt")
    for proc in pathlib.Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and os.readlink(proc / "ns" / "mnt") == ours:
                yield (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue


def _named_by_this_formula(path):
    name = pathlib.PurePath(path).name
    sources = [*(ROOT / "mosquitto").rglob("*"), *(ROOT / "_modules").glob("*.py"), *(ROOT / "_states").glob("*.py"),
               *(ROOT / "_utils").glob("*.py")]
    return any(name in f.read_text() for f in sources if f.is_file())


def installed(pkg):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True).stdout
    return out.startswith("install ok installed")


@pytest.fixture
def converged_again(salt_local):
    """Whatever the test finds, leave the host converged: the suites after
    this one (unit, render) use its mosquitto and clients."""
    yield
    if not installed("mosquitto") or not installed("mosquitto-clients"):
        salt_local.apply()


def test_clean_then_test_mode_then_fresh_apply(salt_local, applied, passwords, converged_again):
    ca_before = pathlib.Path(CA).read_bytes()

    # Something to lose: a venv, as exporter:install venv makes.
    pathlib.Path(VENV, "bin").mkdir(parents=True, exist_ok=True)
    pathlib.Path(VENV, "bin", "python").touch()

    rc, states, err = salt_local.apply("mosquitto.clean", test=True)
    assert rc == 0 and not failed(states), failed(states)
    assert "mosquitto-clean-build-package-pkg-purged" in changed(states)
    assert installed("mosquitto") and pathlib.Path("/etc/mosquitto/passwd").exists(), "test=True changed the host"

    rc, states, err = salt_local.apply("mosquitto.clean")
    assert rc == 0 and not failed(states), failed(states)
    left = leftovers()
    # This host is shared with other checkouts of the formula, whose
    # branches may add files this one does not know (and their own clean
    # removes): only names this checkout's formula or modules use count.
    ours = [p for p in left if not p.startswith("/") or _named_by_this_formula(p)]
    print("left by other checkouts:", sorted(set(left) - set(ours)))
    assert ours == [], "clean left these behind"
    assert pathlib.Path("/etc/mosquitto/ca/ca.key").exists(), "clean must keep the CA"
    assert pathlib.Path(CA).read_bytes() == ca_before

    rc, states, err = salt_local.apply("mosquitto.clean")
    assert rc == 0 and changed(states) == {}, changed(states)

    rc, states, err = salt_local.apply(test=True)
    assert rc == 0 and not failed(states), failed(states)
    planned = changed(states)
    for sid in ("mosquitto-build-package-pkg-installed", "mosquitto-configure-users-passwd-managed",
                "mosquitto-configure-broker-config-file-managed", "mosquitto-runtime-service-running"):
        assert sid in planned, sid
    assert all(v.get("result") in (None, True) for v in states.values())
    assert not installed("mosquitto")
    assert not pathlib.Path("/etc/mosquitto/mosquitto.conf").exists()
    assert not pathlib.Path("/etc/mosquitto/exporter").exists()

    rc, states, err = salt_local.apply()
    assert rc == 0 and not failed(states), failed(states)
    assert installed("mosquitto")
    assert pathlib.Path(CA).read_bytes() == ca_before, "the kept CA is reused, not replaced"
    client = Client(8883, "alice", passwords["alice"], cafile=CA)
    assert client.connect()
    client.close()

    rc, states, err = salt_local.apply()
    assert rc == 0 and changed(states) == {}
