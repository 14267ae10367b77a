"""How much an idle broker logs with the formula's mosquitto.conf.

The real mosquitto reads the whole file the formula renders (TLS listener,
password file, ACL, persistence with the durability default autosave
every 2 s), pointed at temp paths. Two brokers sit idle side by side for
the same stretch: the default (logging:types error, warning, notice) and
the same config with `information` added, which is where 2.0 logs each
autosave. Lines are counted, never timed: the idle stretch only turns a
count into lines per hour.
"""
import pathlib
import re
import subprocess
import time

import jinja2
import pytest

from test.support.broker import MOSQUITTO, free_port, stop_process, wait_port
from test.support.config import cfg, settings
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)
from test.support.mqtt import Client

TEMPLATES = pathlib.Path(__file__).resolve().parents[2] / "mosquitto/files/default"
IDLE_S = 24
# Lines an idle hour may cost with the default: the measured count is 0;
# one line a minute would still be ~1,400 a day, not the 43,000 of before.
IDLE_BOUND_PER_HOUR = 60
PASSWORD = "idle-log-" + "p" * 12


def rendered_conf(tmp, ports, **pillar):
    """mosquitto.conf as the formula renders it, for files under `tmp`."""
    data = cfg.validate(settings(
        ports={"mqtt": ports[0], "mqtts": ports[1], "exporter": 9234},
        persistence={"location": f"{tmp}/data/"},
        tls={"ca_cert": f"{tmp}/ca.crt", "cert": f"{tmp}/ca.crt", "key": f"{tmp}/server.key"},
        # The broker runs as root here: no chown of the temp files needed.
        service={"user": "root", "group": "root"},
        paths={"passwd": f"{tmp}/passwd", "acl": f"{tmp}/acl", "log_file": f"{tmp}/mosquitto.log",
               "bridges_dir": f"{tmp}/bridges.d", "include_dir": ""},
        **pillar))
    data.pop("users")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), extensions=["jinja2.ext.do"])
    return env.get_template("mosquitto.conf.jinja").render(mosquitto=data)


def broker_files(tmp):
    """What the config names: a self-signed certificate, alice's password, an ACL."""
    (tmp / "data").mkdir()
    (tmp / "bridges.d").mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-subj", "/CN=localhost", "-days", "2", "-keyout", str(tmp / "server.key"),
                    "-out", str(tmp / "ca.crt")], check=True, capture_output=True)
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(tmp / "passwd"), "alice", PASSWORD],
                   check=True, capture_output=True)
    (tmp / "acl").write_text("user alice\ntopic readwrite #\n")


class FormulaBroker:
    def __init__(self, tmp, **pillar):
        tmp.mkdir()
        broker_files(tmp)
        self.ports = (free_port(), free_port())
        self.conf = rendered_conf(tmp, self.ports, **pillar)
        (tmp / "mosquitto.conf").write_text(self.conf)
        self.log = tmp / "mosquitto.log"
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(tmp / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def started(self):
        for port in self.ports:
            wait_port(port)
        return self

    def lines(self):
        return self.log.read_text(errors="replace").splitlines() if self.log.exists() else []

    def wait_for(self, pattern, timeout=10.0):
        """The first log line matching `pattern` (the broker writes each
        line as it happens; this only waits for it to get there)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.lines() if re.search(pattern, line)]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no log line matching {pattern!r}:\n" + "\n".join(self.lines()))


@pytest.fixture
def brokers(tmp_path):
    started = []
    try:
        started.append(FormulaBroker(tmp_path / "default"))
        started.append(FormulaBroker(tmp_path / "information",
                                     logging={"types": ["error", "warning", "notice", "information"]}))
        yield [b.started() for b in started]
    finally:
        for broker in started:
            stop_process(broker.proc)


def test_idle_broker_logs_nothing_but_connections_stay_visible(brokers):
    quiet, chatty = brokers
    assert re.findall(r"^log_type (\w+)$", quiet.conf, re.M) == ["error", "warning", "notice"]
    assert "\nautosave_interval 1\n" in quiet.conf  # the durability default: a save every 2 s
    before = [len(b.lines()) for b in brokers]
    start = time.monotonic()
    time.sleep(IDLE_S)
    idle_s = time.monotonic() - start
    per_hour = [(len(b.lines()) - n) * 3600 / idle_s for b, n in zip(brokers, before, strict=True)]
    saves = [line for line in chatty.lines() if "Saving in-memory database" in line]
    # The measure sees the autosave line where it is logged...
    assert len(saves) >= 3 and per_hour[1] >= 360, (per_hour, chatty.lines())
    # ...and the default logs (almost) nothing while idle.
    assert per_hour[0] <= IDLE_BOUND_PER_HOUR, (per_hour, quiet.lines())
    assert not any("Saving in-memory database" in line for line in quiet.lines())

    # One login, its logout and a refused login: all in the quiet log.
    alice = Client(quiet.ports[0], "alice", PASSWORD, client_id="idle-alice")
    assert alice.connect()
    alice.close()
    assert Client(quiet.ports[0], "alice", "wrong", client_id="idle-mallory").connect() is False
    assert "u'alice'" in quiet.wait_for(r"New client connected from 127\.0\.0\.1:\d+ as idle-alice ")
    quiet.wait_for(r"Client idle-alice disconnected\.")
    # 2.0.11 names a refused client <unknown> (it never got an id).
    quiet.wait_for(r"Client <unknown> disconnected, not authorised\.")
    print(f"idle lines per hour: default {per_hour[0]:.0f}, with information {per_hour[1]:.0f}")
