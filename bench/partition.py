"""How long a mosquitto hub takes to mark a cut bridge down, in one run.

Two real mosquitto brokers on loopback: a hub and a spoke whose `cluster`
bridge section comes from the formula's renderer (keepalive K, notifications,
remote_clientid spoke.cluster). A watcher subscribed on the hub stamps each
`$SYS/broker/connection/spoke.cluster/state` it gets. Each trial waits a
random time (K..3K s, seeded) after the link is up, then cuts it by freezing
the spoke (SIGSTOP: no packet, no FIN; the hub sees what a partition looks
like), reads from the hub's socket (`ss` lastrcv) when the spoke's last
packet arrived, and waits for state 0 on the hub. Then SIGCONT; the bridge
reconnects.

Baseline, same trials: at each cut a plain MQTT client connects to the hub
with the same keepalive and then stays silent (its last packet is its
CONNECT): the time until the hub closes it.

Beside them: the issue's bound (1.5 K from the cut) and what mosquitto 2.0
guarantees from the last packet, floor(1.5 K) + 6 s (src/keepalive.c: a
strict `>` on whole seconds, checked every 6 s).

Run as root: `.venv/bin/python bench/partition.py [trials] [keepalive]`
(default 8 trials, keepalive 5; ~4 minutes).
"""
import os
import pathlib
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

import paho.mqtt.client as mqtt

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from test.support.broker import Broker  # noqa: E402
from test.support.modules import load  # noqa: E402

bridge = load("_modules", "mosquitto_bridge")
STATE = "$SYS/broker/connection/spoke.cluster/state"


def silent_client(port, keepalive, out):
    """CONNECT (clean session) with `keepalive`, then nothing: out gets the
    seconds from the CONNACK until the hub closes the socket."""
    cid = f"silent-{random.randrange(1 << 30)}".encode()
    body = struct.pack("!H", 4) + b"MQTT" + bytes([4, 0x02]) + struct.pack("!H", keepalive)
    body += struct.pack("!H", len(cid)) + cid
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(bytes([0x10, len(body)]) + body)
        assert sock.recv(4)[:1] == b"\x20"
        t0 = time.time()
        sock.settimeout(keepalive * 3 + 30)
        while sock.recv(64):
            pass
        out.append(time.time() - t0)


def hub_lastrcv(hub_port, spoke_pid):
    """Seconds since the hub last got data on the spoke's bridge socket."""
    mine = subprocess.run(["ss", "-tnpH", "state", "established", "dport", "=", f":{hub_port}"],
                          capture_output=True, text=True, check=True).stdout
    local = [line.split()[2].rsplit(":", 1)[1] for line in mine.splitlines() if f"pid={spoke_pid}," in line]
    assert len(local) == 1, mine
    hub_side = subprocess.run(["ss", "-tinH", "state", "established", "sport", "=", f":{hub_port}",
                               "dport", "=", f":{local[0]}"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"lastrcv:([0-9]+)", hub_side).group(1)) / 1000


def wait_state(states, value, since, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        hit = next((t for t, v in list(states) if v == value and t >= since), None)
        if hit is not None:
            return hit
        time.sleep(0.02)
    raise TimeoutError(f"state {value} not seen in {timeout} s")


def main(trials=8, keepalive=5):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))  # still stop the brokers
    random.seed(9)
    bound = keepalive * 3 // 2 + 6
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-partition-"))
    for name in ("hub", "spoke"):
        (work / name).mkdir()
    hub = Broker(workdir=work / "hub", extra="allow_anonymous true\n")
    hub.start()
    section = bridge.render_section("cluster", {
        "address": [f"127.0.0.1:{hub.port}"], "topics": ["bench/# both 1"], "tls": False,
        "cleansession": False, "notifications": True, "keepalive_interval": keepalive,
        "options": {"remote_clientid": "spoke.cluster", "try_private": True, "restart_timeout": 1},
    })
    spoke = Broker(workdir=work / "spoke", extra="allow_anonymous true\n" + section)
    states = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="partition-watch")
    watcher.on_connect = lambda c, *a: c.subscribe(STATE, qos=1)
    watcher.on_message = lambda _c, _u, m: states.append((time.time(), m.payload.decode()))
    rows, baseline = [], []
    try:
        watcher.connect("127.0.0.1", hub.port, keepalive=60)
        watcher.loop_start()
        spoke.start()
        resumed = 0.0
        for trial in range(trials):
            wait_state(states, "1", resumed, 60)
            # Past the reconnect's own packets (CONNECT, SUBSCRIBE, state 1):
            # the last packet before the cut is then a PINGREQ at a random
            # phase to the hub's 6 s check.
            time.sleep(random.uniform(keepalive, 3 * keepalive))
            base = threading.Thread(target=silent_client, args=(hub.port, keepalive, baseline), daemon=True)
            os.kill(spoke.proc.pid, signal.SIGSTOP)
            t_cut = time.time()
            base.start()
            last_in = time.time() - hub_lastrcv(hub.port, spoke.proc.pid)
            t_zero = wait_state(states, "0", t_cut, bound + 10)
            base.join(bound + 10)
            os.kill(spoke.proc.pid, signal.SIGCONT)
            resumed = time.time()
            rows.append((t_cut - last_in, t_zero - t_cut, t_zero - last_in))
            print(f"trial {trial + 1}: cut {rows[-1][0]:.1f} s after the spoke's last packet; hub state 0 "
                  f"{rows[-1][1]:.1f} s after the cut, {rows[-1][2]:.1f} s after the last packet; "
                  f"silent client closed after {baseline[-1]:.1f} s", flush=True)
    finally:
        watcher.loop_stop()
        if spoke.proc:
            os.kill(spoke.proc.pid, signal.SIGCONT)
        spoke.stop()
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
    out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout.splitlines()[0]
    print(f"\n{out}; keepalive {keepalive} s; {trials} trials")
    print("| measure | min (s) | median (s) | max (s) | bound (s) | over the bound |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, values, limit in (
            ("bridge: state 0 after the cut", [r[1] for r in rows], 1.5 * keepalive),
            ("bridge: state 0 after its last packet", [r[2] for r in rows], bound),
            ("baseline: silent client closed after its CONNECT", baseline, bound)):
        over = sum(v > limit + 0.5 for v in values)
        print(f"| {name} | {min(values):.1f} | {statistics.median(values):.1f} | {max(values):.1f} | "
              f"{limit:g} | {over} of {len(values)} |")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
