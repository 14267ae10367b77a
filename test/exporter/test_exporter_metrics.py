"""What /metrics serves: names, types and values from a real broker's $SYS."""
import ctypes
import os
import re
import signal
import subprocess
import time

from test.exporter.helpers import ANON, SYS_FAST, broker_series, mosquitto_pub
from test.support.broker import Broker, free_port

GO_COUNTERS = [
    "broker_bytes_received", "broker_bytes_sent",
    "broker_messages_received", "broker_messages_sent",
    "broker_publish_bytes_received", "broker_publish_bytes_sent",
    "broker_publish_messages_received", "broker_publish_messages_sent",
    "broker_publish_messages_dropped",
]


def mosquitto_version():
    out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True).stdout
    return re.search(r"mosquitto version (\S+)", out).group(1)


def test_series_names_and_types(exporter_factory):
    with Broker(extra=ANON + SYS_FAST) as broker:
        exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{broker.port}")
        _, before = exporter.wait_connected()
        for i in range(5):
            mosquitto_pub(broker.port, "test/exporter", f"message {i}")
        received = before.get("broker_publish_messages_received", 0) + 5
        types, values = exporter.wait_for(
            lambda t, v: v.get("broker_publish_messages_received", 0) >= received,
            "the five PUBLISHes counted")

    # The Go names, untyped (PromQL does not care, promtool does), each with
    # a real counter twin of the same value.
    for name in GO_COUNTERS:
        assert types[name] == "untyped", name
        assert types[f"{name}_total"] == "counter", name
        assert values[f"{name}_total"] == values[name], name
    assert values["broker_publish_bytes_received"] >= 5 * len("message 0")

    # Gauges in truth, though the Go exporter typed some of them counter.
    for name in ("broker_uptime", "broker_clients_maximum", "broker_clients_connected",
                 "broker_heap_current", "broker_load_messages_received_1min"):
        assert types[name] == "gauge", name
    # Go names with a suffix reserved for other types stay untyped.
    for name in ("broker_clients_total", "broker_subscriptions_count",
                 "broker_retained_messages_count"):
        assert types[name] == "untyped", name
    assert values["broker_clients_connected"] >= 1  # the exporter itself
    assert values["broker_subscriptions_count"] >= 1  # its $SYS/#

    assert values[f'broker_info{{version="{mosquitto_version()}"}}'] == 1
    assert types["mosquitto_exporter_connected"] == "gauge"
    assert values["mosquitto_exporter_connected"] == 1
    assert abs(values["mosquitto_exporter_last_update_timestamp_seconds"] - time.time()) < 30
    # Ignored like the Go exporter did, or folded into broker_info.
    for name in ("broker_timestamp", "broker_version", "broker_clients_active",
                 "broker_clients_inactive"):
        assert name not in values
    # Nothing went through with a name Prometheus would reject.
    assert all(re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", s.split("{")[0]) for s in values)


def test_http_status_and_content_type(exporter_factory):
    exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{free_port()}")  # nobody there
    status, headers, body = exporter.request("HEAD")
    assert (status, body) == (200, "")
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    # Even a Prometheus that prefers OpenMetrics gets the Go-compatible format.
    status, headers, body = exporter.request(headers={
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"})
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in body
    assert exporter.request(path="/")[0] == 200
    assert exporter.request(path="/nothing")[0] == 404


def test_promtool_check_metrics_is_clean(exporter_factory, tmp_path):
    """Full output, including a bridge's state series and process metrics."""
    with Broker(extra=ANON) as remote, Broker(extra=ANON + SYS_FAST + (
            "connection br-test\n"
            f"address 127.0.0.1:{remote.port}\n"
            "remote_clientid bridge-test.one\n"
            "topic bridged/# out 0\n")) as broker:
        exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{broker.port}")
        exporter.wait_for(lambda t, v: v.get('broker_connection_state{connection="bridge-test.one"}') == 1,
                          "the bridge's state series")
        body = exporter.scrape()
    check = subprocess.run(["promtool", "check", "metrics"], input=body,
                           capture_output=True, text=True)
    assert (check.returncode, check.stdout + check.stderr) == (0, ""), body


def test_sigterm_stops_cleanly(exporter_factory):
    with Broker(extra=ANON + SYS_FAST) as broker:
        exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{broker.port}")
        exporter.wait_connected()
        started = time.monotonic()
        assert exporter.stop() == 0
        assert time.monotonic() - started < 5
        assert "shutting down" in exporter.log()
        assert "Traceback" not in exporter.log()


def _tgkill(pid, tid, signum):
    """SIGTERM to one thread of another process, as the kernel may choose
    for a process-directed signal (glibc 2.30+ has tgkill)."""
    if ctypes.CDLL(None, use_errno=True).tgkill(pid, tid, signum) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


def test_sigterm_delivered_to_any_thread_stops_it(exporter_factory):
    """The kernel delivers a process's SIGTERM to any thread that does not
    block it, not only the main one; Python runs the handler in the main
    thread, which must wake to do so. Seen once in CI: retrying a refused
    broker, the exporter ignored SIGTERM for 10 s. Each of its other threads
    (HTTP, MQTT) in turn gets the signal, with no broker to connect to."""
    for which in range(2):
        exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{free_port()}")
        exporter.metrics()   # serving: both threads run
        pid = exporter.proc.pid
        others = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
        assert len(others) >= 2, others
        _tgkill(pid, others[which], signal.SIGTERM)
        try:
            exporter.proc.wait(5)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"thread {which + 1} of {others}: still running 5 s after SIGTERM\n"
                                 f"{exporter.log()}") from None
        assert exporter.proc.returncode == 0, exporter.log()
        assert "shutting down" in exporter.log()
        assert "Traceback" not in exporter.log()


def test_no_broker_series_before_the_first_connection(exporter_factory):
    exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{free_port()}")
    types, values = exporter.metrics()
    assert values["mosquitto_exporter_connected"] == 0
    assert broker_series(values) == []
