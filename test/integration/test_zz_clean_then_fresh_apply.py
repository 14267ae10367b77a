"""mosquitto.clean undoes the formula (keeping the CA); on the bare host that
leaves, test=True plans without touching anything, and a real apply brings
everything back. Runs last in this folder: it reinstalls the broker."""
import pathlib
import shutil
import subprocess

import pytest

from scripts.saltlocal import changed, failed
from test.integration.conftest import CA
from test.support.mqtt import Client

pytestmark = pytest.mark.integration


def installed(pkg):
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True).stdout
    return out.startswith("install ok installed")


def test_clean_then_test_mode_then_fresh_apply(salt_local, applied, passwords):
    ca_before = pathlib.Path(CA).read_bytes()

    rc, states, err = salt_local.apply("mosquitto.clean")
    assert rc == 0 and not failed(states), failed(states)
    assert not installed("mosquitto") and shutil.which("mosquitto_pub") is None
    for path in ("/etc/mosquitto/mosquitto.conf", "/etc/mosquitto/passwd", "/etc/mosquitto/acl",
                 "/etc/mosquitto/certs/server.key", "/etc/mosquitto/exporter"):
        assert not pathlib.Path(path).exists(), path
    assert pathlib.Path("/etc/mosquitto/ca/ca.key").exists(), "clean must keep the CA"
    assert subprocess.run(["ss", "-Hltn", "sport = :8883"], capture_output=True, text=True).stdout == ""

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
