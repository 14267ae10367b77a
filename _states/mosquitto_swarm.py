"""
The broker (or a cluster's hub and spokes) as a stack on a Docker swarm,
deployed from a manager (swarm mode, ``mosquitto/swarm/``).

.. code-block:: yaml

    mosquitto:
      mosquitto_swarm.stack_deployed:
        - brokers: {hub: {name: mqtt1.example.com, role: hub, configs: {...}, secrets: {...}, publish: 0}}
        - settings: {image: eclipse-mosquitto:2.0.18, uid: 1883, gid: 1883, ...}

Arguments are paths and settings, never contents: the module reads the
manager's files while it runs. ``changes`` name objects only (a config's
or secret's name carries a hash of its content, never the content).
Under test=True the result is None with the same changes a real run
would make: a file a state before this one would rewrite counts with the
content it would get (file.managed's diff applied), and where that
content cannot be known before it is written (a password file, a key, a
first run) the new object is named ``<stack>_<broker>_<kind>_pending``.
A converged stack changes nothing.
"""
from salt.exceptions import CommandExecutionError

__virtualname__ = "mosquitto_swarm"


def __virtual__():
    if "mosquitto_swarm.deploy" in __salt__:
        return __virtualname__
    return (False, "the mosquitto_swarm execution module is not available (Docker SDK?)")


def _summary(changes):
    parts = []
    for kind, verbs in sorted(changes.items()):
        for verb, names in sorted(verbs.items()):
            parts.append(f"{kind} {verb}: {', '.join(names)}")
    return "; ".join(parts)


def _not_manager(ret):
    try:
        if __salt__["mosquitto_swarm.manager"]():
            return None
        why = "this minion's Docker engine is not a swarm manager (docker swarm init, or apply on a manager)"
    except Exception as exc:  # pylint: disable=broad-except
        why = f"cannot reach the Docker engine: {exc}"
    ret["comment"] = f"Stack {ret['name']}: {why}"
    return ret


def stack_deployed(name, brokers, settings, subnet="", wait=120):
    """
    Make the swarm run stack ``name``: per broker a service, its configs,
    secrets and volume, on one overlay network (see the execution module's
    ``deploy``). Services roll one at a time, stop-first, the hub last.
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    if _not_manager(ret):
        return ret
    try:
        if __opts__["test"]:
            # The files states before this one only said what they would
            # write: their planned contents name the new objects.
            parts = list(brokers.values()) + [b["exporter"] for b in brokers.values() if b.get("exporter")]
            paths = [p for b in parts for p in (*b["configs"].values(), *b["secrets"].values())]
            pending = __utils__["mosquitto_swarm.pending_contents"](globals().get("__running__") or {}, paths)
            planned = __salt__["mosquitto_swarm.plan"](name, brokers, settings, pending=pending)
            changes = planned["changes"]
        else:
            changes = __salt__["mosquitto_swarm.deploy"](name, brokers, settings, subnet=subnet, wait=wait)
    except CommandExecutionError as exc:
        ret["comment"] = f"Stack {name}: {exc}"
        return ret
    except Exception as exc:  # pylint: disable=broad-except
        # docker.errors.APIError and the like: the engine's message names
        # objects and fields, never a secret's content (never sent back).
        ret["comment"] = f"Stack {name}: the engine refused: {exc}"
        return ret
    if not changes:
        ret.update(result=True, comment=f"Stack {name} is up to date ({len(brokers)} brokers)")
    elif __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"Stack {name} would change: {_summary(changes)}")
    else:
        ret.update(result=True, changes=changes, comment=f"Stack {name} changed: {_summary(changes)}")
    return ret


def stack_absent(name, wait=120):
    """
    Remove stack ``name`` from the swarm: its services (their tasks gone),
    configs, secrets, network and volumes.
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    try:
        there = __salt__["mosquitto_swarm.objects"](name)
    except Exception as exc:  # pylint: disable=broad-except
        ret["comment"] = f"Stack {name}: cannot reach the Docker engine: {exc}"
        return ret
    if not there:
        ret.update(result=True, comment=f"Stack {name} is absent")
        return ret
    changes = {kind: {"removed": names} for kind, names in there.items()}
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"Stack {name} would be removed: {_summary(changes)}")
        return ret
    try:
        __salt__["mosquitto_swarm.remove"](name, wait=wait)
    except Exception as exc:  # pylint: disable=broad-except
        ret["comment"] = f"Stack {name}: {exc}"
        return ret
    ret.update(result=True, changes=changes, comment=f"Stack {name} removed: {_summary(changes)}")
    return ret
