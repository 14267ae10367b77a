"""Container mode beside host mode, in one run on this machine.

For each mode: the first apply (after `mosquitto.clean`), a no-op re-apply,
broker start-to-ready (service start / `docker start` until the TLS port
completes a TLS handshake), and QoS 1 throughput through the TLS listener
(one paho publisher, one paho subscriber, 100 messages in flight, the
publisher at most 500 messages ahead of the subscriber).

Host mode applies the formula to this host's broker (default paths, ports
1883/8883, the CA in a temp dir) under the integration suite's host lock;
container mode runs on a private Docker engine with the container suite's
pillar (its own paths, ports 11883/18883). Run as root:

    .venv/bin/python bench/container.py
"""
import fcntl
import os
import secrets
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import paho.mqtt.client as mqtt  # noqa: E402

from scripts.saltlocal import SaltLocal, changed, failed  # noqa: E402
from test.containers import engine as eng  # noqa: E402
from test.support.container import IMAGE, NAME, remove_host_leftovers  # noqa: E402
from test.support.container import pillar as container_pillar  # noqa: E402

DOMAIN = "mqtt.container.test"
HOST_LOCK = "/run/lock/mosquitto-formula-host.lock"
MESSAGES = 5000
WINDOW = 500
PASSWORDS = {"alice": "a-" + secrets.token_hex(8), "bob": "b-" + secrets.token_hex(8)}


def host_pillar(work):
    tls = Path(work) / "tls"
    return {"mosquitto": {
        "domain": DOMAIN, "firewall": {"enabled": False},
        "users": {"alice": {"password": PASSWORDS["alice"]}, "bob": {"password": PASSWORDS["bob"]}},
        "tls": {"ca_cert": f"{tls}/ca.crt", "ca_key": f"{tls}/ca/ca.key", "cert": f"{tls}/server.crt",
                "key": f"{tls}/server.key", "ip_addresses": ["127.0.0.1"]},
    }}


def apply_ok(salt, sls="mosquitto"):
    start = time.perf_counter()
    rc, states, err = salt.apply(sls)
    took = time.perf_counter() - start
    if rc != 0 or failed(states):
        raise SystemExit(f"apply {sls} failed: {failed(states) or err}")
    return took, states


def tls_ready(port, cafile, timeout=30.0):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False
    deadline = time.monotonic() + timeout
    error = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                with ctx.wrap_socket(sock, server_hostname=DOMAIN):
                    return True
        except OSError as exc:
            error = exc
            time.sleep(0.005)
    raise SystemExit(f"TLS port {port} not ready after {timeout}s: {error!r}")


def start_to_ready(stop, start, port, cafile, repeat=5):
    times = []
    for _ in range(repeat):
        stop()
        t0 = time.perf_counter()
        start()
        tls_ready(port, cafile)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _client(port, cafile, user, client_id):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    c.username_pw_set(user, PASSWORDS[user])
    c.tls_set(ca_certs=cafile)
    c.tls_insecure_set(True)  # by IP; the chain is still verified
    c.max_inflight_messages_set(100)
    c.connect("127.0.0.1", port, 30)
    return c


def qos1_throughput(port, cafile, count=MESSAGES):
    """Messages/s from the first publish until the subscriber has them all."""
    got, done, subscribed = [0], threading.Event(), threading.Event()
    sub = _client(port, cafile, "bob", "bench-sub")

    def on_message(c, u, msg):
        got[0] += 1
        if got[0] == count:
            done.set()
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.loop_start()
    sub.subscribe("bench/#", qos=1)
    assert subscribed.wait(10)
    pub = _client(port, cafile, "bob", "bench-pub")  # alice may only write sensors/#
    pub.loop_start()
    payload = b"x" * 64
    start = time.perf_counter()
    # At most WINDOW messages ahead of the subscriber: the broker drops
    # what exceeds a client's max_queued_messages (1000 by default).
    infos = []
    for _ in range(count):
        while len(infos) - got[0] > WINDOW:
            time.sleep(0.0005)
        infos.append(pub.publish("bench/t", payload, qos=1))
    for info in infos:
        info.wait_for_publish(60)
    if not done.wait(120):
        raise SystemExit(f"subscriber got {got[0]} of {count}")
    rate = count / (time.perf_counter() - start)
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return rate


