"""A steady QoS 1 stream that outlives broker crashes, and its bookkeeping.

Used by the durability tests and bench/durability.py. Each message carries
its sequence number; the publisher records when the broker acknowledged
(PUBACK) each one and which were in flight when a connection dropped (QoS 1
lets exactly those arrive more than once). `check_stream` then compares
what an offline subscriber finally received with those records.
"""
import collections
import os
import threading
import time

import paho.mqtt.client as mqtt


class StreamPublisher:
    """Publish `<seq>` on `topic` at `rate` messages/s until stop().

    paho's own loop reconnects after the broker dies and resends what was
    in flight; messages published while it is down wait in paho's queue.
    """

    def __init__(self, port, topic, username=None, password=None, rate=50.0,
                 host="127.0.0.1", cafile=None, max_inflight=20):
        self.topic, self.rate = topic, rate
        self.sent = {}             # seq -> monotonic time of publish()
        self.acked = {}            # seq -> monotonic time of its PUBACK
        self.connects = []         # monotonic times of each CONNACK
        self.acked_on = {}         # seq -> index in connects of the connection that acked it
        self.inflight_at_drop = set()
        self.drops = 0
        self._mid = {}             # paho mid -> seq
        self._early = {}           # paho mid -> ack time, seq not yet known
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, clean_session=True)
        if username is not None:
            self.client.username_pw_set(username, password)
        if cafile:
            self.client.tls_set(ca_certs=cafile)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect = self._on_connect
        self.host, self.port = host, port
        self._thread = threading.Thread(target=self._run, daemon=True)

    # paho calls on_publish holding its own message lock: never call into
    # paho while holding self._lock, or the two threads deadlock.
    def _on_publish(self, client, userdata, mid, reason, props):
        now = time.monotonic()
        with self._lock:
            seq = self._mid.pop(mid, None)
            if seq is None:
                self._early[mid] = (now, len(self.connects) - 1)  # PUBACK before publish() returned
            elif seq not in self.acked:
                self.acked[seq], self.acked_on[seq] = now, len(self.connects) - 1

    def _on_connect(self, client, userdata, flags, reason, props):
        with self._lock:
            self.connects.append(time.monotonic())

    def _on_disconnect(self, client, userdata, flags, reason, props):
        with self._lock:
            self.drops += 1
            self.inflight_at_drop.update(s for s in self.sent if s not in self.acked)

    def start(self):
        self.client.connect(self.host, self.port, 10)
        self.client.loop_start()
        self._thread.start()
        return self

    def _run(self):
        seq, period, next_at = 0, 1.0 / self.rate, time.monotonic()
        while not self._stop.is_set():
            seq += 1
            with self._lock:
                self.sent[seq] = time.monotonic()
            info = self.client.publish(self.topic, str(seq).encode(), qos=1)
            with self._lock:
                if info.mid in self._early:
                    self.acked[seq], self.acked_on[seq] = self._early.pop(info.mid)
                else:
                    self._mid[info.mid] = seq
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self, settle=10.0):
        """Stop publishing, give the last messages `settle` s to be acked."""
        self._stop.set()
        self._thread.join(10)
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            with self._lock:
                if all(s in self.acked for s in self.sent):
                    break
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()


def check_stream(pub, received, crashes, window):
    """Compare a stream with what arrived. Returns a dict of findings.

    received: sequence numbers in arrival order; crashes: (killed_at,
    start_requested_at) monotonic times of each kill -9 and the start that
    followed; window: seconds of acknowledged messages a crash may lose.

    A lost message was accepted by the broker run that acked it: the run
    that was up when the acking connection got its CONNACK (the PUBACK
    itself may be read only after that run was killed). The broker got the
    message after it was sent and after that run was started, so its kill
    time minus the later of the two bounds the message's age from above.
    """
    counts = collections.Counter(received)
    unexpected = sorted(s for s in counts if s not in pub.sent)
    duplicates = sorted(s for s, n in counts.items() if n > 1 and s not in pub.inflight_at_drop)
    lost = sorted(s for s in pub.acked if counts[s] == 0)
    ages = []
    for s in lost:
        connected = pub.connects[pub.acked_on[s]]
        run = sum(1 for _, started in crashes if started <= connected)
        if run == len(crashes):
            ages.append(float("inf"))  # lost without a crash after it
            continue
        run_started = crashes[run - 1][1] if run else float("-inf")
        ages.append(crashes[run][0] - max(pub.sent[s], run_started))
    return {
        "sent": len(pub.sent), "acked": len(pub.acked), "received": len(received),
        "unique": len(counts), "unexpected": unexpected, "duplicates": duplicates,
        "allowed_duplicates": sorted(s for s, n in counts.items() if n > 1 and s in pub.inflight_at_drop),
        "lost": lost, "max_loss_age_s": round(max(ages), 3) if ages else 0.0,
        "outside_window": [(s, round(a, 3)) for s, a in zip(lost, ages, strict=True) if a > window],
    }


def kill_during_save(pid, db_path, timeout=10.0):
    """SIGKILL `pid` the moment the broker is writing `<db>.new`.

    Returns True when the temp file was still there after the kill (the
    kill landed mid-write), False when the write finished first, None when
    no save started within `timeout` (then the process was killed anyway).
    """
    new = f"{db_path}.new"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(new):
            os.kill(pid, 9)
            wait_dead(pid)  # it might still rename in the instant before
            return os.path.exists(new)
        time.sleep(0.0005)
    os.kill(pid, 9)
    wait_dead(pid)
    return None


def wait_dead(pid, timeout=10.0):
    """True once `pid` is gone or a zombie (it runs no more code)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.01)
    return False
