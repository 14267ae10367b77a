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

import time

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


def _cluster_bridge(cluster, wait):
    """The spoke's bridge to the hub: the hub's address from the mine
    (waited for on a first fleet run), the password from the spoke's own
    secret file. Returns (name, settings) or raises."""
    mod = "mosquitto_cluster"
    hub = cluster["hub"]
    deadline = time.monotonic() + float(wait)
    while True:
        address = __salt__[f"{mod}.hub_of"](hub)
        if address is not None:
            break
        if __opts__["test"] or time.monotonic() > deadline:
            if __opts__["test"]:
                address = {"domain": f"{hub}.unpublished.invalid", "port": 8883}
                break
            raise CommandExecutionError(f"cluster hub {hub} has not published its address in the "
                                        f"mine (waited {wait} s): apply the formula on {hub}")
        time.sleep(3)
    secret = __salt__["mosquitto_bridge.read_secret"](cluster["secret_file"])
    if secret is None:
        if not __opts__["test"]:
            raise CommandExecutionError(f"cluster bridge secret {cluster['secret_file']} is missing")
        secret = "not-generated-yet"
    options = {"remote_clientid": cluster["remote_clientid"], "try_private": True,
               "restart_timeout": cluster["restart_timeout"]}
    return cluster["bridge"], {
        "address": [f"{address['domain']}:{address['port']}"],
        "topics": list(cluster["topics"]),
        "remote_username": cluster["username"],
        "remote_password": secret,
        "tls": True, "cleansession": False, "notifications": True,
        "keepalive_interval": int(cluster["keepalive_interval"]),
        "options": options,
    }


def _summary(changes):
    return "; ".join(f"{key} {', '.join(names)}" for key, names in changes.items())


def managed(name, bridges, ca_cert=None, tls_version="tlsv1.2", user="root",
            group="mosquitto", mode="0640", cluster=None, wait=300):
    """
    Make directory ``name`` hold one ``<bridge>.conf`` per entry of ``bridges``
    and nothing else ending in ``.conf``.

    bridges
        Bridge name -> settings as mosquitto_config.validate returns them,
        with ``remote_password`` given as ``remote_password_pillar`` (a pillar
        key, ``:`` nested) or ``remote_password_file`` (a root-only file on
        this host) instead of a value.

    cluster
        On a cluster spoke: {hub, bridge, topics, username, remote_clientid,
        keepalive_interval, restart_timeout, secret_file}. Adds the bridge to
        the hub, whose address is read from the Salt mine (waited for up to
        ``wait`` seconds) and whose password is the spoke's generated secret.
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    options = dict(ca_cert=ca_cert, tls_version=tls_version, user=user, group=group, mode=mode)
    try:
        resolved = {bridge: _resolve(bridge, spec) for bridge, spec in (bridges or {}).items()}
        if cluster:
            bridge, spec = _cluster_bridge(cluster, wait)
            resolved[bridge] = spec
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
