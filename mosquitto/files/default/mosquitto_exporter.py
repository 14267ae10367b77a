#!/usr/bin/python3
"""Prometheus exporter for Mosquitto's $SYS topics.

A drop-in replacement for sapcc/mosquitto-exporter (Go): same flags, same
environment variables, same series names, so existing scrape configs and
PromQL such as ``rate(broker_messages_received{job="node"}[1h])`` keep working.
Runs on Debian 12's python3-paho-mqtt 1.6 / python3-prometheus-client 0.16 as
well as current PyPI releases (paho-mqtt 2.x, prometheus-client 0.2x).

Series names
    One series per $SYS topic: strip ``$SYS/``, turn every character that is
    not valid in a metric name (``/``, space, ``-``, ``.`` ...) into ``_``; the
    value is the first number in the payload (``"1234 seconds"`` -> 1234).
    ``$SYS/broker/version`` becomes ``broker_info{version="2.0.11"} 1``;
    timestamp and the deprecated clients/active, clients/inactive are ignored,
    as the Go exporter did. The Go exporter replaced only ``/``, space, ``-``
    and ``.``; any other invalid character made client_golang refuse the name
    and MustRegister panic (the exporter died). Here those become ``_`` too,
    and ``:`` (valid) is kept as Go kept it.

Bridge states, twice
    ``$SYS/broker/connection/<id>/state`` is served as one labelled family,
    ``broker_connection_state{connection="<id>"}`` (the one to use: bridges
    come and go, names must not), and, for dashboards and alerts written for
    the Go exporter, also under its name per connection,
    ``broker_connection_<id>_state`` (``<id>`` sanitised as above). Both come
    from the same values, so they appear and vanish together: on a deleted
    retained state and while the session is down (where Go kept serving the
    last value, or 0 for an empty payload). Ids that sanitise to one name
    (``a.b`` and ``a-b``) share it with the lowest state, so a down bridge is
    never hidden; Go panicked on such a duplicate.

Types, and why the Go counters are served ``untyped``
    The Go exporter typed broker_bytes_*, broker_messages_*,
    broker_publish_bytes_* and broker_publish_messages_* as ``counter`` without
    the ``_total`` suffix. The text format wants counters to end in
    ``_total`` (``promtool check metrics`` flags each one) and
    prometheus_client cannot even write such a counter. So:

    * the Go name is kept, typed ``untyped``: PromQL ignores metadata types,
      so rate()/increase() on the old names work unchanged, and no lint rule
      applies to untyped names;
    * beside it a real counter ``<name>_total`` (broker_messages_received_total
      ...) carries the same value for new rules and dashboards;
    * Go names that end in a suffix reserved for other types while being
      gauges in truth (``broker_clients_total``, ``broker_subscriptions_count``,
      ``..._count``) are untyped as well; everything else is a gauge.

    /metrics always answers in the 0.0.4 text format, even to a Prometheus
    that asks for OpenMetrics: there the untyped ``broker_messages_received``
    and the counter family behind ``broker_messages_received_total`` would be
    one name twice. The Go exporter never spoke OpenMetrics either.

Freshness
    /metrics is served from the start, also while the broker is down.
    ``mosquitto_exporter_connected`` says whether the MQTT session is up; while
    it is 0 no broker series are served at all (never stale values), and they
    come back with the retained $SYS messages on reconnect, which is retried
    with exponential backoff (1 s doubling to 30 s), each failure logged.

Certificate expiry
    ``--server-cert`` and ``--ca-cert`` (env SERVER_CERT_FILE, CA_CERT_FILE)
    name the broker's PEM certificates; each scrape reads them again and
    serves their notAfter as
    ``mosquitto_certificate_expiry_timestamp_seconds{role="server|ca",path=...}``,
    so a renewed certificate shows at once. The date is read from the DER
    structure with the standard library alone (no new dependency). A file
    that cannot be read or parsed serves no expiry series, and
    ``mosquitto_certificate_read_ok{role,path}`` 0 says so.
"""
import argparse
import calendar
import http.server
import logging
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

