"""Root never follows a link the broker's user planted (issue #20), on a
real systemd host from a master.

The broker's log directory belongs to user mosquitto. With the broker
stopped, that user replaces the log by a link to /etc/shadow; the formula's
apply (test=True, then for real) and a failing `mosquitto_broker.listening`
must leave /etc/shadow's owner, mode and content as they were and show no
line of it in any return (returns go to the master's job cache).

Unit tests (test/unit/test_symlink_guard.py) cover the helpers on temp dirs;
this is the end-to-end check. Tests run in file order on one module host.
"""
import json
import secrets

import pytest

from test.support import fleet as fleetmod

pytestmark = pytest.mark.hosts

HOST = "link1.test"
LOG = "/var/log/mosquitto/mosquitto.log"
LOG_STATE = "mosquitto-configure-service-log-file-managed"


@pytest.fixture(scope="module")
def host(fleet_factory, fleet_pillar_dir):
    (fleet_pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
    (fleet_pillar_dir / "mosquitto.sls").write_text(
        fleetmod.fleet_pillar_sls("link-" + secrets.token_urlsafe(12), HOST))
    fleet = fleet_factory([HOST])
    fleet.salt("state.apply", "mosquitto", "sync_mods=all", timeout=900, check=True)
    return fleet, fleet[HOST]


def apply(host, *args, check=True):
    fleet, h = host
    return fleet.salt("state.apply", "mosquitto", *args, tgt=h.name, timeout=600, check=check)[h.name]


def by_id(ret):
    return {v["__id__"]: v for v in ret.values()}


def changed(ret):
    return {sid: v for sid, v in by_id(ret).items() if v.get("changes") or v.get("result") is None}


def shadow(h):
    """(owner:group mode, content) of the host's /etc/shadow."""
    meta = h.run(["stat", "-c", "%U:%G %a", "/etc/shadow"]).stdout.strip()
    return meta, h.run(["cat", "/etc/shadow"]).stdout


def assert_no_shadow_line_in(ret, content):
    text = json.dumps(ret)
    for line in content.splitlines():
        if line.strip():
            assert line not in text, f"a line of /etc/shadow is in the return: {line.split(':')[0]}:..."


def plant_link(h):
    """Broker stopped, the log replaced by mosquitto's own link to /etc/shadow."""
    h.run(["systemctl", "stop", "mosquitto"])
    h.run(["rm", "-f", LOG])
    h.run(["runuser", "-u", "mosquitto", "--", "ln", "-s", "/etc/shadow", LOG])
    assert h.run(["stat", "-c", "%F %U", LOG]).stdout.strip() == "symbolic link mosquitto"


def test_planted_link_is_planned_under_test_and_nothing_changes(host):
    _, h = host
    before = shadow(h)
    plant_link(h)
    ret = apply(host, "test=True", check=False)
    planned = changed(ret)
    assert planned[LOG_STATE]["result"] is None
    assert planned[LOG_STATE]["changes"]["symlink"] == {"old": "a symbolic link (not followed)", "new": "removed"}
    assert h.run(["stat", "-c", "%F", LOG]).stdout.strip() == "symbolic link"
    assert shadow(h) == before
    assert_no_shadow_line_in(ret, before[1])


def test_apply_removes_the_link_and_never_touches_its_target(host):
    _, h = host
    before = shadow(h)
    ret = apply(host)
    state = by_id(ret)[LOG_STATE]
    assert state["result"] is True and "symlink" in state["changes"], state
    assert h.run(["stat", "-c", "%F %U:%G %a", LOG]).stdout.strip() in (
        "regular empty file mosquitto:mosquitto 640", "regular file mosquitto:mosquitto 640")
    assert shadow(h) == before
    assert_no_shadow_line_in(ret, before[1])
    assert h.run(["systemctl", "is-active", "mosquitto"]).stdout.strip() == "active"


def test_second_apply_changes_nothing(host):
    assert changed(apply(host)) == {}


def test_log_tail_through_a_link_is_not_quoted(host):
    """listening() fails on a closed port and would quote the log: a link
    there is reported, not read."""
    fleet, h = host
    before = shadow(h)
    plant_link(h)
    try:
        ret = fleet.salt("state.single", "mosquitto_broker.listening", "name=mosquitto",
                         'ports=[["127.0.0.1", 1]]', "timeout=0", f"log_file={LOG}", "log_user=mosquitto",
                         tgt=h.name, timeout=120)[h.name]
        [state] = ret.values()
        assert state["result"] is False
        assert "is not a regular file (symlink?), not read" in state["comment"]
        assert_no_shadow_line_in(ret, before[1])
        assert shadow(h) == before
    finally:
        h.run(["rm", "-f", LOG])
        apply(host)  # the log file back, the broker running
