"""Benchmark: what a short autosave costs, and the loss window it buys.

Throw-away brokers on loopback (test/support/broker.py), persistence on,
one per setting, all in the same run:

* autosave_interval 1       the formula's default (a save every 2 s)
* autosave_on_changes 1000  a save after every 1,000 changes
* autosave_interval 1800    mosquitto's default, the formula's old one

For each, with 1,000 and 100,000 QoS 1 messages (100 B) already queued for
an offline persistent subscriber (the same store file copied in, restored
at start), a QoS 1 stream is published as fast as one paho client can for a
fixed time to a second offline subscriber; reported: acknowledged messages
per second, broker CPU seconds per 10,000 messages, saves during the run
and the store's size. Then, with 1,000 queued, a steady 200 msg/s stream
and `kill -9` of the broker at a random moment, 3 times: the oldest
acknowledged message lost (its age at the kill) and how many were lost.

    .venv/bin/python bench/durability.py [--seconds 10] [--kills 3]

Loopback only; every loop is bounded in count and time.
"""
import argparse
import os
import pathlib
import random
import shutil
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import paho.mqtt.client as mqtt  # noqa: E402

from test.support.broker import Broker  # noqa: E402
from test.support.durability import StreamPublisher, check_stream, wait_dead  # noqa: E402
from test.support.mqtt import Client  # noqa: E402

SETTINGS = [
    ("autosave_interval 1 (default)", "autosave_interval 1\n"),
    ("autosave_on_changes 1000", "autosave_on_changes true\nautosave_interval 1000\n"),
    ("autosave_interval 1800 (old)", "autosave_interval 1800\n"),
]
TICK = os.sysconf("SC_CLK_TCK")
PAYLOAD = b"x" * 100


class QuietBroker(Broker):
    """A persistent broker that logs only what we count (saves, errors)."""

    def write_conf(self):
        self.conf.write_text(
            f"user root\nlistener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"log_dest file {self.dir / 'saves.log'}\nlog_type error\nlog_type warning\n"
            f"log_type information\nlog_timestamp_format %s\n"
            f"persistence true\npersistence_location {self.dir}/\n"
            f"max_queued_messages 0\n{self.extra}\n")

    def saves(self):
        log = self.dir / "saves.log"  # a file log is flushed line by line
        return log.read_text(errors="replace").count("Saving in-memory database") if log.exists() else 0

    def cpu_s(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK


def offline_subscriber(port, client_id, topic):
    c = Client(port, client_id=client_id, clean=False)
    assert c.connect()
    c.subscribe(topic, qos=1)
    c.close()


def make_store(queued, workdir):
    """A mosquitto.db holding `queued` messages for offline client 'backlog'."""
    b = QuietBroker("autosave_interval 0\n", workdir=workdir).start()
    try:
        offline_subscriber(b.port, "backlog", "backlog/#")
        offline_subscriber(b.port, "stream", "stream/#")
        acked, _ = flood(b.port, topic="backlog/x", count=queued)
        assert acked == queued, (acked, queued)
    finally:
        b.stop()
    return pathlib.Path(workdir) / "mosquitto.db"  # written on the clean stop


def flood(port, seconds=None, topic="stream/x", count=None):
    """QoS 1 publishes as fast as one client goes, 200 in flight, for
    `seconds` or until `count` are acked; returns (acked, elapsed)."""
    acked, done = [0], threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(200)
    window = threading.Semaphore(400)

    def on_publish(*_):
        acked[0] += 1
        window.release()
        if count is not None and acked[0] >= count:
            done.set()
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    t0, sent = time.monotonic(), 0
    limit = seconds if seconds is not None else 300
    while time.monotonic() - t0 < limit and (count is None or sent < count):
        if window.acquire(timeout=1):
            client.publish(topic, PAYLOAD, qos=1)
            sent += 1
    if count is not None:
        done.wait(60)
    elapsed = time.monotonic() - t0
    client.disconnect()
    client.loop_stop()
    return acked[0], elapsed


def throughput(store, extra, seconds):
    with tempfile.TemporaryDirectory(prefix="bench-dur-") as d:
        shutil.copy(store, pathlib.Path(d) / "mosquitto.db")
        b = QuietBroker(extra, workdir=d).start()
        try:
            time.sleep(1.0)  # the restore is done once the port answers; let it settle
            saves0, cpu0 = b.saves(), b.cpu_s()
            acked, elapsed = flood(b.port, seconds)
            cpu, saves = b.cpu_s() - cpu0, b.saves() - saves0
        finally:
            b.stop()
        size = (pathlib.Path(d) / "mosquitto.db").stat().st_size
    return {"rate": acked / elapsed, "cpu_per_10k": cpu / max(acked, 1) * 10000,
            "saves": saves, "db_mb": size / 2**20}


def loss_window(extra, kills, rng):
    """kill -9 during a steady 200 msg/s stream; oldest loss and count."""
    with tempfile.TemporaryDirectory(prefix="bench-loss-") as d:
        b = QuietBroker(extra, workdir=d).start()
        try:
            offline_subscriber(b.port, "loss", "loss/#")
            pub = StreamPublisher(b.port, "loss/x", rate=200).start()
            crashes = []
            for _ in range(kills):
                time.sleep(rng.uniform(3.0, 6.0))
                pid = b.proc.pid
                b.proc.kill()
                killed = time.monotonic()
                b.proc.wait()
                wait_dead(pid)
                crashes.append((killed, time.monotonic()))
                b.start()
            time.sleep(1.0)
            pub.stop()
            sub = Client(b.port, client_id="loss", clean=False)
            assert sub.connect()
            got = []
            while True:
                try:
                    got.append(int(sub.get(timeout=2)[1]))
                except Exception:
                    break
            sub.close()
            r = check_stream(pub, got, crashes, window=float("inf"))
        finally:
            b.stop()
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--kills", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(14)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-store-") as d:
        for queued in (1000, 100000):
            wd = pathlib.Path(d) / str(queued)
            wd.mkdir()
            t0 = time.monotonic()
            store = make_store(queued, wd)
            print(f"store with {queued} queued: {store.stat().st_size / 2**20:.1f} MiB "
                  f"({time.monotonic() - t0:.1f} s to build)", flush=True)
            for name, extra in SETTINGS:
                r = throughput(store, extra, args.seconds)
                rows.append((queued, name, r))
                print(f"  {name}: {r['rate']:.0f} msg/s, {r['cpu_per_10k']:.2f} CPU s/10k, "
                      f"{r['saves']} saves, store {r['db_mb']:.1f} MiB", flush=True)
    base = {q: r["rate"] for q, n, r in rows if n.startswith("autosave_interval 1800")}
    print("\n| queued | setting | QoS 1 msg/s | vs 1800 | broker CPU s / 10k msgs | saves in run | store MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for queued, name, r in rows:
        print(f"| {queued:,} | {name} | {r['rate']:.0f} | {r['rate'] / base[queued]:.2f} | "
              f"{r['cpu_per_10k']:.2f} | {r['saves']} | {r['db_mb']:.1f} |")
    print(f"\nLoss at kill -9 (1,000 queued, 200 msg/s stream, {args.kills} kills each):")
    print("| setting | acked | lost | oldest lost message's age at the kill (s) |")
    print("| --- | --- | --- | --- |")
    for name, extra in SETTINGS:
        r = loss_window(extra, args.kills, rng)
        age = r["max_loss_age_s"]
        age = f"{age:.2f}" if age != float("inf") else "all (the session itself was never saved)"
        print(f"| {name} | {r['acked']} | {len(r['lost'])} | {age} |", flush=True)


if __name__ == "__main__":
    main()
