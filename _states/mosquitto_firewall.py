"""
Exactly the wanted ports and services in a firewalld zone.

``zone_present`` keeps the permanent configuration exact (adds what is
missing, removes every other port and service, creates the zone) and
reloads after a change, like Salt's ``firewalld.present`` with
``prune_ports``/``prune_services``. ``reloaded`` compares the running zone
with the wanted one and reloads only when it drifted (someone ran
firewall-cmd without ``--permanent``). Both read through
``mosquitto_firewall.zone`` (D-Bus, milliseconds), so a converged host runs
no ``firewall-cmd`` at all; writes use ``firewall-cmd``.

Under test=True both report what they would change, with result None, and
change nothing.
"""

from salt.exceptions import CommandExecutionError

__virtualname__ = "mosquitto_firewall"


def __virtual__():
    return __virtualname__


def _wanted(ports, services):
    return {"ports": sorted(set(ports or [])), "services": sorted(set(services or []))}


def _firewall_cmd(*args):
    """Run firewall-cmd; raise with its message when it fails."""
    res = __salt__["cmd.run_all"](["firewall-cmd", *args], python_shell=False, ignore_retcode=True)
    if res["retcode"] != 0:
        raise CommandExecutionError(
            f"firewall-cmd {' '.join(args)} failed: {(res['stderr'] or res['stdout']).strip()}")
    return res["stdout"]


def _read(name, ret, **sides):
    try:
        return __salt__["mosquitto_firewall.zone"](name, **sides)
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return None


def _shown(settings):
    return ", ".join(settings["services"] + settings["ports"]) or "nothing"


def _setting_changes(permanent, wanted):
    """``changes`` entries for the ports and services that differ."""
    return {key: {"old": permanent[key], "new": wanted[key]}
            for key in ("ports", "services") if permanent[key] != wanted[key]}


def _make_permanent(name, permanent, wanted):
    """Add the missing ports and services to the permanent zone, remove the others."""
    for key, option in (("ports", "port"), ("services", "service")):
        add = [x for x in wanted[key] if x not in permanent[key]]
        remove = [x for x in permanent[key] if x not in wanted[key]]
        # firewall-cmd takes one kind of action per call, repeated.
        if add:
            _firewall_cmd("--permanent", f"--zone={name}", *[f"--add-{option}={x}" for x in add])
        if remove:
            _firewall_cmd("--permanent", f"--zone={name}", *[f"--remove-{option}={x}" for x in remove])


def zone_present(name, ports=None, services=None):
    """
    The permanent zone ``name`` opens exactly ``ports`` and ``services``.

    name
        The firewalld zone; created when missing.
    ports
        List like ``["8883/tcp"]``; every other port is removed.
    services
        List of firewalld service names like ``["ssh"]``; every other
        service is removed.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    wanted = _wanted(ports, services)
    current = _read(name, ret, runtime=False)
    if current is None:
        return ret
    permanent = current["permanent"]
    if permanent == wanted:
        ret["comment"] = f"Zone {name} opens exactly {_shown(wanted)}"
        return ret

    if permanent is None:
        ret["changes"]["zone"] = {"old": None, "new": name}
        permanent = {"ports": [], "services": []}
    ret["changes"].update(_setting_changes(permanent, wanted))
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"Zone {name} would open exactly {_shown(wanted)} (permanent, then reload)"
        return ret

    try:
        if "zone" in ret["changes"]:
            _firewall_cmd("--permanent", f"--new-zone={name}")
        _make_permanent(name, permanent, wanted)
        _firewall_cmd("--reload")
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    ret["comment"] = f"Zone {name} now opens exactly {_shown(wanted)}; firewalld reloaded"
    return ret


def reloaded(name, ports=None, services=None):
    """
    The running zone ``name`` opens exactly ``ports`` and ``services``;
    otherwise reload firewalld (runtime := permanent) and check again.

    Arguments as for ``zone_present``, which keeps the permanent side.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    wanted = _wanted(ports, services)
    current = _read(name, ret, permanent=False)
    if current is None:
        return ret
    runtime = current["runtime"]
    if runtime == wanted:
        ret["comment"] = f"Running zone {name} opens exactly {_shown(wanted)}"
        return ret
    ret["changes"]["runtime"] = {"old": runtime, "new": wanted}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"Running zone {name} drifted; firewalld would be reloaded"
        return ret
    try:
        _firewall_cmd("--reload")
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    after = _read(name, ret, permanent=False)
    if after is None:
        return ret
    if after["runtime"] != wanted:
        ret["result"] = False
        still = _shown(after["runtime"]) if after["runtime"] else "nothing (no such zone)"
        ret["comment"] = (f"Running zone {name} opens {still} after a reload: its permanent "
                          f"configuration differs from the wanted one")
        return ret
    ret["comment"] = f"Running zone {name} drifted; firewalld reloaded"
    return ret
