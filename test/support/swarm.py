"""Swarm mode's test parts: a single-node swarm on the container suite's
engine (and its removal, leaving the host as found), the suite's swarm
pillar (a hub and two spokes from the hosts' cluster pillar), and helpers
that run clients inside the brokers' tasks.

The engine runs with its firewall handling off (test/containers/engine.py),
so on the stack's overlay network services are reached by task address
(endpoint_mode dnsrr, which the formula uses). Every address the swarm
takes is in 198.19.0.0/24: the gateway bridge (the one swarm link on the
host, made here before `swarm init` so it is ours to name and size), the
default address pool (the ingress network) and the stack's subnet.
"""
import contextlib
import json
import os
import shutil
import subprocess

from test.support.container import EXPORTER_IMAGE
from test.support.localhost import wait_for

STACK = "mqswarm"
# The exporters' /metrics port on the stack's network (ports:exporter).
METRICS_PORT = 9234
HUB, SPOKE1, SPOKE2 = "hub.swarm.test", "spoke1.swarm.test", "spoke2.swarm.test"
LABELS = {HUB: "hub-swarm-test", SPOKE1: "spoke1-swarm-test", SPOKE2: "spoke2-swarm-test"}
ETC = "/etc/mosquitto-swarm"
SWARM_DIR = f"{ETC}/swarm"
SUBNET = "198.19.0.128/26"
POOL, GWBRIDGE_SUBNET = "198.19.0.0/24", "198.19.0.192/26"
GWBRIDGE = "docker_gwbridge"
IMAGE = "local/mosquitto:1883"
NAMESPACE = "com.docker.stack.namespace"
# The broker alone (no cluster): its own stack, files and subnet, so it
# never collides with the cluster's stack.
SOLO, SOLO_STACK, SOLO_DIR, SOLO_SUBNET = "solo.swarm.test", "mqsolo", f"{ETC}/solo", "198.19.0.64/26"


def pillar(passwords, **extra):
    data = {"mosquitto": {
        # The manager's own name: no broker is called so in a cluster.
        "domain": "manager.swarm.test",
        "tls": {"ca_cert": f"{ETC}/certs/ca.crt", "ca_key": f"{ETC}/ca/ca.key",
                "cert": f"{ETC}/certs/server.crt", "key": f"{ETC}/certs/server.key"},
        "users": {
            "alice": {"password": passwords["alice"], "acl": ["readwrite fleet/#", "readwrite local/#"]},
            "ops": {"password": passwords["ops"], "acl": ["read $SYS/#"]},
        },
        "firewall": {"enabled": False},
        "config": {"sys_interval": 1},
        "cluster": {"hub": HUB, "members": "*.swarm.test", "topics": ["fleet/# both 1"],
                    "keepalive_interval": 10, "restart_timeout": [1, 5]},
        "container": {"image": IMAGE, "uid": 1883, "gid": 1883, "nofile": 16384,
                      "healthcheck": {"interval": 1, "timeout": 5, "retries": 3, "start_period": 5}},
        # No swarm:spokes: masterless, no mine to learn them from (README);
        # the swarm tests name them (spokes_pillar).
        "swarm": {"enabled": True, "stack": STACK, "subnet": SUBNET, "exporter_image": EXPORTER_IMAGE,
                  "dir": SWARM_DIR, "wait": 120, "update_delay": 1, "restart_delay": 1},
    }}
    for key, value in extra.items():
        data["mosquitto"][key] = value
    return data


def spokes_pillar(passwords, **extra):
    """The host cluster's pillar plus swarm:enabled, and the spokes named."""
    data = pillar(passwords, **extra)
    data["mosquitto"]["swarm"]["spokes"] = [SPOKE1, SPOKE2]
    return data


def solo_pillar(passwords, exporter_image=EXPORTER_IMAGE):
    """The suite's pillar without a cluster: one broker named ``domain``
    (exporter_image '', the default: no exporter service)."""
    data = pillar(passwords, domain=SOLO)
    del data["mosquitto"]["cluster"]
    data["mosquitto"]["swarm"].update(stack=SOLO_STACK, dir=SOLO_DIR, subnet=SOLO_SUBNET,
                                      exporter_image=exporter_image)
    return data


def _ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def gwbridge_link():
    return _ip("link", "show", GWBRIDGE).returncode == 0


def init(engine):
    """A single-node swarm, its gateway bridge made first in our range."""
    assert not gwbridge_link(), f"{GWBRIDGE} exists before the swarm tests: a leftover of another run?"
    engine.docker("network", "create", "--driver", "bridge", "--subnet", GWBRIDGE_SUBNET,
                  "--opt", f"com.docker.network.bridge.name={GWBRIDGE}",
                  "--opt", "com.docker.network.bridge.enable_icc=false",
                  "--opt", "com.docker.network.bridge.enable_ip_masquerade=false", GWBRIDGE)
    engine.docker("swarm", "init", "--advertise-addr", "127.0.0.1", "--default-addr-pool", POOL,
                  "--default-addr-pool-mask-length", "26")


