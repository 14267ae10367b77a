"""The 3-host hub-and-spoke cluster of the hosts suite: its hosts, pillar
and first start, shared by test/hosts/test_cluster.py and
test/hosts/test_poisoned_mine.py (each builds its own module-scoped fleet
from it), and the client-side helpers (subscribers, publishers, metrics).

hub.test keeps the fleet CA and is the cluster hub; spoke-a.test and
spoke-b.test bridge to it. test_cluster.py boots them mixed (MIXED: the hub
and spoke-a on Debian 13, spoke-b on Debian 12), so what differs by release
runs once, on one fleet. Short keepalive (10 s) and restart_timeout (2 s)
keep the modules quick; sys_interval 1 makes $SYS counters fresh every
second.
"""
import json
import pathlib
import re
import secrets
import subprocess
import sys
import threading
import time

HUB, SPOKE_A, SPOKE_B = "hub.test", "spoke-a.test", "spoke-b.test"
HOSTS = [HUB, SPOKE_A, SPOKE_B]
MIXED = {HUB: "trixie", SPOKE_A: "trixie", SPOKE_B: "bookworm"}
PASSWORD = "cluster-" + secrets.token_urlsafe(12)
KEEPALIVE = 10
REPO = pathlib.Path(__file__).resolve().parents[2]


def pillar_sls(extra_users="", firewall=False, qos2=False):
    """The cluster pillar. firewall: firewalld managed on every host.
    qos2: a QoS 2 topic line too, only where the broker has it (from 2.0.15:
    chosen per minion by its release, in Jinja on the master); "everywhere":
    on every host, the 2.0.11 ones too (where the formula must refuse it)."""
    q2 = {False: "", "everywhere": "      - q2/# both 2\n",
          True: "{%- if grains['oscodename'] != 'bookworm' %}\n      - q2/# both 2\n{%- endif %}\n"}[qos2]
    return f"""\
mosquitto:
  domain: {{{{ grains['id'] }}}}
  users:
    alice:
      password: {json.dumps(PASSWORD)}
      acl:
        - 'readwrite #'
        - 'read $SYS/broker/connection/#'
{extra_users}
  firewall:
    enabled: {"true" if firewall else "false"}
    zone: public
  config:
    sys_interval: 1
  # `information` as well: the hub's reload shows as "Reloading config"
  # (test_users_only_change_on_the_hub_keeps_bridges_connected).
  logging:
    types: [error, warning, notice, information]
  tls:
    ca_server: "{{{{ '' if grains['id'] == '{HUB}' else '{HUB}' }}}}"
  cluster:
    hub: {HUB}
    members: '*.test'
    topics:
      - fleet/# both 1
{q2}    keepalive_interval: {KEEPALIVE}
    restart_timeout: 2
"""


def start_fleet(fleet_factory, fleet_pillar_dir, suites=None, **pillar):
    """The three hosts under the session's master, with the cluster pillar
    (pillar_sls's keywords); suites: Debian release per host (bookworm)."""
    (fleet_pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
    (fleet_pillar_dir / "mosquitto.sls").write_text(pillar_sls(**pillar))
    return fleet_factory(HOSTS, suites=suites)


def metrics(fleet, host):
    """host's exporter /metrics, scraped from the client namespace."""
    out = fleet.client.run(["curl", "-sf", f"http://{fleet[host].ip}:9234/metrics"], check=False)
    values = {}
    for line in out.stdout.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            values[series] = float(value)
    return values


def wait_for(predicate, what, timeout=90, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


TOOL_ENV = {"MQTT_USER": "alice", "MQTT_PASSWORD": PASSWORD, "PYTHONPATH": str(REPO),
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}


def sub(fleet, ca, host, topic, count, client_id=None, timeout=120, stamp=False, qos=1, show_qos=False):
    """A QoS 1 (or ``qos``) subscriber in the client netns on host:8883
    (test/support/mqtt_tool.py); a client id makes the session persistent;
    ``show_qos``: each line starts with "q<QoS it arrived with> ".
    Returns once the broker granted the subscription."""
    args = [sys.executable, "-m", "test.support.mqtt_tool", "sub", host, str(ca), topic, str(count), str(timeout)]
    env = dict(TOOL_ENV, MQTT_STAMP="1" if stamp else "0", MQTT_QOS=str(qos), MQTT_SHOW_QOS="1" if show_qos else "0")
    proc = fleet.client.popen(args + ([client_id] if client_id else []), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, cwd=REPO, env=env)
    line = proc.stderr.readline()  # mqtt_tool gives up after `timeout` itself
    assert line.strip() == "SUBSCRIBED", (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc


def pub_lines(fleet, ca, host, topic, lines, qos=1):
    """Publish each line as one QoS 1 (or ``qos``) message, each acknowledged."""
    fleet.client.run([sys.executable, "-m", "test.support.mqtt_tool", "pub", host, str(ca), topic],
                     input="\n".join(lines) + "\n", cwd=REPO, env=dict(TOOL_ENV, MQTT_QOS=str(qos)),
                     timeout=180)


class Lines:
    """A subprocess's stdout lines, read by a thread (no blocking reads)."""

    def __init__(self, proc):
        self.lines, self.proc = [], proc
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def find(self, pattern):
        return next((m for m in map(re.compile(pattern).match, list(self.lines)) if m), None)


def finish(proc, timeout=180):
    out, err = proc.communicate(timeout=timeout)
    return out.splitlines(), err


def main_pid(host):
    return int(host.run(["systemctl", "show", "-p", "MainPID", "--value", "mosquitto"]).stdout.strip())
