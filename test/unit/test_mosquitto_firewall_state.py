"""mosquitto_firewall.zone_present against a scripted firewalld: the
permanent zone read (mosquitto_firewall.zone) and the firewall-cmd calls
made to make it exact."""
import pytest
from salt.exceptions import CommandExecutionError

from test.support.modules import load

state = load("_states", "mosquitto_firewall")
WANT = {"ports": ["8883/tcp", "9234/tcp"], "services": ["ssh"]}


@pytest.fixture
def firewalld(monkeypatch):
    """``fw["permanent"]``: the zone as read (None: no such zone, an
    exception: the read fails); ``fw["calls"]``: firewall-cmd argument
    lists; ``fw["fail"]``: an argument that makes firewall-cmd fail."""
    fw = {"permanent": None, "calls": [], "fail": None}

    def zone(name, runtime=True, permanent=True):
        assert name == "public" and runtime is False
        if isinstance(fw["permanent"], Exception):
            raise fw["permanent"]
        return {"permanent": fw["permanent"]}

    def run_all(cmd, python_shell, ignore_retcode):
        assert cmd[0] == "firewall-cmd" and python_shell is False
        fw["calls"].append(cmd[1:])
        if fw["fail"] in cmd:
            return {"retcode": 1, "stdout": "", "stderr": "Error: INVALID_PORT\n"}
        return {"retcode": 0, "stdout": "success", "stderr": ""}

    monkeypatch.setattr(state, "__salt__", {"mosquitto_firewall.zone": zone, "cmd.run_all": run_all},
                        raising=False)
    monkeypatch.setattr(state, "__opts__", {"test": False}, raising=False)
    return fw


def present():
    return state.zone_present("public", ports=["9234/tcp", "8883/tcp", "8883/tcp"], services=["ssh"])


def test_an_exact_zone_changes_nothing(firewalld):
    firewalld["permanent"] = dict(WANT)
    ret = present()
    assert ret == {"name": "public", "result": True, "changes": {},
                   "comment": "Zone public opens exactly ssh, 8883/tcp, 9234/tcp"}
    assert firewalld["calls"] == []


def test_a_missing_zone_is_created_then_filled_and_reloaded(firewalld):
    ret = present()
    assert ret["result"] is True
    assert ret["changes"] == {"zone": {"old": None, "new": "public"},
                              "ports": {"old": [], "new": ["8883/tcp", "9234/tcp"]},
                              "services": {"old": [], "new": ["ssh"]}}
    assert list(ret["changes"]) == ["zone", "ports", "services"]
    assert ret["comment"] == "Zone public now opens exactly ssh, 8883/tcp, 9234/tcp; firewalld reloaded"
    assert firewalld["calls"] == [
        ["--permanent", "--new-zone=public"],
        ["--permanent", "--zone=public", "--add-port=8883/tcp", "--add-port=9234/tcp"],
        ["--permanent", "--zone=public", "--add-service=ssh"],
        ["--reload"]]


def test_other_ports_and_services_are_removed(firewalld):
    firewalld["permanent"] = {"ports": ["1883/tcp", "8883/tcp"], "services": ["dhcpv6-client", "ssh"]}
    ret = present()
    assert ret["changes"] == {"ports": {"old": ["1883/tcp", "8883/tcp"], "new": ["8883/tcp", "9234/tcp"]},
                              "services": {"old": ["dhcpv6-client", "ssh"], "new": ["ssh"]}}
    assert firewalld["calls"] == [
        ["--permanent", "--zone=public", "--add-port=9234/tcp"],
        ["--permanent", "--zone=public", "--remove-port=1883/tcp"],
        ["--permanent", "--zone=public", "--remove-service=dhcpv6-client"],
        ["--reload"]]


def test_test_mode_reports_and_runs_nothing(firewalld):
    state.__opts__["test"] = True
    firewalld["permanent"] = {"ports": [], "services": ["ssh"]}
    ret = present()
    assert ret["result"] is None and ret["changes"] == {"ports": {"old": [], "new": ["8883/tcp", "9234/tcp"]}}
    assert ret["comment"] == "Zone public would open exactly ssh, 8883/tcp, 9234/tcp (permanent, then reload)"
    assert firewalld["calls"] == []


def test_failures_fail_the_state_with_the_message(firewalld):
    firewalld["permanent"] = {"ports": [], "services": []}
    firewalld["fail"] = "--add-port=8883/tcp"
    ret = present()
    assert ret["result"] is False
    assert ret["comment"] == ("firewall-cmd --permanent --zone=public --add-port=8883/tcp --add-port=9234/tcp "
                              "failed: Error: INVALID_PORT")
    assert ["--reload"] not in firewalld["calls"]
    firewalld["permanent"] = CommandExecutionError("firewalld is not running")
    ret = present()
    assert ret["result"] is False and ret["comment"] == "firewalld is not running"
