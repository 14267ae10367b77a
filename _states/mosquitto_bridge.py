"""
Bridge sections in their own directory (mosquitto.conf includes it), with
credentials that never become state data.

.. code-block:: yaml

    /etc/mosquitto/bridges.d:
      mosquitto_bridge.managed:
        - ca_cert: /etc/mosquitto/certs/ca.crt
        - bridges:
            site-b:
              address: [mqtt-b.example.com:8883]
              topics: ['sensors/# out 1']
              remote_username: bridge-a
              # read while the state runs, never an argument:
              remote_password_pillar: 'mosquitto:bridges:site-b:remote_password'
            site-c:
              address: [mqtt-c.example.com:8883]
              topics: ['sensors/# out 1']
              remote_username: bridge-a
              remote_password_file: /etc/mosquitto/bridge-c.secret   # root-only

``changes`` name bridges only (``{"bridges": {"updated": ["site-b"]}}``):
no diff, no line of a file, so a password change is visible as "site-b
changed" and nothing more. The broker reads bridges only at start: watch
this state to restart it.
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "mosquitto_bridge"

_REFS = ("remote_password_pillar", "remote_password_file")


def __virtual__():
    if "mosquitto_bridge.manage" in __salt__:
        return __virtualname__
    return (False, "the mosquitto_bridge execution module is not available")


def _resolve(name, spec):
    """Replace a remote_password reference by its value (never shown)."""
    if not isinstance(spec, dict):
        raise SaltInvocationError(f"bridge {name!r}: settings must be a mapping")
    refs = [key for key in _REFS if key in spec]
    if not refs:
        return spec
    if len(refs) > 1 or "remote_password" in spec:
        raise SaltInvocationError(
            f"bridge {name!r}: give one of remote_password_pillar or remote_password_file"
        )
    ref = refs[0]
    out = {k: v for k, v in spec.items() if k != ref}
    if ref == "remote_password_pillar":
        # From __pillar__ itself: pillar.get masks values outside rendering.
        value = __utils__["mosquitto_pillar.plain_value"](__pillar__, spec[ref])
        where = f"pillar key {spec[ref]}"
    else:
        value = __salt__["mosquitto_bridge.read_secret"](spec[ref])
        where = f"password file {spec[ref]}"
    if not isinstance(value, str) or not value:
        raise CommandExecutionError(f"bridge {name!r}: {where} is missing, empty or not a string")
    out["remote_password"] = value
    return out


def _summary(changes):
    return "; ".join(f"{key} {', '.join(names)}" for key, names in changes.items())


def managed(name, bridges, ca_cert=None, tls_version="tlsv1.2", user="root",
            group="mosquitto", mode="0640"):
    """
    Make directory ``name`` hold one ``<bridge>.conf`` per entry of ``bridges``
    and nothing else ending in ``.conf``.

    bridges
        Bridge name -> settings as mosquitto_config.validate returns them,
        with ``remote_password`` given as ``remote_password_pillar`` (a pillar
        key, ``:`` nested) or ``remote_password_file`` (a root-only file on
        this host) instead of a value.
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    options = dict(ca_cert=ca_cert, tls_version=tls_version, user=user, group=group, mode=mode)
    try:
        resolved = {bridge: _resolve(bridge, spec) for bridge, spec in (bridges or {}).items()}
        if __opts__["test"]:
            report = __salt__["mosquitto_bridge.plan"](name, resolved, **options)
        else:
            report = __salt__["mosquitto_bridge.manage"](name, resolved, **options)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["comment"] = f"Bridges in {name}: {exc}"
        return ret
    changes = {key: report[key] for key in ("added", "updated", "removed", "permissions") if report[key]}
    if not changes:
        ret.update(result=True, comment=f"Bridges in {name} are up to date ({len(report['unchanged'])})")
    elif __opts__["test"]:
        ret.update(result=None, changes={"bridges": changes},
                   comment=f"Bridges in {name} would change: {_summary(changes)}")
    else:
        ret.update(result=True, changes={"bridges": changes},
                   comment=f"Bridges in {name} changed: {_summary(changes)}")
    return ret
