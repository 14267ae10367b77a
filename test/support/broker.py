"""Run a real, throw-away mosquitto broker on a free loopback port.

Used by unit and exporter tests that need a live broker but must not touch
the host's /etc/mosquitto or its service.
"""
import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc, grace=10.0):
    """SIGTERM, then SIGKILL after `grace` seconds; only our own child."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_port(port, host="127.0.0.1", timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


class Broker:
    """A mosquitto process with its own config in a temp dir.

    `extra` is appended to a config holding one listener on `port`.
    Runs as the invoking user (root in tests: `user root` keeps it from
    dropping to `mosquitto`, so temp files need no chown).
    """

    def __init__(self, extra="", port=None, workdir=None):
        self.port = port or free_port()
        self.dir = pathlib.Path(workdir or tempfile.mkdtemp(prefix="mosq-test-"))
        self.extra = extra
        self.proc = None
        self.log = self.dir / "broker.log"

    @property
    def conf(self):
        return self.dir / "mosquitto.conf"

    def write_conf(self):
        self.conf.write_text(
            f"user root\nlistener {self.port} 127.0.0.1\n"
            f"log_dest stderr\nlog_type all\n{self.extra}\n"
        )

    def start(self):
        self.write_conf()
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=logf, stderr=subprocess.STDOUT
        )
        try:
            wait_port(self.port)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"broker did not start: {self.log.read_text()}") from None
        return self

    def reload(self):
        self.proc.send_signal(signal.SIGHUP)

    def stop(self):
        stop_process(self.proc)
        self.proc = None

    def restart(self):
        self.stop()
        return self.start()

    def logtext(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        if os.environ.get("KEEP_BROKER_DIRS") is None:
            shutil.rmtree(self.dir, ignore_errors=True)
