"""Bounded work per request on /metrics (issue #20): a connection that
sends nothing, or trickles bytes, is cut after the timeout; more idle
connections than handler slots do not stop a scrape from being answered
within about one timeout; the exporter's threads stay bounded however many
connections arrive. Loopback only, on both library sets (distro / PyPI).

No broker is needed: /metrics answers (connected 0) while it is down.
"""
import contextlib
import http.client
import os
import socket
import threading
import time

from test.exporter.helpers import parse_metrics
from test.support.broker import free_port


def start(exporter_factory, *args):
    return exporter_factory("--endpoint", f"tcp://127.0.0.1:{free_port()}", *args)


def idle(port, count):
    """count open connections that send nothing."""
    return [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]


def seconds_until_closed(sock, limit=30.0):
    """How long until the exporter closes sock (EOF or reset)."""
    begin = time.monotonic()
    sock.settimeout(limit)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(1024):
            pass
    return time.monotonic() - begin


def scrape(port, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


def test_idle_connection_is_cut_after_the_default_timeout(exporter_factory):
    """The default (10 s) as installed: no flag given."""
    exp = start(exporter_factory)
    [sock] = idle(exp.port, 1)
    with sock:
        waited = seconds_until_closed(sock)
    assert 9.0 <= waited <= 13.0, waited
    assert scrape(exp.port)[0] == 200


def test_trickling_client_is_cut_after_the_timeout_in_total(exporter_factory):
    """Slowloris: a byte every 0.3 s never trips a per-read timeout; the
    connection's whole time is bounded."""
    exp = start(exporter_factory, "--http-timeout", "2")
    sock = socket.create_connection(("127.0.0.1", exp.port), timeout=10)
    begin = time.monotonic()
    closed = None
    with sock:
        for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = time.monotonic() - begin
                break
            time.sleep(0.3)
            if time.monotonic() - begin > 8:
                break
        if closed is None:
            closed = time.monotonic() - begin + seconds_until_closed(sock, limit=5)
    assert closed <= 4.5, closed


def test_scrape_is_answered_behind_more_idle_connections_than_slots(exporter_factory):
    exp = start(exporter_factory, "--http-timeout", "3", "--http-max-connections", "4")
    socks = idle(exp.port, 4 + 3)
    try:
        time.sleep(0.3)  # the first four hold every slot now
        begin = time.monotonic()
        status, body = scrape(exp.port)
        waited = time.monotonic() - begin
    finally:
        for sock in socks:
            sock.close()
    assert status == 200 and "mosquitto_exporter_connected 0.0" in body
    assert waited <= 3 + 2.0, waited  # at most one timeout, plus slack for 2 shared cores


def test_threads_stay_bounded_under_many_connections(exporter_factory):
    exp = start(exporter_factory, "--http-timeout", "3", "--http-max-connections", "4")
    before = threads(exp.proc.pid)
    socks = idle(exp.port, 40)
    try:
        time.sleep(0.5)
        during = threads(exp.proc.pid)
    finally:
        for sock in socks:
            sock.close()
    # four handler threads, each with its watchdog timer
    assert during <= before + 4 * 2, (before, during)
    assert scrape(exp.port)[0] == 200


def test_normal_scrapes_still_work_in_parallel(exporter_factory):
    exp = start(exporter_factory, "--http-max-connections", "4")
    results = []

    def worker():
        for _ in range(5):
            results.append(scrape(exp.port, timeout=15))

    workers = [threading.Thread(target=worker) for _ in range(8)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    assert len(results) == 40 and all(status == 200 for status, _ in results)
    types, values = parse_metrics(results[-1][1])
    assert values["mosquitto_exporter_connected"] == 0 and types["mosquitto_exporter_connected"] == "gauge"
    status, headers, _ = exp.request("HEAD", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")


def test_bad_limits_are_refused(python):
    import subprocess

    from test.exporter.helpers import EXPORTER
    for flag in (["--http-timeout", "0"], ["--http-max-connections", "0"]):
        out = subprocess.run([python, str(EXPORTER), *flag], capture_output=True, text=True, timeout=30)
        assert out.returncode == 2 and "must be positive" in out.stderr, out
