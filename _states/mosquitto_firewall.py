"""
The formula's ports and services in a firewalld zone, in one of two modes.

``mode="exclusive"`` (firewall:mode, the default) keeps the permanent zone
exact: the wanted ports and services are added, every other port, service,
rich rule, protocol, source port and forward port is removed (the zone's
sources and interfaces say *whom* it applies to, not what it opens: they
stay), the zone is created when missing, and firewalld reloads after a
change, like Salt's ``firewalld.present`` with ``prune_ports`` and
``prune_services``.

``mode="shared"`` only adds: what other formulas, the distribution or an
operator put in the zone stays, and firewalld is not reloaded (a reload
would drop their runtime-only rules); the formula's additions go in at
runtime too.

In both modes the formula keeps a record (``record``, a JSON file of
``{zone: {"ports": [...], "services": [...]}}``) of what it added itself,
i.e. what was not there before it came. It removes only those later: shared
mode drops an addition it no longer wants (the exporter turned off), and
``zone_cleaned`` (clean.sls) removes the recorded ones. A port the operator
had open before the formula came is never recorded, so it stays open.

``reloaded`` compares the running zone with the wanted one (exclusive:
equal, shared: contains it) and puts right the drift: a reload in exclusive
mode, runtime additions in shared mode.

Every read goes through ``mosquitto_firewall.zone`` (D-Bus, milliseconds),
so a converged host runs no ``firewall-cmd`` at all; writes use
``firewall-cmd``. Under test=True each state reports exactly what it would
add and remove, with result None, and changes nothing.
"""

import json
import os

from salt.exceptions import CommandExecutionError

__virtualname__ = "mosquitto_firewall"

# What the formula opens; the rest of SETTINGS only exclusive mode touches.
OWN = ("ports", "services")
# The firewall-cmd option for each setting: --add-<option>= / --remove-<option>=.
OPTIONS = {"ports": "port", "services": "service", "rich_rules": "rich-rule",
           "protocols": "protocol", "source_ports": "source-port", "forward_ports": "forward-port"}
MODES = ("exclusive", "shared")
# Comments list services first, as firewall-cmd --list-all does.
SHOWN = ("services", "ports", "rich_rules", "protocols", "source_ports", "forward_ports")


def __virtual__():
    return __virtualname__


def _wanted(ports, services):
    wanted = {key: [] for key in OPTIONS}
    wanted.update(ports=sorted(set(ports or [])), services=sorted(set(services or [])))
    return wanted


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


def _items(settings, keys=SHOWN):
    return [x for key in keys for x in settings.get(key, [])]


def _shown(items):
    return ", ".join(items) or "nothing"


# --- the record of what the formula added --------------------------------


def _read_record(path):
    """The whole record ({zone: {"ports", "services"}}); {} when absent."""
    if not path or not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            record = json.load(fh)
    except (OSError, ValueError) as exc:
        raise CommandExecutionError(f"cannot read the firewall record {path}: {exc}") from exc
    if not isinstance(record, dict):
        raise CommandExecutionError(f"the firewall record {path} is not a JSON object")
    return record


def _write_record(path, record):
    """Write the record (root-only directory made here), or remove it when empty."""
    if not record:
        if os.path.exists(path):
            os.unlink(path)
        directory = os.path.dirname(path)
        if os.path.isdir(directory) and not os.listdir(directory):
            os.rmdir(directory)
        return
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    data = (json.dumps(record, indent=1, sort_keys=True) + "\n").encode()
    __utils__["mosquitto_files.atomic_write"](path, data, 0o644)


# --- planning: what to add and remove --------------------------------------


def _plan(current, wanted, mode, recorded):
    """({key: items to add}, {key: items to remove}) for the permanent zone."""
    add = {key: [x for x in wanted[key] if x not in current[key]] for key in OWN}
    if mode == "exclusive":
        remove = {key: [x for x in current[key] if x not in wanted[key]] for key in OPTIONS}
    else:
        # Only the formula's own additions it no longer wants.
        remove = {key: [x for x in recorded.get(key, []) if x in current[key] and x not in wanted[key]]
                  for key in OWN}
    return ({k: v for k, v in add.items() if v}, {k: v for k, v in remove.items() if v})