import paho.mqtt.client as mqtt
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    UntypedMetricFamily,
)

__version__ = "1.0.0"
LOG = logging.getLogger("mosquitto_exporter")

# Pinned rather than prometheus_client's CONTENT_TYPE_LATEST, which newer
# releases moved to 1.0.0; see the module docstring for why not OpenMetrics.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

SYS_PREFIX = "$SYS/"
# \Z, not $: $ also matches before a trailing newline.
CONNECTION_STATE = re.compile(r"^\$SYS/broker/connection/(.+)/state\Z")
VERSION_TOPIC = "$SYS/broker/version"
IGNORED_TOPICS = frozenset({
    "$SYS/broker/timestamp",
    "$SYS/broker/clients/active",
    "$SYS/broker/clients/inactive",
})
# Monotonic since broker start: the Go exporter's counters (minus uptime,
# clients/maximum and clients/total, which are not rates).
COUNTERS = frozenset({
    "broker_bytes_received",
    "broker_bytes_sent",
    "broker_messages_received",
    "broker_messages_sent",
    "broker_publish_bytes_received",
    "broker_publish_bytes_sent",
    "broker_publish_messages_received",
    "broker_publish_messages_sent",
    "broker_publish_messages_dropped",
})
# promtool: non-counters must not end in _total, non-histograms not in
# _count/_sum/_bucket.
RESERVED_SUFFIXES = ("_total", "_count", "_sum", "_bucket")
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# Valid: [a-zA-Z_:][a-zA-Z0-9_:]* (":" kept, as the Go exporter kept it).
INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_:]")


def metric_name(topic):
    """$SYS/broker/load/messages/received/1min -> broker_load_messages_received_1min"""
    if topic.startswith(SYS_PREFIX):
        topic = topic[len(SYS_PREFIX):]
    name = INVALID_NAME_CHARS.sub("_", topic)
    return "_" + name if name[:1].isdigit() else name


def go_connection_states(connections):
    """[(Go name, topic, state)] for {connection id: state}, one per name.

    Ids that sanitise to one name keep the lowest state: a down bridge must
    not hide behind an up one (the labelled family still has both)."""
    merged = {}
    for connection, value in connections:
        topic = f"{SYS_PREFIX}broker/connection/{connection}/state"
        name = metric_name(topic)
        if name not in merged or value < merged[name][1]:
            merged[name] = (topic, value)
    return [(name, topic, value) for name, (topic, value) in sorted(merged.items())]


def parse_value(payload):
    """First number in the payload, or None when it holds none."""
    match = NUMBER.search(payload)
    return float(match.group()) if match else None


def parse_version(payload):
    """'mosquitto version 2.0.11' -> '2.0.11' (anything else is kept whole)."""
    return payload.rsplit(" ", 1)[-1] if payload.startswith("mosquitto version ") else payload


def connection_families(connections):
    """Bridge states: the labelled family, then the Go exporter's names,
    both from the same values so they appear and vanish together."""
    if not connections:
        return
    family = GaugeMetricFamily(
        "broker_connection_state",
        "Bridge connection state, 1 up 0 down ($SYS/broker/connection/<id>/state, "
        "published by the bridge on both brokers).", labels=["connection"])
    for connection, value in connections:
        family.add_metric([connection], value)
    yield family
    for name, topic, value in go_connection_states(connections):
        yield GaugeMetricFamily(name, topic, value=value)


