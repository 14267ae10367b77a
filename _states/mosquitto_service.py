"""
``service.running`` with a one-process check for a settled systemd unit.

Salt's ``service.running`` on systemd asks ``systemctl`` four to six times
per state on a service that is already running and enabled (``status``
twice, which reads the journal, then ``is-active`` and ``is-enabled``):
40-100 ms per state, five such states per apply, on every host of a fleet
at once. Here one ``systemctl show`` answers the same questions (loaded,
active, enabled, no unit file changed on disk). Only when it says all is as
wanted does this state return at once; anything else (stopped, disabled,
a unit that needs ``daemon-reload``, not systemd as PID 1, a ``provider``)
goes to Salt's own ``service.running``, which starts, enables or reloads as
it always did. ``mod_watch`` (restart or reload on a watched change) is
Salt's own.

.. code-block:: yaml

    mosquitto-runtime-service-running:
      mosquitto_service.running:
        - name: mosquitto
        - enable: True
"""

__virtualname__ = "mosquitto_service"

# `systemctl is-enabled` states that Salt's service.enabled counts as enabled
# and that need no change; any other goes to Salt (which enables or reports).
_ENABLED = ("enabled", "enabled-runtime", "static", "indirect", "generated")


def __virtual__():
    return __virtualname__


def _unit_settled(name, enable):
    """True when the unit is loaded, active, (enabled when asked) and needs no daemon-reload."""
    if __grains__.get("init") != "systemd" or "systemctl" in name or "/" in name:
        return False
    unit = name if "." in name else f"{name}.service"
    res = __salt__["cmd.run_all"](
        ["systemctl", "show", "--property=LoadState,ActiveState,UnitFileState,NeedDaemonReload", "--", unit],
        python_shell=False, ignore_retcode=True, output_loglevel="trace")
    if res["retcode"] != 0:
        return False
    props = dict(line.split("=", 1) for line in res["stdout"].splitlines() if "=" in line)
    if props.get("LoadState") != "loaded" or props.get("ActiveState") != "active":
        return False
    if props.get("NeedDaemonReload") != "no":
        return False
    return enable is not True or props.get("UnitFileState") in _ENABLED


def running(name, enable=None, **kwargs):
    """Salt's ``service.running`` (same arguments), answered by one
    ``systemctl show`` when the unit is already as wanted."""
    if kwargs.get("provider") or kwargs.get("unmask") or kwargs.get("unmask_runtime") \
            or enable is False or not _unit_settled(name, enable):
        return __states__["service.running"](name, enable=enable, **kwargs)
    return {"name": name, "changes": {}, "result": True, "comment": f"The service {name} is already running"}


def mod_watch(name, **kwargs):
    """Salt's ``service.mod_watch``: restart, or reload with ``reload: True``."""
    return __states__["service.mod_watch"](name, **kwargs)
