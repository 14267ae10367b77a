"""A real mosquitto started from the mosquitto.conf the formula renders
(the template and validation, defaults plus a pillar), with every file it
names under a temp dir: a self-signed certificate, a password file with
alice, an ACL. Runs as root (`service:user`), so nothing needs a chown."""
import pathlib
import re
import subprocess
import time

import jinja2

from test.support.broker import MOSQUITTO, free_port, stop_process, wait_port
from test.support.config import cfg, settings

TEMPLATES = pathlib.Path(__file__).resolve().parents[2] / "mosquitto/files/default"
PASSWORD = "formula-broker-" + "p" * 12


def template(name, **context):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), extensions=["jinja2.ext.do"])
    return env.get_template(name).render(**context)


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
    return template("mosquitto.conf.jinja", mosquitto=data)


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
    """configure_loader_modules (test.support.config) must be a fixture of
    the calling test module: validation runs with its Salt globals."""

    def __init__(self, tmp, **pillar):
        tmp.mkdir()
        broker_files(tmp)
        self.ports = (free_port(), free_port())
        self.conf = rendered_conf(tmp, self.ports, **pillar)
        (tmp / "mosquitto.conf").write_text(self.conf)
        self.log = tmp / "mosquitto.log"
        self.stderr = tmp / "stderr.log"
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(tmp / "mosquitto.conf")],
                                         stdout=subprocess.DEVNULL, stderr=err)

    def started(self):
        try:
            for port in self.ports:
                wait_port(port)
        except TimeoutError:
            raise RuntimeError(f"broker did not start: {self.stderr.read_text()}{self.lines()}") from None
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

    def stop(self):
        stop_process(self.proc)
