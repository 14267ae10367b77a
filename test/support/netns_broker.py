"""A real mosquitto broker in a network namespace of its own, whose loopback
interface also holds ADDRESS, and clients run inside that namespace.

Why a namespace: the formula refuses plain MQTT on a non-loopback address
unless listeners:mqtt:allow_remote_plain is set, so a test of that opt-in
needs an address that is not loopback to validation (127.0.0.2 is: all of
127.0.0.0/8 is, so it would prove nothing) and that the broker can really
bind. The tests may use no address of this host's own network, so the
namespace gets one: 192.0.2.10 (TEST-NET-1, RFC 5737, never routed) on its
own ``lo``. Nothing outside the namespace can reach it, and the namespace
goes away with the broker (its only process). Its ports are its own too,
so fixed ports do not clash with other tests.
"""
import subprocess
import time

from test.support.broker import MOSQUITTO, stop_process

ADDRESS = "192.0.2.10"
_SETUP = 'ip link set lo up && ip addr add "$1/32" dev lo && exec "$2" -c "$3"'


class NetnsBroker:
    """``mosquitto -c conf`` in a new network namespace (unshare --net)."""

    def __init__(self, conf, log):
        self.conf, self.log = conf, log
        self.proc = None

    def start(self, timeout=20.0):
        """Start it and wait until it says it runs (after its listeners are
        open); RuntimeError with its log when it exits instead."""
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(["unshare", "--net", "--", "sh", "-c", _SETUP, "sh",
                                          ADDRESS, MOSQUITTO, str(self.conf)],
                                         stdout=logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " running" in self.logtext():
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"broker did not start: {self.logtext()}")

    def logtext(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def run(self, *argv, timeout=30):
        """A command inside the broker's namespace (a client)."""
        return subprocess.run(["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", "--", *argv],
                              capture_output=True, text=True, timeout=timeout, check=False)

    def stop(self):
        stop_process(self.proc)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