def _new_record(recorded, wanted, add):
    """What the formula will have added: earlier additions it still wants, plus this run's."""
    return {key: sorted({x for x in recorded.get(key, []) if x in wanted[key]} | set(add.get(key, [])))
            for key in OWN}


def _changes(current, add, remove):
    """Salt ``changes``: old and new list of each setting that changes."""
    changes = {}
    for key in OPTIONS:
        if key in add or key in remove:
            new = sorted((set(current[key]) - set(remove.get(key, []))) | set(add.get(key, [])))
            changes[key] = {"old": current[key], "new": new}
    return changes


def _apply(name, add, remove, *scope):
    """firewall-cmd per kind of setting and action (one kind per call)."""
    for action, plan in (("add", add), ("remove", remove)):
        for key, items in plan.items():
            _firewall_cmd(*scope, f"--zone={name}", *[f"--{action}-{OPTIONS[key]}={x}" for x in items])


def _plan_comment(name, add, remove, test):
    verb = ("would add", "would remove") if test else ("added", "removed")
    return f"Zone {name}: {verb[0]} {_shown(_items(add))}; {verb[1]} {_shown(_items(remove))}"


def _settled_comment(name, mode, current, wanted):
    if mode == "exclusive":
        return f"Zone {name} opens exactly {_shown(_items(wanted, SHOWN[:2]))}"
    others = len(_items(current)) - len(_items(wanted, OWN))
    return f"Zone {name} opens {_shown(_items(wanted, SHOWN[:2]))} (shared: {others} other openings left alone)"


def _check_mode(mode, ret):
    if mode in MODES:
        return True
    ret["result"] = False
    ret["comment"] = f"mode must be one of {', '.join(MODES)}, not {mode!r}"
    return False


