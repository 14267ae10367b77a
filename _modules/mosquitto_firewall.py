"""
Read a firewalld zone's ports and services, permanent and runtime, cheaply.

Every ``firewall-cmd`` is a Python program that imports firewalld's client
library and talks D-Bus: about 0.3 s each on a small host, and Salt's
``firewalld.present`` plus a drift check ran eight of them on every no-op
apply. firewalld's own D-Bus API answers the same questions; ``busctl``
(systemd's D-Bus client, a C program on every systemd host) asks them in
about 10 ms each, with JSON output. Writes (rare: only on drift) still go
through ``firewall-cmd``, see ``_states/mosquitto_firewall.py``.
"""

import json

__virtualname__ = "mosquitto_firewall"

BUS_NAME = "org.fedoraproject.FirewallD1"
RUNTIME_PATH = "/org/fedoraproject/FirewallD1"
CONFIG_PATH = "/org/fedoraproject/FirewallD1/config"


def __virtual__():
    return __virtualname__


def _busctl(*args):
    """(ok, parsed JSON or error text) of one ``busctl --json=short`` call."""
    if not __salt__["cmd.which"]("busctl"):
        return False, "busctl not found (firewalld needs systemd's D-Bus tools here)"
    res = __salt__["cmd.run_all"](
        ["busctl", "--json=short", *args],
        python_shell=False,
        ignore_retcode=True,
        output_loglevel="quiet",
    )
    if res["retcode"] != 0:
        return False, (res.get("stderr") or res.get("stdout") or "").strip()
    return True, json.loads(res["stdout"])


# What a zone can open besides ports and services. The formula never opens
# these; firewall:mode exclusive prunes them (so only what the formula opens
# is open), shared leaves them to whoever put them there.
OTHER_OPENINGS = ("rich_rules", "protocols", "source_ports", "forward_ports")
SETTINGS = ("ports", "services") + OTHER_OPENINGS


def _forward_port(port, proto, toport, toaddr):
    """firewall-cmd's --add-forward-port= value of one ``(ssss)`` entry."""
    text = f"port={port}:proto={proto}"
    if toport:
        text += f":toport={toport}"
    if toaddr:
        text += f":toaddr={toaddr}"
    return text


def parse_settings(reply):
    """Each of SETTINGS as a sorted list, from a zone's ``a{sv}`` settings.

    firewalld leaves out empty entries; every value is returned as
    firewall-cmd takes it in ``--add-<what>=``/``--remove-<what>=`` (ports
    ``8883/tcp``, rich rules as their text), so a state can remove exactly
    what it read.
    """
    settings = reply["data"][0]

    def data(key):
        return settings.get(key, {}).get("data", [])

    return {
        "ports": sorted(f"{port}/{proto}" for port, proto in data("ports")),
        "services": sorted(data("services")),
        "rich_rules": sorted(data("rules_str")),
        "protocols": sorted(data("protocols")),
        "source_ports": sorted(f"{port}/{proto}" for port, proto in data("source_ports")),
        "forward_ports": sorted(_forward_port(*entry) for entry in data("forward_ports")),
    }


def running():
    """True when firewalld answers on D-Bus (what ``firewall-cmd --state`` checks)."""
    if "mosquitto_firewall.running" not in __context__:
        ok, out = _busctl("get-property", BUS_NAME, RUNTIME_PATH, BUS_NAME, "state")
        __context__["mosquitto_firewall.running"] = bool(ok and out.get("data") == "RUNNING")
    return __context__["mosquitto_firewall.running"]


def zone(name, permanent=True, runtime=True):
    """
    The openings (SETTINGS) of zone ``name``, permanent and at runtime.

    Returns ``{"permanent": {...} or None, "runtime": {...} or None}``
    (None: no such zone there), each side only when asked for. Raises
    CommandExecutionError when firewalld does not answer.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_firewall.zone public
    """
    from salt.exceptions import CommandExecutionError  # pylint: disable=import-outside-toplevel

    found = {}
    if permanent:
        ok, out = _busctl("call", BUS_NAME, CONFIG_PATH, BUS_NAME + ".config", "getZoneByName", "s", name)
        if ok:
            ok, out = _busctl("call", BUS_NAME, out["data"][0], BUS_NAME + ".config.zone", "getSettings2")
        found["permanent"] = _settings_or_none(ok, out, name, CommandExecutionError)
    if runtime:
        ok, out = _busctl("call", BUS_NAME, RUNTIME_PATH, BUS_NAME + ".zone", "getZoneSettings2", "s", name)
        found["runtime"] = _settings_or_none(ok, out, name, CommandExecutionError)
    return found


def _settings_or_none(ok, out, name, error):
    if ok:
        return parse_settings(out)
    if "INVALID_ZONE" in out:
        return None
    raise error(f"firewalld did not answer for zone {name!r}: {out}")