class SysCollector:
    """The latest $SYS values, served as a prometheus_client custom collector.

    Written by paho's network thread, read by HTTP threads: one lock.
    """

    def __init__(self, max_connections=None):
        # Configuration, not $SYS: served even while the broker is down.
        self.max_connections = max_connections
        self._lock = threading.Lock()
        self._values = {}  # metric name -> (topic, value)
        self._connections = {}  # bridge remote client id -> state (1/0)
        self._version = None
        self._connected = False
        self._last_update = None

    def set_connected(self, connected):
        with self._lock:
            self._connected = connected
            # Values from a previous session are stale either way: on connect
            # the broker resends every $SYS topic as a retained message.
            self._values.clear()
            self._connections.clear()
            self._version = None

    def update(self, topic, payload):
        if topic in IGNORED_TOPICS:
            return
        match = CONNECTION_STATE.match(topic)
        if match:
            # One family with a label: bridges come and go, names must not.
            value = parse_value(payload)
            with self._lock:
                self._last_update = time.time()
                if value is None:
                    self._connections.pop(match.group(1), None)
                else:
                    self._connections[match.group(1)] = value
            return
        name = metric_name(topic)
        value = parse_value(payload)
        with self._lock:
            self._last_update = time.time()
            if topic == VERSION_TOPIC:
                self._version = parse_version(payload.strip()) or None
            elif value is None:
                # Empty payload (a deleted retained message) or no number at all.
                self._values.pop(name, None)
            else:
                self._values[name] = (topic, value)

    def describe(self):
        # Series come and go with the broker: reserve no names at register time.
        return []

    def collect(self):
        with self._lock:
            connected = self._connected
            values = sorted(self._values.items())
            connections = sorted(self._connections.items())
            version = self._version
            last_update = self._last_update
        yield GaugeMetricFamily(
            "mosquitto_exporter_connected",
            "1 while the exporter holds an MQTT session with the broker, else 0.",
            value=1.0 if connected else 0.0,
        )
        if self.max_connections is not None:
            yield GaugeMetricFamily(
                "mosquitto_max_connections",
                "max_connections of the broker's TLS listener: past it new clients are refused.",
                value=self.max_connections,
            )
        if last_update is not None:
            yield GaugeMetricFamily(
                "mosquitto_exporter_last_update_timestamp_seconds",
                "Unix time of the last $SYS message received from the broker.",
                value=last_update,
            )
        if not connected:
            return
        if version:
            info = GaugeMetricFamily("broker_info", "Mosquitto broker version ($SYS/broker/version).",
                                     labels=["version"])
            info.add_metric([version], 1.0)
            yield info
        yield from connection_families(connections)
        for name, (topic, value) in values:
            if name in COUNTERS:
                yield UntypedMetricFamily(name, topic, value=value)
                # CounterMetricFamily appends the _total itself.
                yield CounterMetricFamily(name, topic, value=value)
            elif name.endswith(RESERVED_SUFFIXES):
                yield UntypedMetricFamily(name, topic, value=value)
            else:
                yield GaugeMetricFamily(name, topic, value=value)


# --- certificates ----------------------------------------------------------


