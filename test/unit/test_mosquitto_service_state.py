"""mosquitto_service.running: one `systemctl show` answers for a settled unit,
everything else is Salt's own service.running.

systemd is not PID 1 on this machine: the `systemctl show` replies below are
verbatim from a Debian 12 test host (systemd 252). The hosts suite runs the
state for real (cold apply: units started and enabled through Salt's
service.running; no-op: answered here, zero changes).
"""
import pytest

from test.support.modules import load

SETTLED = "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\nNeedDaemonReload=no\n"


@pytest.fixture
def svc(monkeypatch):
    mod = load("_states", "mosquitto_service")
    calls = {"show": [], "salt": []}
    reply = {"stdout": SETTLED, "retcode": 0}

    def run_all(cmd, **kw):
        calls["show"].append(cmd)
        return dict(reply)

    def salt_running(name, **kw):
        calls["salt"].append((name, kw))
        return {"name": name, "changes": {name: True}, "result": True, "comment": "Started service"}

    monkeypatch.setattr(mod, "__grains__", {"init": "systemd"}, raising=False)
    monkeypatch.setattr(mod, "__salt__", {"cmd.run_all": run_all}, raising=False)
    monkeypatch.setattr(mod, "__states__", {"service.running": salt_running}, raising=False)
    return mod, calls, reply


def test_settled_unit_is_one_systemctl_show(svc):
    mod, calls, _ = svc
    ret = mod.running("mosquitto", enable=True, reload=True)
    assert ret == {"name": "mosquitto", "changes": {}, "result": True,
                   "comment": "The service mosquitto is already running"}
    assert calls["salt"] == []
    assert calls["show"] == [["systemctl", "show",
                              "--property=LoadState,ActiveState,UnitFileState,NeedDaemonReload",
                              "--", "mosquitto.service"]]


@pytest.mark.parametrize("stdout", [
    SETTLED.replace("ActiveState=active", "ActiveState=inactive"),
    SETTLED.replace("ActiveState=active", "ActiveState=failed"),
    SETTLED.replace("UnitFileState=enabled", "UnitFileState=disabled"),
    SETTLED.replace("NeedDaemonReload=no", "NeedDaemonReload=yes"),
    SETTLED.replace("LoadState=loaded", "LoadState=not-found"),
    "",
])
def test_anything_unsettled_goes_to_salts_service_running(svc, stdout):
    mod, calls, reply = svc
    reply["stdout"] = stdout
    ret = mod.running("mosquitto-exporter", enable=True)
    assert ret["changes"] == {"mosquitto-exporter": True}
    assert calls["salt"] == [("mosquitto-exporter", {"enable": True})]


def test_disabled_unit_is_fine_when_enable_is_not_asked(svc):
    mod, calls, reply = svc
    reply["stdout"] = SETTLED.replace("UnitFileState=enabled", "UnitFileState=disabled")
    assert mod.running("mosquitto", reload=True)["changes"] == {}
    assert calls["salt"] == []


def test_without_systemd_or_with_a_provider_salt_decides(svc, monkeypatch):
    mod, calls, _ = svc
    provider = [{"service": "debian_service"}, {"service": "mosquitto_service"}]
    mod.running("mosquitto", enable=True, provider=provider)
    monkeypatch.setattr(mod, "__grains__", {"init": "sysvinit"})
    mod.running("mosquitto", enable=True)
    assert calls["show"] == []
    assert [c[1] for c in calls["salt"]] == [{"enable": True, "provider": provider}, {"enable": True}]
