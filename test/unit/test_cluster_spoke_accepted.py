"""mosquitto_cluster.spoke_accepted, the spoke's wait for its hub, with the
hub's answers scripted: what each answer leads to (result, changes,
comment), without a broker or a master (test/hosts and test/containers run
the real thing)."""
from types import SimpleNamespace

import pytest
from salt.exceptions import CommandExecutionError

from test.support.modules import load

state = load("_states", "mosquitto_cluster")
HUB = {"domain": "mqtt1.example.com", "port": 8883}


@pytest.fixture
def hub(monkeypatch):
    """The hub as this spoke sees it: ``address`` (what the mine holds, or
    None), ``answers`` (one probe result per login: a CONNACK code or an
    exception), ``accept`` (the hub's answer to mosquitto_cluster.accept).
    The clock moves 10 s per sleep."""
    h = SimpleNamespace(address=HUB, answers=[], accept={"mqtt1": "accepted spoke-a"}, asked=[], logins=0)
    clock = {"now": 0.0}

    def probe(domain, port, ca_cert, user, secret_path, clientid):
        assert (domain, port, user, clientid) == ("mqtt1.example.com", 8883, "bridge.spoke-a", "spoke-a.cluster.probe")
        h.logins += 1
        answer = h.answers.pop(0) if h.answers else 5
        if isinstance(answer, Exception):
            raise answer
        return answer

    def publish(tgt, fun, timeout):
        h.asked.append((tgt, fun, timeout))
        return h.accept

    monkeypatch.setattr(state, "__salt__", {
        "mosquitto_cluster.username_of": lambda me: f"bridge.{me}",
        "mosquitto_cluster.clientid_of": lambda me: f"{me}.cluster",
        "mosquitto_cluster.hub_of": lambda name: h.address,
        "mosquitto_cluster.probe": probe,
        "publish.publish": publish,
    }, raising=False)
    monkeypatch.setattr(state, "__opts__", {"id": "spoke-a", "test": False}, raising=False)
    monkeypatch.setattr(state.time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(state.time, "sleep", lambda s: clock.__setitem__("now", clock["now"] + 10))
    return h


def accepted(**kw):
    kw.setdefault("wait", 25)
    return state.spoke_accepted("mqtt1", "/ca.crt", "/bridge.secret", **kw)


def test_a_hub_that_accepts_at_once_changes_nothing(hub):
    hub.answers = [0]
    ret = accepted()
    assert ret["result"] is True and ret["changes"] == {}
    assert ret["comment"] == "hub mqtt1 (mqtt1.example.com:8883) accepts bridge.spoke-a"
    assert hub.asked == []


def test_a_refused_login_asks_the_hub_once_then_logs_in_again(hub):
    hub.answers = [5, 0]
    ret = accepted(publish_timeout=7)
    assert hub.asked == [("mqtt1", "mosquitto_cluster.accept", 7)]
    assert ret["result"] is True and ret["changes"] == {"accepted": {"old": False, "new": True}}
    assert ret["comment"] == ("hub mqtt1 (mqtt1.example.com:8883) accepts bridge.spoke-a"
                              " after: accepted spoke-a")


def test_a_hub_that_refuses_the_spoke_fails_the_state(hub):
    hub.answers = [4]
    hub.accept = {"mqtt1": "refused: spoke-a is not a member"}
    ret = accepted()
    assert ret["result"] is False
    assert ret["comment"] == "hub mqtt1 refused bridge.spoke-a: refused: spoke-a is not a member"


def test_still_refused_after_asking_waits_then_fails_naming_the_answer(hub):
    hub.accept = {}
    ret = accepted()
    assert len(hub.asked) == 1 and hub.logins == 5  # asked once; logins at 0, 0, 10, 20, 30 s
    assert ret["result"] is False
    assert ret["comment"] == "hub mqtt1 (mqtt1.example.com:8883) refuses bridge.spoke-a (CONNACK 5) (waited 25 s)"


def test_a_busy_hub_is_asked_again_after_retry_ask(hub):
    hub.answers = [5, 5, 5, 5, 0]  # logins at 0, 0, 10, 20 s refused; the one after the second ask not
    answers = iter(["busy: spoke-a was accepted 5 s ago", "accepted spoke-a"])
    hub.accept = None

    def publish(tgt, fun, timeout):
        hub.asked.append((tgt, fun, timeout))
        return {"mqtt1": next(answers)}
    state.__salt__["publish.publish"] = publish
    ret = accepted(wait=100, retry_ask=15)
    assert len(hub.asked) == 2  # asked at 0 s (busy), again at 20 s (15 s had passed)
    assert ret["result"] is True and ret["comment"].endswith("after: accepted spoke-a")


def test_a_hub_that_stays_silent_is_not_asked_again(hub):
    hub.accept = {"mqtt1": "failed: mosquitto-runtime-service-running"}
    ret = accepted(wait=100, retry_ask=15)
    assert len(hub.asked) == 1 and ret["result"] is False


def test_an_unpublished_or_unreachable_hub_is_waited_for(hub):
    hub.address = None
    ret = accepted()
    assert ret["result"] is False and hub.logins == 0
    assert ret["comment"] == "hub mqtt1 has not published its address in the mine yet (waited 25 s)"
    hub.address = HUB
    hub.answers = [ConnectionError("refused"), 3, 0]
    ret = accepted()
    assert ret["result"] is True and hub.logins == 3


def test_other_connack_codes_are_reported_when_the_wait_ends(hub):
    hub.answers = [ConnectionError("timed out"), 3, 3, 3]
    ret = accepted()
    assert ret["comment"] == "hub mqtt1 (mqtt1.example.com:8883) answered CONNACK 3 (waited 25 s)"
    hub.answers = [ConnectionError("timed out")] * 4
    assert accepted()["comment"] == "hub mqtt1 not reachable: timed out (waited 25 s)"


def test_a_certificate_that_does_not_verify_fails_at_once(hub):
    hub.answers = [CommandExecutionError("certificate verify failed")]
    ret = accepted()
    assert ret["result"] is False and hub.logins == 1
    assert ret["comment"] == "hub mqtt1: certificate verify failed"


def test_under_test_true_nothing_is_asked_or_waited_for(hub):
    state.__opts__["test"] = True
    hub.answers = [5]
    ret = accepted()
    assert ret["result"] is None and ret["changes"] == {"accepted": {"old": False, "new": True}}
    assert ret["comment"] == "hub mqtt1 would be asked to accept bridge.spoke-a"
    hub.address = None
    ret = accepted()
    assert ret["result"] is None
    assert ret["comment"] == "hub mqtt1 has not published its address in the mine yet: the run would wait for it"
    assert hub.asked == []
