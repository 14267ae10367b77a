"""Benchmark: scrape latency and memory of mosquitto_exporter vs. mqtt-exporter.

One throw-away broker on a free loopback port (max_connections -1,
sys_interval 1) with 1,000 idle MQTT clients; both exporters subscribe to
$SYS/# on it in the same run:

* ours, on the project venv (PyPI paho-mqtt 2.x) and, where installed, on
  Debian's /usr/bin/python3 (paho 1.6, prometheus-client 0.16);
* PyPI's `mqtt-exporter` (kpetremann), installed into .build/bench-venv and
  configured by its environment variables for MQTT_TOPIC=$SYS/#.

Scrapes are interleaved round-robin (a new HTTP connection each, like curl)
so both see the same broker load. Reports p50/p99 latency, body size, series
count, resident memory (VmRSS / VmHWM) and CPU time used during the scrapes.

    .venv/bin/python bench/exporter.py [--clients 1000] [--scrapes 500]

Loopback only; every loop is bounded in count and time.
"""
import argparse
import http.client
import os
import pathlib
import resource
import socket
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from test.support.broker import Broker, free_port, stop_process, wait_port  # noqa: E402
from test.support.mqtt_load import connect_packet  # noqa: E402

EXPORTER = ROOT / "mosquitto" / "files" / "default" / "mosquitto_exporter.py"
BENCH_VENV = ROOT / ".build" / "bench-venv"
MQTT_EXPORTER = "mqtt-exporter==1.12.1"
DEADLINE_S = 300  # the whole run, whatever the arguments


def ensure_mqtt_exporter():
    binary = BENCH_VENV / "bin" / "mqtt-exporter"
    if not binary.exists():
        print(f"installing {MQTT_EXPORTER} into {BENCH_VENV}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(BENCH_VENV)], check=True)
        subprocess.run([str(BENCH_VENV / "bin" / "pip"), "install", "-q", MQTT_EXPORTER], check=True)
    return binary


def connect_idle_clients(port, count, deadline):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 256:  # the broker inherits this limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1024), hard))
    sockets = []
    for i in range(count):
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {i} clients connected in time")
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        # keepalive 0: the broker never expects a PINGREQ, so the
        # client can sit idle for the whole run.
        sock.sendall(connect_packet(f"bench-idle-{i}", keepalive=0))
        connack = sock.recv(4)
        if connack != b"\x20\x02\x00\x00":
            raise RuntimeError(f"client {i}: unexpected CONNACK {connack!r}")
        sockets.append(sock)
    return sockets


class Target:
    def __init__(self, label, argv, env=None):
        self.label = label
        self.port = free_port()
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.env = dict(os.environ, **{k: v.replace("{port}", str(self.port))
                                       for k, v in (env or {}).items()})
        self.proc = None
        self.latencies = []
        self.body = b""

    def start(self, logdir):
        log = open(logdir / f"{self.label.split()[0]}-{self.port}.log", "wb")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, timeout=30)

    def scrape(self):
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read()
        finally:
            conn.close()
        elapsed = time.perf_counter() - started
        if resp.status != 200:
            raise RuntimeError(f"{self.label}: HTTP {resp.status}")
        self.body = body
        return elapsed

    def proc_status(self, field):
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])  # kB
        return 0

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        stop_process(self.proc)


def wait_until(predicate, what, deadline):
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.25)


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=500, help="measured scrapes per exporter")
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    deadline = time.monotonic() + DEADLINE_S

    mqtt_exporter = ensure_mqtt_exporter()
    with Broker(extra="allow_anonymous true\nmax_connections -1\nsys_interval 1\n") as broker:
        endpoint = f"tcp://127.0.0.1:{broker.port}"
        ours = ["--endpoint", endpoint, "--bind-address", "127.0.0.1:{port}"]
        targets = [Target("mosquitto_exporter (PyPI paho 2.x)",
                          [str(ROOT / ".venv" / "bin" / "python"), str(EXPORTER), *ours])]
        if subprocess.run(["/usr/bin/python3", "-c", "import paho.mqtt, prometheus_client"],
                          capture_output=True).returncode == 0:
            targets.append(Target("mosquitto_exporter (Debian paho 1.6)",
                                  ["/usr/bin/python3", str(EXPORTER), *ours]))
        targets.append(Target("mqtt-exporter 1.12.1 (PyPI)", [str(mqtt_exporter)], env={
            "MQTT_ADDRESS": "127.0.0.1", "MQTT_PORT": str(broker.port),
            "MQTT_TOPIC": "$SYS/#", "KEEP_FULL_TOPIC": "True",
            "PROMETHEUS_ADDRESS": "127.0.0.1", "PROMETHEUS_PORT": "{port}",
            "LOG_LEVEL": "WARNING"}))

        started = time.monotonic()
        clients = connect_idle_clients(broker.port, args.clients, deadline)
        print(f"{len(clients)} idle clients connected in {time.monotonic() - started:.1f} s",
              flush=True)
        try:
            for target in targets:
                target.start(broker.dir)
            # Both have the broker's view of the 1,000 clients before we measure.
            # The exporters are clients too: the broker counts 1,000 and more.
            for target in targets:
                def ready(target=target):
                    target.scrape()
                    return any(float(line.split()[-1]) >= args.clients
                               for line in target.body.splitlines()
                               if not line.startswith(b"#")
                               and (b"clients_connected" in line or b"mqtt_connected{" in line))
                wait_until(ready, f"{target.label} to see {args.clients} clients", deadline)

            for _ in range(args.warmup):
                for target in targets:
                    target.scrape()
            cpu_before = {t.label: t.cpu_seconds() for t in targets}
            for _ in range(args.scrapes):
                if time.monotonic() > deadline:
                    raise TimeoutError("scrapes took too long")
                for target in targets:
                    target.latencies.append(target.scrape())
            rows = []
            for t in targets:
                series = sum(1 for line in t.body.splitlines() if line and not line.startswith(b"#"))
                rows.append((t.label, statistics.median(t.latencies) * 1000,
                             percentile(t.latencies, 99) * 1000, len(t.body), series,
                             t.proc_status("VmRSS") / 1024, t.proc_status("VmHWM") / 1024,
                             t.cpu_seconds() - cpu_before[t.label]))
        finally:
            for target in targets:
                target.stop()
            for sock in clients:
                sock.close()

    print(f"\n{args.clients} idle clients, {args.scrapes} scrapes each (interleaved), "
          f"sys_interval 1, Python {sys.version.split()[0]} client, {os.cpu_count()} CPUs\n")
    header = ("exporter", "p50 ms", "p99 ms", "body B", "series", "RSS MiB", "peak MiB", "CPU s")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for label, p50, p99, size, series, rss, hwm, cpu in rows:
        print(f"| {label} | {p50:.2f} | {p99:.2f} | {size} | {series} | {rss:.1f} | {hwm:.1f} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