def _der_element(data, pos):
    """(tag, content start, content end) of the DER element at pos."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER element")
    return tag, pos, pos + length


def _der_time(tag, raw):
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ: years 1950-2049 (RFC 5280)
        year = int(text[:2])
        text = str(1900 + year if year >= 50 else 2000 + year) + text[2:]
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError(f"not a time (DER tag {tag:#x})")
    if len(text) != 15 or not text.endswith("Z"):
        raise ValueError(f"unexpected time {text!r}")
    fields = (int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]), int(text[12:14]))
    return float(calendar.timegm(fields))


def cert_not_after(path):
    """notAfter of the first PEM certificate in path, as Unix time."""
    with open(path, encoding="ascii") as handle:
        pem = handle.read()
    begin = pem.index("-----BEGIN CERTIFICATE-----")
    end = pem.index("-----END CERTIFICATE-----", begin) + len("-----END CERTIFICATE-----")
    der = ssl.PEM_cert_to_DER_cert(pem[begin:end])
    _, cert, _ = _der_element(der, 0)           # Certificate ::= SEQUENCE
    _, pos, _ = _der_element(der, cert)         # tbsCertificate ::= SEQUENCE
    tag, _, after = _der_element(der, pos)
    if tag == 0xA0:                             # [0] version, optional
        pos = after
    for _ in range(3):                          # serialNumber, signature, issuer
        pos = _der_element(der, pos)[2]
    _, validity, _ = _der_element(der, pos)     # validity ::= SEQUENCE {notBefore, notAfter}
    not_after = _der_element(der, _der_element(der, validity)[2])
    return _der_time(not_after[0], der[not_after[1]:not_after[2]])


class CertificateCollector:
    """notAfter of the broker's certificates, read at every scrape."""

    def __init__(self, files):
        self.files = [(role, path) for role, path in files if path]
        self._failed = set()

    def describe(self):
        return []

    def collect(self):
        if not self.files:
            return
        expiry = GaugeMetricFamily(
            "mosquitto_certificate_expiry_timestamp_seconds",
            "Unix time at which the certificate expires (its notAfter).", labels=["role", "path"])
        readable = GaugeMetricFamily(
            "mosquitto_certificate_read_ok",
            "1 when the certificate file was read and parsed at this scrape, else 0.", labels=["role", "path"])
        for role, path in self.files:
            try:
                expiry.add_metric([role, path], cert_not_after(path))
            except (OSError, ValueError, IndexError) as err:
                if path not in self._failed:  # once per failure, not per scrape
                    LOG.warning("cannot read the %s certificate %s: %s", role, path, err)
                self._failed.add(path)
                readable.add_metric([role, path], 0.0)
                continue
            self._failed.discard(path)
            readable.add_metric([role, path], 1.0)
        yield expiry
        yield readable


# --- MQTT ------------------------------------------------------------------


def parse_endpoint(endpoint):
    """tcp://host:port or ssl://host:port (tls://, mqtt://, mqtts:// too)."""
    if "://" not in endpoint:
        endpoint = "tcp://" + endpoint
    url = urllib.parse.urlsplit(endpoint)
    scheme = url.scheme.lower()
    if scheme in ("tcp", "mqtt"):
        use_tls = False
    elif scheme in ("ssl", "tls", "mqtts"):
        use_tls = True
    else:
        raise ValueError(f"unsupported endpoint scheme {url.scheme!r}: use tcp:// or ssl://")
    if not url.hostname:
        raise ValueError(f"no host in endpoint {endpoint!r}")
    return url.hostname, url.port or (8883 if use_tls else 1883), use_tls


def tls_context(cafile, certfile, keyfile):
    if cafile:
        # Chain and hostname checked against our own CA.
        context = ssl.create_default_context(cafile=cafile)
    else:
        # What the Go exporter did (it had no CA option): encrypt, trust anyone.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    return context


def reason_text(rc, int_to_text):
    # paho 1.x hands out ints, 2.x ReasonCode objects that print themselves.
    return int_to_text(rc) if isinstance(rc, int) else str(rc)


def make_client(args, collector, host, port, session_up):
    # run_mqtt() reconnects itself: paho's own retries are silent about why
    # (refused, unreachable, certificate verify failed), which an operator needs.
    kwargs = {"client_id": args.client_id, "clean_session": True, "reconnect_on_failure": False}
    if hasattr(mqtt, "CallbackAPIVersion"):  # paho >= 2.0
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
    else:
        client = mqtt.Client(**kwargs)

    # Signatures that fit both callback APIs: 1.x on_connect(client, userdata,
    # flags, rc), 2.x adds properties; on_disconnect is (rc) in 1.x and
    # (flags, reason_code, properties) in 2.x.
    def on_connect(client, userdata, flags, rc, properties=None):
        if rc == 0:  # int 0 in 1.x; ReasonCode compares equal to 0 in 2.x
            LOG.info("connected to %s:%s, subscribing to $SYS/#", host, port)
            session_up.set()
            collector.set_connected(True)
            client.subscribe("$SYS/#", qos=0)
        else:
            LOG.warning("broker %s:%s refused the connection: %s", host, port,
                        reason_text(rc, mqtt.connack_string))

    def on_disconnect(client, userdata, *args):
        rc = args[0] if len(args) == 1 else args[1]
        if session_up.is_set() and rc != 0:
            LOG.warning("lost connection to %s:%s: %s", host, port,
                        reason_text(rc, mqtt.error_string))
        collector.set_connected(False)

    def on_message(client, userdata, msg):
        collector.update(msg.topic, msg.payload.decode("utf-8", "replace"))

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    client.on_message = on_message
    return client


