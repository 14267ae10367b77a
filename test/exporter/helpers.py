"""Helpers for the exporter tests: the exporter as a real subprocess."""
import datetime
import http.client
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from test.support.broker import free_port, wait_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
EXPORTER = ROOT / "mosquitto" / "files" / "default" / "mosquitto_exporter.py"
PYTHONS = {
    "distro": "/usr/bin/python3",
    "pypi": str(ROOT / ".venv" / "bin" / "python"),
}
# Every broker in these tests publishes $SYS each second; anonymous access has
# to be switched on because Broker() defines a listener.
SYS_FAST = "sys_interval 1\n"
ANON = "allow_anonymous true\n"


def libraries(python):
    """'paho X / prometheus_client Y' or None when they cannot be imported."""
    probe = subprocess.run(
        [python, "-c", "import importlib.metadata as m; "
         "print(m.version('paho-mqtt'), m.version('prometheus-client'))"],
        capture_output=True, text=True,
    )
    return probe.stdout.split() if probe.returncode == 0 else None


def parse_metrics(text):
    """Text format 0.0.4 -> ({family: type}, {series: value})."""
    types, values = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            values[series] = float(value)
    return types, values


class Exporter:
    """mosquitto_exporter.py in a subprocess, /metrics on a free loopback port."""

    def __init__(self, python, *args, env=None):
        self.python = python
        self.args = list(args)
        self.env = env
        self.port = free_port()
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="mosq-exporter-test-"))
        self.logfile = self.dir / "exporter.log"
        self.proc = None

    @property
    def argv(self):
        return [self.python, str(EXPORTER), "--bind-address", f"127.0.0.1:{self.port}", *self.args]

    def start(self):
        env = {k: v for k, v in os.environ.items()
               if k not in ("BROKER_ENDPOINT", "BIND_ADDRESS", "MQTT_USER", "MQTT_PASS",
                            "MQTT_PASS_FILE", "MQTT_CAFILE", "MQTT_CERT", "MQTT_KEY")}
        env.update(self.env or {})
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        wait_port(self.port, timeout=15)
        return self

    def log(self):
        return self.logfile.read_text(errors="replace")

    def request(self, method="GET", path="/metrics", headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read().decode()
        finally:
            conn.close()

    def scrape(self):
        status, _, body = self.request()
        assert status == 200, body
        return body

    def metrics(self):
        return parse_metrics(self.scrape())

    def wait_for(self, predicate, what, timeout=20.0):
        """Scrape until predicate(types, values) holds; returns the last scrape."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.scrape()
            types, values = parse_metrics(body)
            if predicate(types, values):
                return types, values
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}\n--- /metrics\n{body}\n--- log\n{self.log()}")
            time.sleep(0.2)

    def wait_connected(self, timeout=20.0):
        """Connected, and the broker's retained $SYS values have arrived."""
        return self.wait_for(
            lambda t, v: v.get("mosquitto_exporter_connected") == 1 and "broker_uptime" in v,
            "a session with $SYS values", timeout)

    def stop(self, timeout=10):
        """SIGTERM, as systemd does; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                pytest.fail(f"exporter ignored SIGTERM for {timeout}s\n{self.log()}")
        code, self.proc = self.proc.returncode, None
        return code

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def mosquitto_pub(port, topic, message, *extra):
    subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic,
                    "-m", message, *extra], check=True, timeout=10)


def broker_series(values):
    return sorted(s for s in values if s.startswith("broker_"))


def write_cert(path, not_after, key=None, name="test"):
    """A self-signed certificate valid until not_after (to the second)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
            .not_valid_after(not_after)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert
