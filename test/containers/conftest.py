"""Container mode: `salt-call --local state.apply mosquitto` with the broker in a
Docker container, on a Docker engine this suite starts and stops itself.

The engine's data lives in a temp dir, it manages no iptables rules, no
forwarding and no bridge; the host's packet filter is compared before and
after. The formula's files go to their own paths (/etc/mosquitto-ctr, ports
11883/18883/19234, own accounts and exporter service) so the host broker the
integration suite manages is not touched and both suites can run at once.
"""
import os
import pathlib
import secrets
import shutil
import signal
import tempfile

import pytest

from scripts.saltlocal import failed
from test.containers import engine as eng
from test.support import localhost, saltlog
from test.support.container import DOMAIN, IMAGE, OTHER_IMAGE, engine_salt, pillar, remove_host_leftovers


def pytest_unconfigure(config):
    saltlog.drop_salt_temp_handler()


@pytest.fixture(scope="session")
def passwords():
    return {"alice": "a:" + secrets.token_urlsafe(12), "bob": "b " + secrets.token_urlsafe(12)}


@pytest.fixture(scope="session", autouse=True)
def _cron_left_as_found():
    with localhost.cron_left_as_found():
        yield


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the container suite starts dockerd: run it as root")
    before = eng.firewall_snapshot()
    remove_host_leftovers()  # of an earlier run that was killed
    # A SIGTERM (CI timeout, an impatient user) still runs the teardown.
    def _terminate(signum, frame):
        raise KeyboardInterrupt("SIGTERM")
    previous = signal.signal(signal.SIGTERM, _terminate)
    # A short path: the engine's socket path must fit in sockaddr_un.
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="mqctr-", dir="/tmp"))
    docker = eng.DockerEngine(workdir / "engine")
    try:
        docker.start()
        eng.build_images(docker, {IMAGE: (1883, 1883), OTHER_IMAGE: (2883, 2883)}, workdir)
        yield docker
    finally:
        docker.stop()
        remove_host_leftovers()
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
    assert eng.firewall_snapshot() == before, "the suite changed this host's packet filter"


@pytest.fixture(scope="session")
def salt_local(tmp_path_factory, passwords, engine):
    return engine_salt(tmp_path_factory.mktemp("salt-ctr"), pillar(passwords), engine)


@pytest.fixture(scope="session")
def applied(salt_local):
    rc, states, err = salt_local.apply()
    assert rc == 0 and not failed(states), (failed(states), err)
    return states


@pytest.fixture
def hosts_ns(tmp_path):
    """Run a command with DOMAIN mapped to 127.0.0.1 in a private mount
    namespace: the host's /etc/hosts is never touched."""
    return localhost.hosts_runner(tmp_path, [DOMAIN])
