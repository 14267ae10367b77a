"""mosquitto_firewall.zone_present against a scripted firewalld: the
permanent zone read (mosquitto_firewall.zone) and the firewall-cmd calls
made to make it exact (exclusive) or to add to it (shared). The real
firewalld: test/hosts/test_firewall_state.py."""
import json

import pytest
from salt.exceptions import CommandExecutionError

from test.support.modules import load
from test.support.modules import utils as modules_utils

state = load("_states", "mosquitto_firewall")
NOTHING_ELSE = {"rich_rules": [], "protocols": [], "source_ports": [], "forward_ports": []}


def z(ports, services, **others):
    return {"ports": ports, "services": services, **NOTHING_ELSE, **others}


WANT = z(["8883/tcp", "9234/tcp"], ["ssh"])
RULE = 'rule family="ipv4" source address="10.9.0.0/16" accept'


@pytest.fixture
def firewalld(monkeypatch):
    """``fw["permanent"]``: the zone as read (None: no such zone, an
    exception: the read fails); ``fw["calls"]``: firewall-cmd argument
    lists; ``fw["fail"]``: an argument that makes firewall-cmd fail."""
    fw = {"permanent": None, "runtime": None, "calls": [], "fail": None}

    def zone(name, runtime=True, permanent=True):
        assert name == "public"
        if isinstance(fw["permanent"], Exception):
            raise fw["permanent"]
        return {side: fw[side] for side, asked in (("permanent", permanent), ("runtime", runtime)) if asked}

    def run_all(cmd, python_shell, ignore_retcode):
        assert cmd[0] == "firewall-cmd" and python_shell is False
        fw["calls"].append(cmd[1:])
        if fw["fail"] in cmd:
            return {"retcode": 1, "stdout": "", "stderr": "Error: INVALID_PORT\n"}
        return {"retcode": 0, "stdout": "success", "stderr": ""}

    monkeypatch.setattr(state, "__salt__", {"mosquitto_firewall.zone": zone, "cmd.run_all": run_all},
                        raising=False)
    monkeypatch.setattr(state, "__opts__", {"test": False}, raising=False)
    monkeypatch.setattr(state, "__utils__", modules_utils(), raising=False)
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
    assert ret["comment"] == "Zone public: added ssh, 8883/tcp, 9234/tcp; removed nothing; firewalld reloaded"
    assert firewalld["calls"] == [
        ["--permanent", "--new-zone=public"],
        ["--permanent", "--zone=public", "--add-port=8883/tcp", "--add-port=9234/tcp"],
        ["--permanent", "--zone=public", "--add-service=ssh"],
        ["--reload"]]


def test_other_ports_and_services_are_removed(firewalld):
    firewalld["permanent"] = z(["1883/tcp", "8883/tcp"], ["dhcpv6-client", "ssh"], rich_rules=[RULE])
    ret = present()
    assert ret["changes"] == {"ports": {"old": ["1883/tcp", "8883/tcp"], "new": ["8883/tcp", "9234/tcp"]},
                              "services": {"old": ["dhcpv6-client", "ssh"], "new": ["ssh"]},
                              "rich_rules": {"old": [RULE], "new": []}}
    assert ret["comment"] == (f"Zone public: added 9234/tcp; removed dhcpv6-client, 1883/tcp, {RULE}; "
                              "firewalld reloaded")
    assert firewalld["calls"] == [
        ["--permanent", "--zone=public", "--add-port=9234/tcp"],
        ["--permanent", "--zone=public", "--remove-port=1883/tcp"],
        ["--permanent", "--zone=public", "--remove-service=dhcpv6-client"],
        ["--permanent", "--zone=public", f"--remove-rich-rule={RULE}"],
        ["--reload"]]


def test_test_mode_reports_and_runs_nothing(firewalld):
    state.__opts__["test"] = True
    firewalld["permanent"] = z([], ["ssh"])
    ret = present()
    assert ret["result"] is None and ret["changes"] == {"ports": {"old": [], "new": ["8883/tcp", "9234/tcp"]}}
    assert ret["comment"] == "Zone public: would add 8883/tcp, 9234/tcp; would remove nothing (permanent, then reload)"
    assert firewalld["calls"] == []


def test_failures_fail_the_state_with_the_message(firewalld):
    firewalld["permanent"] = z([], [])
    firewalld["fail"] = "--add-port=8883/tcp"
    ret = present()
    assert ret["result"] is False
    assert ret["comment"] == ("firewall-cmd --permanent --zone=public --add-port=8883/tcp --add-port=9234/tcp "
                              "failed: Error: INVALID_PORT")
    assert ["--reload"] not in firewalld["calls"]
    firewalld["permanent"] = CommandExecutionError("firewalld is not running")
    ret = present()
    assert ret["result"] is False and ret["comment"] == "firewalld is not running"


# --- shared mode and the record of what the formula added -------------------

FOREIGN = z(["5353/udp", "8883/tcp"], ["cockpit", "dhcpv6-client", "ssh"], rich_rules=[RULE])


def shared(record, **kwargs):
    args = {"ports": ["9234/tcp", "8883/tcp"], "services": ["ssh"], "mode": "shared", "record": str(record)}
    return state.zone_present("public", **{**args, **kwargs})