def run_mode(label, salt, stop, start, port, cafile, results):
    took, states = apply_ok(salt, "mosquitto.clean")
    first, states = apply_ok(salt)
    n_changed = len(changed(states))
    noops = []
    for _ in range(3):
        t, states = apply_ok(salt)
        assert not changed(states), changed(states)
        noops.append(t)
    tls_ready(port, cafile)
    ready = start_to_ready(stop, start, port, cafile)
    rate = qos1_throughput(port, cafile)
    results[label] = (first, n_changed, statistics.median(noops), ready, rate)


def bench_container(work, results):
    """Container mode on a private engine (no host lock needed)."""
    remove_host_leftovers()
    docker = eng.DockerEngine(work / "engine")
    try:
        docker.start()
        eng.build_images(docker, {IMAGE: (1883, 1883)}, work)
        salt = SaltLocal(work / "salt-ctr").setup(container_pillar(PASSWORDS), {"docker.url": docker.url})
        salt.sync()
        run_mode("container", salt,
                 lambda: docker.docker("stop", NAME),
                 lambda: docker.docker("start", NAME),
                 18883, "/etc/mosquitto-ctr/certs/ca.crt", results)
        apply_ok(salt, "mosquitto.clean")
    finally:
        docker.stop()
        remove_host_leftovers()


def bench_host(work, results):
    """This host's broker, under the integration suite's host lock."""
    fd = os.open(HOST_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        salt = SaltLocal(work / "salt-host").setup(host_pillar(work))
        salt.sync()
        run_mode("host", salt,
                 lambda: subprocess.run(["service", "mosquitto", "stop"], check=True, capture_output=True),
                 lambda: subprocess.run(["service", "mosquitto", "start"], check=True, capture_output=True),
                 8883, f"{work}/tls/ca.crt", results)
        for service in ("mosquitto-exporter", "mosquitto"):
            subprocess.run(["service", service, "stop"], capture_output=True)
    finally:
        os.close(fd)


def main():
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    # A SIGTERM still stops our dockerd and removes what we made.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit("terminated"))
    WORK.chmod(0o755)  # the host broker (user mosquitto) reads tls/ below it
    modes = sys.argv[1:] or ["container", "host"]
    results = {}
    print(f"container vs host mode on {os.uname().nodename}, {os.cpu_count()} cores, "
          f"{MESSAGES} QoS 1 messages over TLS\n", flush=True)
    # Container mode first: other checkouts' suites may hold the host lock.
    for mode in modes:
        {"container": bench_container, "host": bench_host}[mode](WORK, results)
        print(f"{mode}: {results[mode]}", flush=True)
    print(f"\n{'':28}" + "".join(f"{m:>12}" for m in modes))
    rows = [("first apply (after clean)", 0, "{:10.2f} s"), ("no-op re-apply (median 3)", 2, "{:10.2f} s"),
            ("start-to-ready (median 5)", 3, "{:10.3f} s"), ("QoS 1 over TLS, msg/s", 4, "{:12.0f}")]
    for label, i, fmt in rows:
        print(f"{label:<28}" + "".join(fmt.format(results[m][i]).rjust(12) for m in modes))
    print("\nstates changed on first apply: " + ", ".join(f"{m} {results[m][1]}" for m in modes))


if __name__ == "__main__":
    WORK = Path(tempfile.mkdtemp(prefix="mqctr-bench-"))
    try:
        main()
    finally:
        subprocess.run(["rm", "-rf", str(WORK)])
