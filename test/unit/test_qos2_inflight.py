"""QoS 2 over bridges: where a bridge or the cluster carries QoS 2, the
broker gets `max_inflight_messages 0` (no cap), unless mosquitto:config sets
it. With the default cap (20) mosquitto 2.0 answers a QoS 2 PUBLISH past it
with a PUBREC "quota exceeded", which an MQTT 3.1.1 sender cannot see, and
drops the message: a bridge goes one past the remote's cap after each
reconnect with a backlog, a client with a bigger window past the broker's.
The last test shows that on a real broker (this host's mosquitto)."""
import pathlib
import time

import jinja2
import paho.mqtt.client as mqtt
import pytest

from test.support.broker import Broker
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)
from test.support.config import validate

TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "mosquitto/files/default/mosquitto.conf.jinja"
QOS2 = {"hub": "mqtt1", "topics": ["fleet/# both 1", "q2/# both 2"]}
QOS1 = {"hub": "mqtt1", "topics": ["fleet/# both 1"]}


def rendered(data):
    data = dict(data)
    data.pop("users")
    data.pop("bridges")
    return jinja2.Environment().from_string(TEMPLATE.read_text()).render(mosquitto=data)


def inflight_lines(conf):
    return [line for line in conf.splitlines() if line.startswith("max_inflight_messages")]


@pytest.mark.parametrize("minion", ["mqtt1", "mqtt2"])  # the hub receives, a spoke both sends and receives
def test_a_qos2_cluster_topic_lifts_the_cap_on_hub_and_spoke(minion):
    data = validate(minion, "2.0.21", cluster=QOS2)
    assert data["queue"]["max_inflight_messages_effective"] == 0
    assert inflight_lines(rendered(data)) == ["max_inflight_messages 0"]


def test_a_qos2_pillar_bridge_lifts_it_too():
    bridge = {"address": "remote.example.com:8883", "topics": ["site/# out 2"]}
    data = validate("mqtt2", "2.0.15", bridges={"b": bridge})
    assert inflight_lines(rendered(data)) == ["max_inflight_messages 0"]


def test_qos_1_keeps_mosquittos_default():
    data = validate("mqtt2", "2.0.21", cluster=QOS1)
    assert data["queue"]["max_inflight_messages_effective"] is None
    assert inflight_lines(rendered(data)) == []
    assert inflight_lines(rendered(validate("mqtt2", "2.0.11"))) == []  # no cluster, no bridge


def test_the_pillars_own_value_wins_and_is_written_once():
    data = validate("mqtt2", "2.0.21", cluster=QOS2, config={"max_inflight_messages": 100})
    assert data["queue"]["max_inflight_messages_effective"] is None
    assert inflight_lines(rendered(data)) == ["max_inflight_messages 100"]


def _qos2_burst(extra, tmp_path, count=100):
    """`count` QoS 2 messages with that many in flight (MQTT 3.1.1) to an
    offline persistent subscriber; returns how many it then gets."""
    tmp_path.mkdir()
    broker = Broker("allow_anonymous true\n" + extra, workdir=tmp_path).start()
    try:
        got = []

        def client(cid="", clean=True):
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, clean_session=clean)
            c.on_message = lambda _c, _u, msg: got.append(msg.payload)
            c.max_inflight_messages_set(count)
            connected = []
            c.on_connect = lambda _c, _u, _f, reason, _p: connected.append(reason)
            c.connect("127.0.0.1", broker.port)
            c.loop_start()
            deadline = time.monotonic() + 10
            while not connected and time.monotonic() < deadline:
                time.sleep(0.05)
            assert connected and not connected[0].is_failure, (connected, broker.logtext()[-500:])
            return c

        sub = client("q2-offline", clean=False)
        sub.subscribe("q2/#", qos=2)
        time.sleep(0.5)
        sub.disconnect()
        sub.loop_stop()
        pub = client()
        infos = [pub.publish("q2/x", f"m{i}", qos=2) for i in range(count)]
        deadline = time.monotonic() + 20
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        assert all(info.is_published() for info in infos)  # every one "acknowledged"
        pub.disconnect()
        pub.loop_stop()
        sub = client("q2-offline", clean=False)
        deadline, seen, quiet_since = time.monotonic() + 10, -1, time.monotonic()
        while time.monotonic() < min(deadline, quiet_since + 1.5):  # until 1.5 s without a message
            if len(got) != seen:
                seen, quiet_since = len(got), time.monotonic()
            time.sleep(0.1)
        sub.disconnect()
        sub.loop_stop()
        return len(got), broker.logtext().count("rc151)")
    finally:
        broker.stop()


def test_a_real_broker_drops_qos2_past_its_cap_and_not_with_the_rendered_line(tmp_path):
    line = inflight_lines(rendered(validate("mqtt2", "2.0.21", cluster=QOS2)))[0]
    capped, refused = _qos2_burst("", tmp_path / "capped")
    assert capped < 100 and refused == 100 - capped, (capped, refused)
    assert _qos2_burst(line, tmp_path / "uncapped") == (100, 0)