def run_mqtt(client, host, port, session_up, stop):
    """Connect, serve the session, and reconnect with backoff until stop is set.

    The first retry after a lost session comes after 1 s (a broker restart is
    the common case), then 2, 4, ... capped at 30 s.
    """
    delay = 1
    while not stop.is_set():
        session_up.clear()
        try:
            client.connect(host, port, keepalive=60)
        except OSError as err:  # refused, unreachable, TLS (ssl.SSLError is an OSError)
            LOG.warning("cannot connect to %s:%s: %s", host, port, err)
        else:
            client.loop_forever()  # returns when the connection is gone or stopped
        if session_up.is_set():
            delay = 1
        if stop.wait(delay):
            break
        delay = min(delay * 2, 30)


# --- HTTP ------------------------------------------------------------------


# Work per request is bounded (DESIGN "Trust boundaries"): anyone who can
# reach the port gets at most HTTP_TIMEOUT seconds of one of
# HTTP_MAX_CONNECTIONS handler threads. A client that connects and sends
# nothing (or trickles bytes, slowloris) is cut when its time is up; while
# every slot is taken, new connections wait in the kernel's listen backlog
# (HTTP_BACKLOG) and are accepted as slots free, so a scrape behind a burst
# of idle connections is answered after at most about one timeout.
# prometheus_client's own server has neither limit.
HTTP_TIMEOUT = 10.0
HTTP_MAX_CONNECTIONS = 16
HTTP_BACKLOG = 64


class Handler(http.server.BaseHTTPRequestHandler):
    registry = REGISTRY
    server_version = f"mosquitto_exporter/{__version__}"
    # Per socket operation (StreamRequestHandler.setup applies it); the
    # watchdog below bounds the whole connection.
    timeout = HTTP_TIMEOUT

    def setup(self):
        self.timeout = self.server.request_timeout
        super().setup()
        # shutdown() wakes a blocked recv/send at once: the connection ends.
        self._watchdog = threading.Timer(self.timeout, self._cut)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _cut(self):
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def finish(self):
        self._watchdog.cancel()
        try:
            super().finish()
        except OSError:
            pass  # the client went away or was cut: nothing left to flush

    def do_GET(self):
        self._respond(with_body=True)

    def do_HEAD(self):
        self._respond(with_body=False)

    def _respond(self, with_body):
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            status, ctype, body = 200, CONTENT_TYPE, generate_latest(self.registry)
        elif path == "/":
            status, ctype = 200, "text/html; charset=utf-8"
            body = b'<html><body><h1>Mosquitto exporter</h1><a href="/metrics">Metrics</a></body></html>\n'
        else:
            status, ctype, body = 404, "text/plain; charset=utf-8", b"not found\n"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # one line per scrape would only flood the journal


