"""Bridge states are one family with a label (issue 9): every
$SYS/broker/connection/<id>/state becomes broker_connection_state{connection="<id>"},
never a name per connection; a deleted retained state drops its series."""
import importlib.util

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from test.exporter.helpers import EXPORTER


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


def test_states_share_one_family(collector):
    collector.update("$SYS/broker/connection/spoke-a.test.cluster/state", "1")
    collector.update("$SYS/broker/connection/spoke-b.test.cluster/state", "0")
    text = scrape(collector)
    assert 'broker_connection_state{connection="spoke-a.test.cluster"} 1.0' in text
    assert 'broker_connection_state{connection="spoke-b.test.cluster"} 0.0' in text
    assert text.count("# TYPE broker_connection_state gauge") == 1
    assert "broker_connection_spoke" not in text


def test_a_deleted_state_drops_its_series_and_a_new_session_forgets_all(collector):
    collector.update("$SYS/broker/connection/a.cluster/state", "1")
    collector.update("$SYS/broker/connection/b.cluster/state", "1")
    collector.update("$SYS/broker/connection/a.cluster/state", "")
    text = scrape(collector)
    assert 'connection="a.cluster"' not in text and 'connection="b.cluster"' in text
    collector.set_connected(True)  # reconnect: retained values come again
    assert "broker_connection_state" not in scrape(collector)
