"""The exporter's pure functions: naming, value parsing, endpoints.

Loaded by path (it is a file the formula installs, not a package).
"""
import importlib.util

import pytest

from test.exporter.helpers import EXPORTER


@pytest.fixture(scope="module")
def exporter():
    spec = importlib.util.spec_from_file_location("mosquitto_exporter_under_test", EXPORTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("topic, name", [
    ("$SYS/broker/bytes/received", "broker_bytes_received"),
    ("$SYS/broker/load/messages/received/1min", "broker_load_messages_received_1min"),
    ("$SYS/broker/retained messages/count", "broker_retained_messages_count"),
    # Go: "-" and "." become "_" too; anything else invalid in a name as well
    # (Go panicked on those); ":" is valid and Go kept it.
    ("$SYS/broker/connection/host-1.bridge/state", "broker_connection_host_1_bridge_state"),
    ("$SYS/broker/connection/a:b/state", "broker_connection_a:b_state"),
    ("$SYS/broker/connection/a+b@c é/state", "broker_connection_a_b_c___state"),
    ("$SYS/1odd", "_1odd"),
])
def test_metric_name_follows_the_go_exporter(exporter, topic, name):
    assert exporter.metric_name(topic) == name


@pytest.mark.parametrize("payload, value", [
    ("1234 seconds", 1234.0),
    ("0.52", 0.52),
    ("-1", -1.0),
    ("12", 12.0),
    ("", None),
    ("no number here", None),
])
def test_value_is_the_first_number(exporter, payload, value):
    assert exporter.parse_value(payload) == value


@pytest.mark.parametrize("endpoint, expected", [
    ("tcp://127.0.0.1:1883", ("127.0.0.1", 1883, False)),
    ("127.0.0.1:1884", ("127.0.0.1", 1884, False)),
    ("ssl://broker.example:8883", ("broker.example", 8883, True)),
    ("tls://localhost", ("localhost", 8883, True)),
    ("mqtts://[::1]:9883", ("::1", 9883, True)),
    ("tcp://localhost", ("localhost", 1883, False)),
])
def test_endpoints(exporter, endpoint, expected):
    assert exporter.parse_endpoint(endpoint) == expected


@pytest.mark.parametrize("endpoint", ["ws://localhost:9001", "tcp://:1883"])
def test_bad_endpoints_are_refused(exporter, endpoint):
    with pytest.raises(ValueError):
        exporter.parse_endpoint(endpoint)


def test_version_label(exporter):
    assert exporter.parse_version("mosquitto version 2.0.11") == "2.0.11"
    assert exporter.parse_version("something else") == "something else"