class BoundedHTTPServer(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer with at most ``max_connections`` connections
    handled at once, each for at most ``request_timeout`` seconds (see
    HTTP_TIMEOUT). Only the standard library: the same on every
    prometheus_client release."""

    daemon_threads = True
    request_queue_size = HTTP_BACKLOG

    def __init__(self, address, handler, max_connections=HTTP_MAX_CONNECTIONS, request_timeout=HTTP_TIMEOUT):
        self.request_timeout = request_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._closing = threading.Event()
        super().__init__(address, handler)

    def get_request(self):
        # Accept only with a slot in hand: the rest waits in the backlog.
        while not self._slots.acquire(timeout=0.2):
            if self._closing.is_set():
                raise OSError("shutting down")  # serve_forever skips it
        try:
            return super().get_request()
        except BaseException:
            self._slots.release()
            raise

    def process_request(self, request, client_address):
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # no thread started to release it
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        # Resets, timeouts and cut connections: a client's problem, not ours.
        LOG.debug("HTTP connection from %s failed", client_address, exc_info=True)

    def shutdown(self):
        self._closing.set()
        super().shutdown()


def make_http_server(bind_address, max_connections=HTTP_MAX_CONNECTIONS, request_timeout=HTTP_TIMEOUT):
    host, sep, port = bind_address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bind address {bind_address!r} is not host:port")
    host = host.strip("[]") or "0.0.0.0"

    class Server(BoundedHTTPServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    return Server((host, int(port)), Handler, max_connections, request_timeout)


# --- main ------------------------------------------------------------------


def parse_args(argv):
    env = os.environ.get
    parser = argparse.ArgumentParser(description="Prometheus exporter for Mosquitto's $SYS topics.")
    parser.add_argument("-e", "--endpoint", default=env("BROKER_ENDPOINT", "tcp://127.0.0.1:1883"),
                        help="broker, tcp://host:port or ssl://host:port (env BROKER_ENDPOINT)")
    parser.add_argument("-b", "--bind-address", default=env("BIND_ADDRESS", "0.0.0.0:9234"),
                        help="host:port for /metrics (env BIND_ADDRESS)")
    parser.add_argument("-u", "--user", default=env("MQTT_USER"), help="MQTT user (env MQTT_USER)")
    parser.add_argument("-p", "--pass", dest="password", default=env("MQTT_PASS"),
                        help="MQTT password (env MQTT_PASS); visible in ps, prefer --pass-file")
    parser.add_argument("--pass-file", default=env("MQTT_PASS_FILE"),
                        help="file whose first line is the MQTT password (env MQTT_PASS_FILE)")
    parser.add_argument("-c", "--cert", default=env("MQTT_CERT"), help="client certificate (PEM)")
    parser.add_argument("-k", "--key", default=env("MQTT_KEY"), help="client private key (PEM)")
    parser.add_argument("--cafile", default=env("MQTT_CAFILE"),
                        help="CA to verify the broker's certificate and name against; "
                             "without it TLS is not verified (as the Go exporter)")
    parser.add_argument("--server-cert", default=env("SERVER_CERT_FILE"),
                        help="the broker's server certificate: serve its expiry (env SERVER_CERT_FILE)")
    parser.add_argument("--ca-cert", default=env("CA_CERT_FILE"),
                        help="the CA certificate clients verify the broker with: serve its expiry "
                             "(env CA_CERT_FILE)")
    parser.add_argument("-i", "--client-id", default=env("MQTT_CLIENT_ID"),
                        help="MQTT client id (default mosquitto-exporter-<host>-<pid>)")
    parser.add_argument("--max-connections", type=int, default=env("MAX_CONNECTIONS"),
                        help="the broker's max_connections (TLS listener), served as "
                             "mosquitto_max_connections for alerts (env MAX_CONNECTIONS)")
    parser.add_argument("--http-timeout", type=float, default=env("HTTP_TIMEOUT", HTTP_TIMEOUT),
                        help=f"seconds an HTTP client may hold a connection (default {HTTP_TIMEOUT:g}, "
                             "env HTTP_TIMEOUT)")
    parser.add_argument("--http-max-connections", type=int,
                        default=env("HTTP_MAX_CONNECTIONS", HTTP_MAX_CONNECTIONS),
                        help=f"HTTP connections served at once; more wait (default {HTTP_MAX_CONNECTIONS}, "
                             "env HTTP_MAX_CONNECTIONS)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)
    if args.max_connections is not None:
        args.max_connections = int(args.max_connections)
    args.http_timeout = float(args.http_timeout)
    args.http_max_connections = int(args.http_max_connections)
    if args.http_timeout <= 0 or args.http_max_connections < 1:
        parser.error("--http-timeout and --http-max-connections must be positive")
    if args.password and args.pass_file:
        parser.error("give the password either with --pass/MQTT_PASS or with --pass-file, not both")
    if args.key and not args.cert:
        parser.error("--key needs --cert")
    args.client_id = args.client_id or f"mosquitto-exporter-{socket.gethostname()}-{os.getpid()}"
    return args


def read_password(path):
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    return lines[0] if lines else ""


def warn_about_options(args, use_tls):
    """Log options that are unsafe or have no effect (never a password)."""
    if args.password and args.password != os.environ.get("MQTT_PASS"):
        LOG.warning("a password on the command line is visible to every local user: use --pass-file")
    if not use_tls and (args.cafile or args.cert):
        LOG.warning("--cafile/--cert ignored: endpoint %s is not ssl://", args.endpoint)
    if use_tls and not args.cafile:
        LOG.warning("TLS without --cafile: the broker's certificate is NOT verified")


def set_credentials(client, user, password, context):
    """The MQTT login (when a user is given) and the TLS context (ssl://)."""
    if user:
        client.username_pw_set(user, password)
    if context is not None:
        client.tls_set_context(context)


# How soon the main thread runs a signal handler when the signal landed on
# another thread (see main).
SIGNAL_POLL = 0.5


class _ShutDown(Exception):
    """SIGTERM or SIGINT, raised in the main thread by its handler."""


def _shut_down(signum, frame):
    raise _ShutDown(signum)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    try:
        host, port, use_tls = parse_endpoint(args.endpoint)
        password = read_password(args.pass_file) if args.pass_file else args.password
        context = tls_context(args.cafile, args.cert, args.key) if use_tls else None
    except (OSError, ValueError, ssl.SSLError) as err:
        LOG.error("%s", err)  # file names and parse errors only, never a password
        return 2
    warn_about_options(args, use_tls)

    collector = SysCollector(args.max_connections)
    REGISTRY.register(collector)
    REGISTRY.register(CertificateCollector([("server", args.server_cert), ("ca", args.ca_cert)]))
    try:
        httpd = make_http_server(args.bind_address, args.http_max_connections, args.http_timeout)
    except (OSError, ValueError) as err:
        LOG.error("cannot serve metrics on %s: %s", args.bind_address, err)
        return 1
    # HTTP first: /metrics answers (connected 0) even while the broker is down.
    threading.Thread(target=httpd.serve_forever, name="http", daemon=True).start()
    LOG.info("mosquitto_exporter %s serving /metrics on %s", __version__, args.bind_address)

    session_up = threading.Event()
    client = make_client(args, collector, host, port, session_up)
    set_credentials(client, args.user, password, context)
    LOG.info("connecting to %s:%s%s", host, port, " (TLS)" if use_tls else "")

    stop = threading.Event()
    crashed = []

    def mqtt_thread():
        try:
            run_mqtt(client, host, port, session_up, stop)
        except Exception:
            # Never keep serving "connected 0" from a dead loop: exit, be restarted.
            LOG.exception("MQTT loop failed")
            crashed.append(True)
            stop.set()

    worker = threading.Thread(target=mqtt_thread, name="mqtt", daemon=True)
    worker.start()
    # The kernel may deliver SIGTERM to any thread; CPython then runs the
    # handler in the main thread at its next bytecode, which an untimed
    # stop.wait() never reaches (the exporter ignored SIGTERM). Hence the
    # timed wait. The handler raises instead of calling stop.set(): run
    # between two bytecodes of Event.wait, stop.set() would block on the
    # lock its own thread holds there.
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _shut_down)
        while not stop.wait(SIGNAL_POLL):
            pass
    except _ShutDown:
        pass
    for signum in (signal.SIGTERM, signal.SIGINT):  # a second one mid-shutdown is no error
        signal.signal(signum, signal.SIG_IGN)
    stop.set()

    LOG.info("shutting down")
    client.disconnect()
    worker.join(5)
    httpd.shutdown()
    httpd.server_close()
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