def test_shared_mode_adds_only_the_missing_and_records_them(firewalld, tmp_path):
    record = tmp_path / "rec" / "firewall.json"
    firewalld["permanent"] = FOREIGN
    state.__opts__["test"] = True
    planned = shared(record)
    assert planned["result"] is None
    assert planned["changes"] == {"ports": {"old": ["5353/udp", "8883/tcp"],
                                            "new": ["5353/udp", "8883/tcp", "9234/tcp"]}}
    assert planned["comment"] == ("Zone public: would add 9234/tcp; would remove nothing "
                                  "(permanent and runtime)")
    assert firewalld["calls"] == [] and not record.exists()

    state.__opts__["test"] = False
    done = shared(record)
    assert done["result"] is True
    # Permanent, then the same at runtime: no reload (others' runtime rules stay).
    assert firewalld["calls"] == [["--permanent", "--zone=public", "--add-port=9234/tcp"],
                                  ["--zone=public", "--add-port=9234/tcp"]]
    # 8883/tcp and ssh were there before the formula: not its own.
    assert json.loads(record.read_text()) == {"public": {"ports": ["9234/tcp"], "services": []}}


def test_shared_mode_settled_changes_nothing(firewalld, tmp_path):
    record = tmp_path / "firewall.json"
    record.write_text(json.dumps({"public": {"ports": ["9234/tcp"], "services": []}}))
    firewalld["permanent"] = z(["5353/udp", "8883/tcp", "9234/tcp"], ["cockpit", "dhcpv6-client", "ssh"],
                               rich_rules=[RULE])
    ret = shared(record)
    assert ret["changes"] == {} and firewalld["calls"] == []
    assert ret["comment"] == "Zone public opens ssh, 8883/tcp, 9234/tcp (shared: 4 other openings left alone)"


def test_shared_mode_drops_only_its_own_unwanted_additions(firewalld, tmp_path):
    record = tmp_path / "firewall.json"
    record.write_text(json.dumps({"public": {"ports": ["9234/tcp"], "services": []}}))
    # The exporter is off now: 9234 goes (the formula added it), 5353 stays.
    firewalld["permanent"] = z(["5353/udp", "8883/tcp", "9234/tcp"], ["ssh"])
    ret = shared(record, ports=["8883/tcp"])
    assert ret["comment"] == ("Zone public: added nothing; removed 9234/tcp; "
                              "permanent and runtime, no reload")
    assert firewalld["calls"] == [["--permanent", "--zone=public", "--remove-port=9234/tcp"],
                                  ["--zone=public", "--remove-port=9234/tcp"]]
    assert json.loads(record.read_text()) == {"public": {"ports": [], "services": []}}


def test_an_unknown_mode_fails_naming_it(firewalld):
    ret = state.zone_present("public", ports=["8883/tcp"], mode="both")
    assert ret["result"] is False and ret["comment"] == "mode must be one of exclusive, shared, not 'both'"


def test_shared_runtime_drift_is_added_back_without_a_reload(firewalld):
    firewalld["runtime"] = z(["5353/udp"], ["cockpit", "ssh"])
    ret = state.reloaded("public", ports=["8883/tcp"], services=["ssh"], mode="shared")
    assert ret["changes"] == {"runtime": {"added": ["8883/tcp"]}}
    assert firewalld["calls"] == [["--zone=public", "--add-port=8883/tcp"]]


def test_clean_removes_only_what_the_record_lists(firewalld, tmp_path):
    record = tmp_path / "rec" / "firewall.json"
    record.parent.mkdir()
    record.write_text(json.dumps({"public": {"ports": ["9234/tcp"], "services": ["ssh"]}}))
    firewalld["permanent"] = firewalld["runtime"] = z(["5353/udp", "8883/tcp", "9234/tcp"], ["ssh"])
    state.__opts__["test"] = True
    planned = state.zone_cleaned("public", str(record), fallback_ports=["8883/tcp"])
    assert planned["result"] is None and planned["changes"] == {"removed": ["9234/tcp"]}
    assert firewalld["calls"] == [] and record.exists()

    state.__opts__["test"] = False
    done = state.zone_cleaned("public", str(record), fallback_ports=["8883/tcp"])
    # ssh stays even though recorded; 8883 (the operator's) stays; no reload.
    assert firewalld["calls"] == [["--permanent", "--zone=public", "--remove-port=9234/tcp"],
                                  ["--zone=public", "--remove-port=9234/tcp"]]
    assert done["comment"] == "Zone public: removed 9234/tcp (what the formula added); no reload"
    assert not record.parent.exists()


def test_clean_without_a_record_removes_the_fallback_ports_only(firewalld, tmp_path):
    firewalld["permanent"] = z(["5353/udp", "8883/tcp"], ["ssh"])
    firewalld["runtime"] = z(["5353/udp"], ["ssh"])
    ret = state.zone_cleaned("public", str(tmp_path / "none.json"), fallback_ports=["8883/tcp", "9234/tcp"])
    assert ret["changes"] == {"removed": ["8883/tcp"]}
    assert firewalld["calls"] == [["--permanent", "--zone=public", "--remove-port=8883/tcp"]]
    firewalld["calls"].clear()
    ret = state.zone_cleaned("public", str(tmp_path / "none.json"))  # shared: nothing
    assert ret["changes"] == {} and firewalld["calls"] == []
