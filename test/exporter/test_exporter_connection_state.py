"""Bridge states (issues 9 and 21): every $SYS/broker/connection/<id>/state
becomes broker_connection_state{connection="<id>"} (one family, the one to
use) and, for dashboards written for the Go exporter, also its name per
connection, broker_connection_<id>_state. Both come from the same values:
a deleted retained state or a lost session drops both."""
import importlib.util
import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from test.exporter.helpers import ANON, EXPORTER, SYS_FAST
from test.support.broker import Broker

# What Prometheus accepts as a metric name.
VALID_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
# A remote_clientid with everything the Go exporter replaced (".", "-",
# space) and what it could not name at all ("@": client_golang refused it).
HOSTILE_ID = "spoke 1.a-b@x"
HOSTILE_GO_NAME = "broker_connection_spoke_1_a_b_x_state"


@pytest.fixture
def collector():
    spec = importlib.util.spec_from_file_location("mosquitto_exporter_states", EXPORTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.SysCollector()
    c.set_connected(True)
    return c


def scrape(collector):
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


def test_states_share_one_family_and_have_go_names(collector):
    collector.update("$SYS/broker/connection/spoke-a.test.cluster/state", "1")
    collector.update("$SYS/broker/connection/spoke-b.test.cluster/state", "0")
    text = scrape(collector)
    assert 'broker_connection_state{connection="spoke-a.test.cluster"} 1.0' in text
    assert 'broker_connection_state{connection="spoke-b.test.cluster"} 0.0' in text
    assert text.count("# TYPE broker_connection_state gauge") == 1
    # The Go exporter's names: gauges, help is the topic as Go had it.
    assert "\nbroker_connection_spoke_a_test_cluster_state 1.0\n" in text
    assert "\nbroker_connection_spoke_b_test_cluster_state 0.0\n" in text
    assert "# TYPE broker_connection_spoke_a_test_cluster_state gauge" in text
    assert ("# HELP broker_connection_spoke_a_test_cluster_state "
            "$SYS/broker/connection/spoke-a.test.cluster/state") in text


def test_a_deleted_state_drops_both_names_and_a_new_session_forgets_all(collector):
    collector.update("$SYS/broker/connection/a.cluster/state", "1")
    collector.update("$SYS/broker/connection/b.cluster/state", "1")
    collector.update("$SYS/broker/connection/a.cluster/state", "")
    text = scrape(collector)
    assert 'connection="a.cluster"' not in text and "broker_connection_a_cluster_state" not in text
    assert 'connection="b.cluster"' in text and "broker_connection_b_cluster_state 1.0" in text
    collector.set_connected(False)  # lost session: nothing stale
    assert "broker_connection" not in scrape(collector)
    collector.set_connected(True)  # reconnect: retained values come again
    assert "broker_connection" not in scrape(collector)


def test_ids_with_one_go_name_serve_it_once_with_the_lowest_state(collector):
    # "a.b" and "a-b" both become broker_connection_a_b_state; a name twice
    # would make the whole scrape invalid, and a down bridge must show.
    collector.update("$SYS/broker/connection/a.b/state", "1")
    collector.update("$SYS/broker/connection/a-b/state", "0")
    text = scrape(collector)
    assert text.count("# TYPE broker_connection_a_b_state gauge") == 1
    assert "\nbroker_connection_a_b_state 0.0\n" in text
    assert 'connection="a.b"} 1.0' in text and 'connection="a-b"} 0.0' in text


def names(values):
    return {series.split("{")[0] for series in values}


def test_real_bridge_state_under_both_names(exporter_factory):
    """A real bridge (remote_clientid HOSTILE_ID) to the broker the exporter
    watches: the bridge's notification sets 1, its will 0 once the bridging
    broker is killed (the socket closes, no keepalive wait); then the watched
    broker stops and both names go with the session. Runs on both stacks."""
    labelled = f'broker_connection_state{{connection="{HOSTILE_ID}"}}'
    with Broker(extra=ANON + SYS_FAST) as hub:
        spoke = Broker(extra=ANON + (
            "connection to-hub\n"
            f"address 127.0.0.1:{hub.port}\n"
            f"remote_clientid {HOSTILE_ID}\n"
            "topic bridged/# out 0\n")).start()
        try:
            exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{hub.port}")
            types, values = exporter.wait_for(
                lambda t, v: v.get(labelled) == 1 and v.get(HOSTILE_GO_NAME) == 1, "state 1 under both names")
            assert types[HOSTILE_GO_NAME] == types["broker_connection_state"] == "gauge"
            assert all(VALID_NAME.fullmatch(name) for name in names(values)), sorted(names(values))
            spoke.proc.kill()  # our own child: an unclean end fires the bridge's will
            exporter.wait_for(lambda t, v: v.get(labelled) == 0 and v.get(HOSTILE_GO_NAME) == 0,
                              "state 0 under both names")
        finally:
            spoke.stop()
        hub.stop()
        _, values = exporter.wait_for(lambda t, v: v["mosquitto_exporter_connected"] == 0, "the lost session")
        assert not [name for name in names(values) if name.startswith("broker_connection")]