def zone_present(name, ports=None, services=None, mode="exclusive", record=None):
    """
    The permanent zone ``name`` opens ``ports`` and ``services``.

    name
        The firewalld zone; created when missing.
    ports
        List like ``["8883/tcp"]``.
    services
        List of firewalld service names like ``["ssh"]``.
    mode
        ``exclusive``: every other opening is removed; ``shared``: nothing
        the formula did not add is removed.
    record
        Path of the record of what the formula added (see the module
        docstring); None keeps none.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if not _check_mode(mode, ret):
        return ret
    wanted = _wanted(ports, services)
    current = _read(name, ret, runtime=False)
    if current is None:
        return ret
    try:
        whole = _read_record(record)
    except CommandExecutionError as exc:
        return dict(ret, result=False, comment=str(exc))
    recorded = whole.get(name, {})
    created = current["permanent"] is None
    permanent = _wanted([], []) if created else current["permanent"]
    add, remove = _plan(permanent, wanted, mode, recorded)
    new_record = _new_record(recorded, wanted, add)

    if not (created or add or remove):
        if record and not __opts__["test"] and (name not in whole or new_record != recorded):
            # Bookkeeping only (first run of a formula that keeps a record,
            # or an addition someone else removed): nothing opens or closes.
            _write_record(record, dict(whole, **{name: new_record}))
        ret["comment"] = _settled_comment(name, mode, permanent, wanted)
        return ret

    if created:
        ret["changes"]["zone"] = {"old": None, "new": name}
    ret["changes"].update(_changes(permanent, add, remove))
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = _plan_comment(name, add, remove, test=True) + (
            " (permanent, then reload)" if mode == "exclusive" or created else " (permanent and runtime)")
        return ret

    try:
        if created:
            _firewall_cmd("--permanent", f"--new-zone={name}")
        _apply(name, add, remove, "--permanent")
        if record:
            _write_record(record, dict(whole, **{name: new_record}))
        if mode == "exclusive" or created:
            _firewall_cmd("--reload")
            done = "firewalld reloaded"
        else:
            # No reload: it would drop other rules made at runtime only.
            _apply(name, add, remove)
            done = "permanent and runtime, no reload"
    except CommandExecutionError as exc:
        ret["result"] = False
        ret["comment"] = str(exc)
        return ret
    ret["comment"] = f"{_plan_comment(name, add, remove, test=False)}; {done}"
    return ret


def reloaded(name, ports=None, services=None, mode="exclusive"):
    """
    The running zone ``name`` opens ``ports`` and ``services`` (exclusive:
    exactly those; shared: at least those). Drift is put right by a reload
    (exclusive: runtime := permanent) or by adding what is missing at
    runtime (shared: nobody else's runtime rules are dropped).

    Arguments as for ``zone_present``, which keeps the permanent side.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    if not _check_mode(mode, ret):
        return ret
    wanted = _wanted(ports, services)
    current = _read(name, ret, permanent=False)
    if current is None:
        return ret
    runtime = current["runtime"]
    if mode == "shared" and runtime is not None:
        return _runtime_added(ret, name, runtime, wanted)
    if runtime == wanted:
        ret["comment"] = f"Running zone {name} opens exactly {_shown(_items(wanted))}"
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
        still = _shown(_items(after["runtime"])) if after["runtime"] else "nothing (no such zone)"
        ret["comment"] = (f"Running zone {name} opens {still} after a reload: its permanent "
                          f"configuration differs from the wanted one")
        return ret
    ret["comment"] = f"Running zone {name} drifted; firewalld reloaded"
    return ret


def _runtime_added(ret, name, runtime, wanted):
    """Shared mode: add the wanted ports and services missing at runtime."""
    add, _ = _plan(runtime, wanted, "shared", {})
    if not add:
        ret["comment"] = f"Running zone {name} opens {_shown(_items(wanted, SHOWN[:2]))} (shared)"
        return ret
    ret["changes"]["runtime"] = {"added": _items(add)}
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"Running zone {name} lacks {_shown(_items(add))}; would add them at runtime"
        return ret
    try:
        _apply(name, add, {})
    except CommandExecutionError as exc:
        return dict(ret, changes={}, result=False, comment=str(exc))
    ret["comment"] = f"Running zone {name} lacked {_shown(_items(add))}; added at runtime (no reload)"
    return ret


def zone_cleaned(name, record, fallback_ports=None, keep=("ssh",)):
    """
    Remove from zone ``name`` (permanent and runtime, no reload) what the
    formula added there, as ``record`` lists it, then its record.

    fallback_ports
        Removed when the record has no entry for the zone (a zone managed by
        a formula version that kept no record); give them only where the
        formula owned the zone (exclusive mode).
    keep
        Services never removed: ssh, which could lock the operator out.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        whole = _read_record(record)
    except CommandExecutionError as exc:
        return dict(ret, result=False, comment=str(exc))
    entry = whole.get(name, {"ports": list(fallback_ports or []), "services": []})
    ours = {"ports": entry.get("ports", []), "services": [s for s in entry.get("services", []) if s not in keep]}
    current = _read(name, ret)
    if current is None:
        return ret
    sides = {side: {key: [x for x in ours[key] if x in (current[side] or {}).get(key, [])] for key in OWN}
             for side in ("permanent", "runtime")}
    gone = sorted(set(_items(sides["permanent"])) | set(_items(sides["runtime"])))
    if not gone:
        if name in whole and not __opts__["test"]:
            _write_record(record, {k: v for k, v in whole.items() if k != name})
        ret["comment"] = f"Zone {name} holds nothing the formula added"
        return ret
    ret["changes"]["removed"] = gone
    if __opts__["test"]:
        ret["result"] = None
        ret["comment"] = f"Zone {name}: would remove {_shown(gone)} (what the formula added)"
        return ret
    try:
        _apply(name, {}, {k: v for k, v in sides["permanent"].items() if v}, "--permanent")
        _apply(name, {}, {k: v for k, v in sides["runtime"].items() if v})
        _write_record(record, {k: v for k, v in whole.items() if k != name})
    except CommandExecutionError as exc:
        return dict(ret, changes={}, result=False, comment=str(exc))
    ret["comment"] = f"Zone {name}: removed {_shown(gone)} (what the formula added); no reload"
    return ret
