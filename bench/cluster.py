"""Benchmark a hub-and-spoke cluster beside one broker, in one run.

Three real mosquitto brokers on loopback: a hub with a TLS listener (a
throw-away CA, certificate for "localhost") and two spokes whose `cluster`
bridge sections come from the formula's own renderer
(mosquitto_bridge.render_section) with the settings a spoke derives
(cleansession false, try_private, remote_clientid, TLS by name).

Prints, for QoS 0 and QoS 1, a burst of N messages (throughput; latency
then includes the burst's own queue) and 500 messages paced at 200/s
(latency of the path):
  - one broker: publisher and subscriber on spoke A;
  - cluster: publisher on spoke A, subscriber on spoke B (A -> hub -> B);
throughput (messages / time from first publish to last arrival) and
latency p50/p99 (publish call to arrival, one clock); then the time spoke A
needs to deliver a 1,000-message QoS 1 backlog to B after the hub returns
(from the hub's start: reconnect included, restart_timeout 1 s).

Run as root: `.venv/bin/python bench/cluster.py [messages]` (default 5000).
"""
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from test.support.broker import Broker, free_port, wait_port  # noqa: E402
from test.support.modules import load  # noqa: E402

bridge = load("_modules", "mosquitto_bridge")


def make_ca(workdir):
    ca_key, ca_crt = workdir / "ca.key", workdir / "ca.crt"
    key, csr, crt = workdir / "hub.key", workdir / "hub.csr", workdir / "hub.crt"
    ext = workdir / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(ca_key), "-out", str(ca_crt), "-days", "2", "-subj", "/CN=bench CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext))
    return ca_crt, crt, key


def spoke_conf(name, hub_tls_port, ca):
    section = bridge.render_section("cluster", {
        "address": [f"localhost:{hub_tls_port}"], "topics": ["bench/# both 1"], "tls": True,
        "cleansession": False, "notifications": True, "keepalive_interval": 10,
        "options": {"remote_clientid": f"{name}.cluster", "try_private": True, "restart_timeout": 1},
    }, ca_cert=str(ca), tls_version="tlsv1.2")
    return "allow_anonymous true\nmax_queued_messages 10000\n" + section


def client(port, client_id="", clean=True):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    c.max_inflight_messages_set(100)
    c.max_queued_messages_set(0)
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert connected.wait(10), f"no CONNACK from {port}"
    return c


def measure(pub_port, sub_port, qos, count, topic, pace=None):
    arrivals = {}
    done = threading.Event()
    sub = client(sub_port)

    def on_message(_c, _u, msg):
        seq, sent = msg.payload.decode().split(" ")
        arrivals.setdefault(int(seq), (float(sent), time.perf_counter()))
        if len(arrivals) == count:
            done.set()
    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.subscribe(topic, qos=qos)
    assert subscribed.wait(10)
    time.sleep(0.5)  # the bridge's own subscription on the hub is already there
    pub = client(pub_port)
    t0 = time.perf_counter()
    infos = []
    for i in range(count):
        if pace:
            # Paced: latency of the path itself, not of a queue of our own burst.
            while time.perf_counter() < t0 + i * pace:
                time.sleep(0.0002)
        infos.append(pub.publish(topic, f"{i} {time.perf_counter()}", qos=qos))
    done.wait(120)
    for c in (pub, sub):
        c.loop_stop()
        c.disconnect()
    got = len(arrivals)
    lat = sorted((r - s) * 1000 for s, r in arrivals.values())
    last = max(r for _, r in arrivals.values()) if arrivals else t0
    return {
        "received": got, "rate": got / (last - t0) if got else 0,
        "p50": statistics.median(lat) if lat else float("nan"),
        "p99": lat[int(0.99 * (len(lat) - 1))] if lat else float("nan"),
    }


def backlog(hub, spoke_a_port, spoke_b_port, count=1000):
    arrivals = []
    done = threading.Event()
    sub = client(spoke_b_port)
    sub.on_message = lambda _c, _u, m: (arrivals.append(time.perf_counter()),
                                        len(arrivals) >= count and done.set())
    sub.subscribe("bench/backlog", qos=1)
    time.sleep(0.5)
    hub.stop()
    pub = client(spoke_a_port)
    for i in range(count):
        pub.publish("bench/backlog", str(i), qos=1)
    time.sleep(1.0)  # all acknowledged by spoke A (loopback, 100 in flight)
    pub.loop_stop()
    pub.disconnect()
    t0 = time.perf_counter()
    hub.start()
    done.wait(120)
    sub.loop_stop()
    sub.disconnect()
    first = arrivals[0] - t0 if arrivals else float("nan")
    return len(arrivals), first, (arrivals[-1] - t0) if arrivals else float("nan")


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    ca, crt, key = make_ca(work)
    tls_port = free_port()
    hub = Broker(workdir=work / "hub", extra=(
        f"allow_anonymous true\nmax_queued_messages 10000\npersistence true\n"
        f"persistence_location {work / 'hub'}/\n"
        f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\n"))
    (work / "hub").mkdir()
    spokes = []
    for name in ("spoke-a", "spoke-b"):
        (work / name).mkdir()
        spokes.append(Broker(workdir=work / name, extra=spoke_conf(name, tls_port, ca)))
    hub.start()
    wait_port(tls_port)
    for s in spokes:
        s.start()
    a, b = spokes
    try:
        deadline = time.monotonic() + 30
        while not all("Received CONNACK on connection local." in s.logtext() for s in (a, b)):
            assert time.monotonic() < deadline, "bridges did not connect"
            time.sleep(0.2)
        time.sleep(1.0)
        rows = []
        for qos in (0, 1):
            one = measure(a.port, a.port, qos, count, f"bench/one/{qos}")
            two = measure(a.port, b.port, qos, count, f"bench/cluster/{qos}")
            rows.append((qos, "burst", "one broker (spoke A)", one))
            rows.append((qos, "burst", "cluster (A -> hub -> B, TLS)", two))
        for qos in (0, 1):
            one = measure(a.port, a.port, qos, 500, f"bench/one/p{qos}", pace=0.005)
            two = measure(a.port, b.port, qos, 500, f"bench/cluster/p{qos}", pace=0.005)
            rows.append((qos, "200/s", "one broker (spoke A)", one))
            rows.append((qos, "200/s", "cluster (A -> hub -> B, TLS)", two))
        n, first, last = backlog(hub, a.port, b.port)
    finally:
        for br in (a, b, hub):
            br.stop()
    print(f"\n{count} messages of ~30 bytes per run; loopback; mosquitto "
          f"{subprocess.run(['mosquitto', '-h'], capture_output=True, text=True).stdout.split()[2]}")
    print("| QoS | load | path | received | msg/s | p50 latency (ms) | p99 latency (ms) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for qos, load_, label, r in rows:
        sent = count if load_ == "burst" else 500
        print(f"| {qos} | {load_} | {label} | {r['received']}/{sent} | {r['rate']:,.0f} "
              f"| {r['p50']:.2f} | {r['p99']:.2f} |")
    print(f"\nbacklog: {n}/1000 QoS 1 delivered to spoke B; first after {first:.2f} s, "
          f"all after {last:.2f} s from the hub's start (restart_timeout 1 s)")


if __name__ == "__main__":
    main()
