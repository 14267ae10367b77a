"""What the container suite's tests, fixtures and bench/container.py share:
the suite's own names, paths and ports, its pillar, a salt-call config that
talks to the suite's Docker engine, and the cleanup of what it leaves on
the host."""
import os
import shutil
import subprocess

from scripts.saltlocal import SaltLocal
from test.support import localhost

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
# The broker image plus python3, paho-mqtt and prometheus-client
# (engine.build_exporter_image): the exporter's image in Kubernetes pods
# and swarm services.
EXPORTER_IMAGE = "local/mosquitto-exporter:1883"
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


def remove_host_leftovers():
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


def wait_for(predicate, timeout=20.0, step=0.1):
    return localhost.wait_for(predicate, timeout, step)