def leave(engine):
    """Services, the swarm and its gateway bridge gone; the link too (the
    engine leaves it behind, CONTAINERS.md)."""
    with contextlib.suppress(Exception):
        ids = engine.docker("service", "ls", "-q", check=False, timeout=60).stdout.split()
        if ids:
            engine.docker("service", "rm", *ids, check=False, timeout=120)
        wait_for(lambda: not engine.docker("ps", "-aq", "--filter", f"label={NAMESPACE}",
                                           check=False).stdout.strip(), 60, 0.5)
        engine.docker("swarm", "leave", "--force", check=False, timeout=120)
        engine.docker("network", "rm", GWBRIDGE, check=False, timeout=60)
        for stack in (STACK, SOLO_STACK):
            engine.docker("volume", "prune", "-f", "--filter", f"label={NAMESPACE}={stack}", check=False)
    if gwbridge_link():
        _ip("link", "del", GWBRIDGE)


def remove_host_leftovers():
    if os.path.isdir(ETC):
        shutil.rmtree(ETC, ignore_errors=True)


def service(broker):
    return f"{STACK}_{LABELS[broker]}"


def exporter_service(broker):
    return f"{STACK}_{LABELS[broker]}-exporter"


def exporter_task(engine, broker, timeout=90):
    """The running task container of ``broker``'s exporter service."""
    name = exporter_service(broker)

    def running():
        out = engine.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={name}",
                            "--filter", "status=running", check=False).stdout.split()
        return out[0] if len(out) == 1 else None
    cid = wait_for(running, timeout, 0.5)
    assert cid, engine.docker("service", "ps", "--no-trunc", name, check=False).stdout
    return cid


def scrape(engine, from_broker, broker):
    """``broker``'s exporter's /metrics, fetched over the stack's network
    from inside ``from_broker``'s exporter task (its image has python3), by
    the exporter's alias on the network; '' when it does not answer."""
    url = f"http://{LABELS[broker]}-exporter:{METRICS_PORT}/metrics"
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    proc = engine.docker("exec", exporter_task(engine, from_broker), "python3", "-c", code,
                         check=False, timeout=60)
    return proc.stdout if proc.returncode == 0 else ""


def task_container(engine, broker):
    """The ID of the running task container of ``broker``'s service."""
    out = engine.docker("ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service(broker)}",
                        "--filter", "status=running", check=False).stdout.split()
    return out[0] if len(out) == 1 else None


def wait_task(engine, broker, timeout=90, other_than=None):
    """The running, healthy task container of ``broker`` (not ``other_than``)."""
    def ready():
        cid = task_container(engine, broker)
        if not cid or (other_than and other_than.startswith(cid)):
            return None
        health = inspect(engine, cid)["State"].get("Health", {}).get("Status")
        return cid if health == "healthy" else None
    cid = wait_for(ready, timeout, 0.5)
    if not cid:
        tasks = engine.docker("service", "ps", "--no-trunc", service(broker), check=False).stdout
        raise AssertionError(f"{service(broker)} has no healthy task:\n{tasks}")
    return cid


def inspect(engine, ref, kind="container"):
    return json.loads(engine.docker(kind, "inspect", ref).stdout)[0]


def exec_in(engine, broker, *cmd, timeout=60, check=True):
    cid = wait_task(engine, broker)
    return engine.docker("exec", cid, *cmd, timeout=timeout, check=check)


def sub_args(host, password, *args, user="alice", tls=True):
    """mosquitto_sub/pub connection arguments from inside a task: by name
    over TLS (the stack's CA secret), or the task's own plain listener."""
    if tls:
        return ["-h", host, "-p", "8883", "--cafile", "/run/secrets/ca.crt", "-u", user, "-P", password, *args]
    return ["-h", "127.0.0.1", "-p", "1883", "-u", user, "-P", password, *args]


def bridges_up(engine, password):
    """The hub's own $SYS state of both spokes' bridges, 1 each."""
    out = exec_in(engine, HUB, "mosquitto_sub", *sub_args(HUB, password, "-t", "$SYS/broker/connection/+/state",
                                                        "-v", "-W", "3", user="ops", tls=False),
                  check=False).stdout
    states = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
    return all(states.get(f"$SYS/broker/connection/{s}.cluster/state") == "1" for s in (SPOKE1, SPOKE2))
