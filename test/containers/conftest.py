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
import subprocess
import tempfile

import pytest

from scripts.saltlocal import SaltLocal, failed
from test.containers import engine as eng
from test.support import localhost, saltlog

DOMAIN = "mqtt.container.test"
ETC = "/etc/mosquitto-ctr"
CA = f"{ETC}/certs/ca.crt"
DATA = "/var/lib/mosquitto-ctr"
NAME = "mosquitto-ctr"
PORTS = {"mqtt": 11883, "mqtts": 18883, "exporter": 19234}
# The image the tests run first (uid 1883, like eclipse-mosquitto) and a
# second one with another uid for the broker.
IMAGE = "local/mosquitto:1883"
OTHER_IMAGE = "local/mosquitto:2883"
# Everything on the host that only this suite's pillar names.
EXPORTER_SERVICE = "mosquitto-ctr-exporter"
HOST_LEFTOVERS = [ETC, DATA, f"/etc/init.d/{EXPORTER_SERVICE}", f"/etc/default/{EXPORTER_SERVICE}",
                  f"/usr/local/sbin/{EXPORTER_SERVICE}"]


def pillar(passwords, **container):
    settings = {
        "enabled": True,
        "name": NAME,
        "image": IMAGE,
        "uid": 1883,
        "gid": 1883,
        # This machine's hard limit for root is 20000 (no CAP_SYS_RESOURCE).
        "nofile": 16384,
        "restart_policy": "unless-stopped",
        # Short, so a test sees "healthy" within seconds.
        "healthcheck": {"interval": 1, "timeout": 5, "retries": 3, "start_period": 5},
    }
    settings.update(container)
    return {"mosquitto": {
        "domain": DOMAIN,
        "ports": dict(PORTS),
        "tls": {"ca_cert": CA, "ca_key": f"{ETC}/ca/ca.key", "cert": f"{ETC}/certs/server.crt",
                "key": f"{ETC}/certs/server.key", "ip_addresses": ["127.0.0.1"]},
        "users": {
            "alice": {"password": passwords["alice"], "acl": ["readwrite sensors/#", "read status/#"]},
            "bob": {"password": passwords["bob"]},
        },
        "persistence": {"location": f"{DATA}/"},
        # Never firewalld on this machine.
        "firewall": {"enabled": False},
        "exporter": {"user": "mosquitto-ctr-exporter"},
        "config": {"sys_interval": 2},
        "container": settings,
        "lookup": {
            "paths": {"conf": f"{ETC}/mosquitto.conf", "passwd": f"{ETC}/passwd", "acl": f"{ETC}/acl",
                      "bridges_dir": f"{ETC}/bridges.d",
                      "exporter_secret": f"{ETC}/exporter/password",
                      "exporter_env": f"/etc/default/{EXPORTER_SERVICE}",
                      "exporter": f"/usr/local/sbin/{EXPORTER_SERVICE}",
                      # Nothing shared with the host broker the integration
                      # suite runs: its renewal job, limits hook and log.
                      "renew_cron": "/etc/cron.d/mosquitto-ctr-tls-renew",
                      "sysv_limits_hook": "", "log_file": ""},
            # The host's mosquitto package owns user "mosquitto": the
            # container's uid gets an account of its own.
            "service": {"user": "mosquitto-ctr", "group": "mosquitto-ctr",
                        "exporter_name": EXPORTER_SERVICE},
        },
    }}


def pytest_unconfigure(config):
    saltlog.drop_salt_temp_handler()


@pytest.fixture(scope="session")
def passwords():
    return {"alice": "a:" + secrets.token_urlsafe(12), "bob": "b " + secrets.token_urlsafe(12)}


@pytest.fixture(scope="session")
def engine(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the container suite starts dockerd: run it as root")
    before = eng.firewall_snapshot()
    _remove_host_leftovers()  # of an earlier run that was killed
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
        _remove_host_leftovers()
        shutil.rmtree(workdir, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
    assert eng.firewall_snapshot() == before, "the suite changed this host's packet filter"


def _remove_host_leftovers():
    """What clean.sls leaves by design (exporter service, CA, data) or what a
    failed run left: stop our exporter by its init script, remove our paths
    and the container account."""
    if os.path.exists(f"/etc/init.d/{EXPORTER_SERVICE}"):
        subprocess.run(["service", EXPORTER_SERVICE, "stop"], capture_output=True, timeout=60)
        subprocess.run(["update-rc.d", "-f", EXPORTER_SERVICE, "remove"], capture_output=True)
    for path in HOST_LEFTOVERS:
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.exists(path):
            os.unlink(path)
    for cmd in (["userdel", "mosquitto-ctr"], ["groupdel", "mosquitto-ctr"],
                ["userdel", "mosquitto-ctr-exporter"], ["groupdel", "mosquitto-ctr-exporter"]):
        subprocess.run(cmd, capture_output=True)


def engine_salt(workdir, pillar_data, engine, **opts):
    """A synced masterless salt-call config whose docker modules talk to the
    suite's engine (``opts``: more minion options, e.g. grains)."""
    salt = SaltLocal(workdir).setup(pillar_data, {"docker.url": engine.url, **opts})
    salt.sync()
    return salt


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


def wait_for(predicate, timeout=20.0, step=0.1):
    return localhost.wait_for(predicate, timeout, step)
