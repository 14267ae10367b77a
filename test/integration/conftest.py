"""Fixtures that apply the formula to this machine with `salt-call --local`.

The host is really changed (packages, /etc/mosquitto, the mosquitto
service); the broker the formula starts is stopped again at the end.
"""
import fcntl
import os
import secrets
import subprocess

import pytest

from scripts.saltlocal import SaltLocal, failed
from test.support import localhost
from test.support.integration import DOMAIN, base_pillar


@pytest.fixture(scope="session")
def passwords():
    # Fresh per run, with characters mosquitto_passwd users meet in practice.
    return {"alice": "a:" + secrets.token_urlsafe(12), "bob": "b " + secrets.token_urlsafe(12)}


# One run at a time changes this host's broker: a second checkout's suite
# (another worktree, a benchmark) waits here instead of fighting over
# /etc/mosquitto and the service.
HOST_LOCK = "/run/lock/mosquitto-formula-host.lock"


@pytest.fixture(scope="session", autouse=True)
def _cron_left_as_found():
    with localhost.cron_left_as_found():
        yield


@pytest.fixture(scope="session")
def host_lock():
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the other run ends
        yield
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def salt_local(tmp_path_factory, passwords, host_lock):
    if os.geteuid() != 0:
        pytest.fail("the integration suite applies the formula to this host: run it as root")
    salt = SaltLocal(tmp_path_factory.mktemp("salt-local")).setup(base_pillar(passwords))
    salt.sync()
    yield salt
    # Stop the daemons this suite started (their init scripts know the PIDs).
    for service in ("mosquitto-exporter", "mosquitto"):
        subprocess.run(["service", service, "stop"], capture_output=True)


@pytest.fixture(scope="session")
def applied(salt_local):
    rc, states, err = salt_local.apply()
    assert rc == 0 and not failed(states), (failed(states), err)
    return states


@pytest.fixture
def hosts_ns(tmp_path):
    """Run a command with DOMAIN mapped to 127.0.0.1 in a private mount
    namespace: the host's /etc/hosts is never touched."""
    return localhost.hosts_runner(tmp_path, [DOMAIN, "alt.integration.test"])
