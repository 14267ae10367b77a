"""
Mosquitto bridge sections, one file per bridge, in a directory of their own
that mosquitto.conf includes (``include_dir``).

Why a directory of files and not a template in mosquitto.conf: a bridge's
``remote_password`` must not travel as template context or show up in a
``file.managed`` diff. Mosquitto 2.0 includes directories only (every
``*.conf`` in it, sorted), and a bridge option belongs to the section of the
``connection`` line above it, so each file holds exactly one whole section
that starts with its ``connection`` line: files cannot bleed into each other.

This module is the one place that turns a bridge's settings into its
``connection`` section (:py:func:`render_section`): pillar bridges and any
bridges the formula derives itself go through it. Passwords reach it as
values at run time (the ``mosquitto_bridge.managed`` state reads them from
pillar or a root-only file); nothing here logs or returns them.
"""

import hmac
import os
import re

import salt.utils.files
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "mosquitto_bridge"

_OPTION = re.compile(r"^[a-z][a-z0-9_]*\Z")
_KNOWN = {
    "address", "topics", "remote_username", "remote_password", "tls",
    "cleansession", "notifications", "keepalive_interval", "options",
}
# Written from the bridge's own keys (or tls): refused again under options.
_WRITTEN = {
    "connection", "address", "addresses", "topic", "cleansession", "notifications",
    "keepalive_interval", "remote_username", "remote_password", "bridge_cafile",
    "bridge_tls_version",
}
SUFFIX = ".conf"


def __virtual__():
    if "mosquitto_files.atomic_write" not in __utils__ or "mosquitto_names.is_bridge_name" not in __utils__:
        return (False, "mosquitto_bridge needs the formula's _utils (run saltutil.sync_all)")
    return __virtualname__


def _line_value(name, key, value):
    """One config value as text; mosquitto's format has no escaping."""
    if value is True or value is False:
        return "true" if value else "false"
    text = str(value)
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        # The value may be a password: name the option, never the value.
        raise SaltInvocationError(f"bridge {name!r}: {key} holds a line break or control character")
    if text != text.strip(" "):
        # mosquitto trims blanks around a value: ' pw' would log in as 'pw'.
        raise SaltInvocationError(f"bridge {name!r}: {key} starts or ends with a blank, "
                                  "which mosquitto would drop")
    return text


def _checked_addresses(name, bridge):
    """The bridge's name and keys checked; its address(es) as a list."""
    if not __utils__["mosquitto_names.is_bridge_name"](name):
        raise SaltInvocationError(f"bridge name {name!r}: use letters, digits, '_', '.', '-'")
    unknown = set(bridge) - _KNOWN
    if unknown:
        raise SaltInvocationError(f"bridge {name!r}: unknown keys {sorted(unknown)}")
    addresses = bridge.get("address") or []
    addresses = addresses if isinstance(addresses, list) else [addresses]
    if not addresses or not bridge.get("topics"):
        raise SaltInvocationError(f"bridge {name!r}: needs an address and at least one topic")
    return addresses


def _connection_lines(name, bridge, addresses):
    """The section's header, addresses, topics and link settings."""
    def val(key, value):
        return _line_value(name, key, value)

    lines = [
        f"# Managed by Salt (mosquitto-formula): bridge {name}.",
        "# Read only when the broker starts: a change restarts it.",
        f"connection {name}",
        "address " + " ".join(val("address", a) for a in addresses),
    ]
    lines += [f"topic {val('topic', t)}" for t in bridge["topics"]]
    lines += [
        f"cleansession {val('cleansession', bool(bridge.get('cleansession', False)))}",
        f"notifications {val('notifications', bool(bridge.get('notifications', True)))}",
        f"keepalive_interval {val('keepalive_interval', int(bridge.get('keepalive_interval', 60)))}",
    ]
    return lines


def _credential_lines(name, bridge):
    """remote_username and remote_password, both or neither."""
    if ("remote_username" in bridge) != ("remote_password" in bridge):
        raise SaltInvocationError(f"bridge {name!r}: remote_username and remote_password go together")
    if "remote_username" not in bridge:
        return []
    return [f"remote_username {_line_value(name, 'remote_username', bridge['remote_username'])}",
            f"remote_password {_line_value(name, 'remote_password', bridge['remote_password'])}"]


def _tls_lines(name, bridge, ca_cert, tls_version):
    """With tls (the default): verify the remote against ca_cert."""
    if not bridge.get("tls", True):
        return []
    if not ca_cert:
        raise SaltInvocationError(f"bridge {name!r}: tls needs ca_cert")
    return [f"bridge_cafile {_line_value(name, 'ca_cert', ca_cert)}",
            f"bridge_tls_version {_line_value(name, 'tls_version', tls_version)}"]


def _option_lines(name, bridge):
    """Further bridge options, sorted; a list value is one line per item."""
    lines = []
    for key, value in sorted((bridge.get("options") or {}).items()):
        if not isinstance(key, str) or not _OPTION.match(key) or key in _WRITTEN:
            raise SaltInvocationError(f"bridge {name!r}: option {key!r} is not allowed under options")
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{key} {_line_value(name, key, item)}")
    return lines


def render_section(name, bridge, ca_cert=None, tls_version="tlsv1.2"):
    """
    The ``connection`` section of bridge ``name`` as mosquitto.conf text.

    bridge
        Validated settings (mosquitto_config.validate's ``bridges:<name>``):
        address (list), topics, cleansession, notifications,
        keepalive_interval, tls, options, and optionally remote_username
        with remote_password (the plain value, already resolved).

    ca_cert, tls_version
        With ``tls`` the remote is verified against ``ca_cert`` with at
        least ``tls_version``.
    """
    addresses = _checked_addresses(name, bridge)
    lines = _connection_lines(name, bridge, addresses)
    lines += _credential_lines(name, bridge)
    lines += _tls_lines(name, bridge, ca_cert, tls_version)
    lines += _option_lines(name, bridge)
    return "\n".join(lines) + "\n"


def _owner(user, group):
    try:
        return __utils__["mosquitto_files.owner_ids"](user, group)
    except CommandExecutionError as exc:
        raise CommandExecutionError(f"cannot own bridge files as {user}:{group}: {exc}") from None


def _read(path):
    try:
        with salt.utils.files.fopen(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CommandExecutionError(f"cannot read {path}: {exc}") from exc


def plan(directory, bridges, ca_cert=None, tls_version="tlsv1.2", user="root",
         group="mosquitto", mode="0640", _owner_ids=None):
    """
    What :py:func:`manage` would change in ``directory``, without changing it.

    Returns ``added``, ``updated``, ``removed``, ``unchanged`` and
    ``permissions`` (bridge names only: never a line of a file) and
    ``changed``. ``removed`` are ``*.conf`` files of bridges no longer given
    (the directory belongs to the formula).
    """
    if _owner_ids is None:
        try:
            _owner_ids = _owner(user, group)
        except CommandExecutionError:
            # A dry run before the package made the group: nothing to compare.
            _owner_ids = (None, None)
    return _plan(directory, bridges, ca_cert, tls_version, user, group, mode, _owner_ids)[0]


def _plan(directory, bridges, ca_cert, tls_version, user, group, mode, owner_ids):
    if not isinstance(bridges, dict):
        raise SaltInvocationError("bridges must be a mapping of bridge name to settings")
    want_mode = __utils__["mosquitto_files.normalize_mode"](mode)
    uid, gid = owner_ids if owner_ids else _owner(user, group)
    wanted = {name: render_section(name, spec, ca_cert, tls_version).encode("utf-8")
              for name, spec in bridges.items()}
    report = {"added": [], "updated": [], "removed": [], "unchanged": [], "permissions": []}
    for name in sorted(wanted):
        path = os.path.join(directory, name + SUFFIX)
        current = _read(path)
        if current is None:
            report["added"].append(name)
            continue
        # Constant time: the contents hold a password.
        if not hmac.compare_digest(current, wanted[name]):
            report["updated"].append(name)
        else:
            report["unchanged"].append(name)
        if __utils__["mosquitto_files.attr_changes"](path, uid, gid, want_mode):
            report["permissions"].append(name)
    if os.path.isdir(directory):
        for entry in sorted(os.listdir(directory)):
            if entry.endswith(SUFFIX) and entry[: -len(SUFFIX)] not in wanted:
                report["removed"].append(entry[: -len(SUFFIX)])
    report["changed"] = any(report[k] for k in ("added", "updated", "removed", "permissions"))
    return report, wanted, (uid, gid, want_mode)


def manage(directory, bridges, ca_cert=None, tls_version="tlsv1.2", user="root",
           group="mosquitto", mode="0640"):
    """
    Make ``directory`` hold exactly one ``<name>.conf`` per bridge.

    Files are written atomically with their owner and mode (root:mosquitto
    0640: the broker reads them as root at start and as mosquitto on a
    reload), and only when their text differs. Returns the report of
    :py:func:`plan`, which names bridges, never their contents.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_bridge.manage /etc/mosquitto/bridges.d \\
            '{"site-b": {"address": ["b:8883"], "topics": ["a/# out 1"], "tls": false}}'
    """
    if not os.path.isdir(directory):
        raise CommandExecutionError(f"bridge directory {directory} does not exist")
    report, wanted, (uid, gid, mode) = _plan(directory, bridges, ca_cert, tls_version,
                                              user, group, mode, None)
    try:
        for name in report["added"] + report["updated"]:
            __utils__["mosquitto_files.atomic_write"](os.path.join(directory, name + SUFFIX),
                                                      wanted[name], mode, uid, gid)
        for name in report["permissions"]:
            if name not in report["updated"]:
                __utils__["mosquitto_files.set_attrs"](os.path.join(directory, name + SUFFIX), uid, gid, mode)
        for name in report["removed"]:
            os.unlink(os.path.join(directory, name + SUFFIX))
        if report["removed"]:
            __utils__["mosquitto_files.fsync_dir"](directory)
    except OSError as exc:
        raise CommandExecutionError(f"cannot write bridge files in {directory}: {exc}") from exc
    return report


def read_secret(path):
    """
    The secret in a root-only file (blanks stripped), or None; never logged
    (the one reader: _utils/mosquitto_files.py).

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_bridge.read_secret /etc/mosquitto/cluster/bridge.secret
    """
    return __utils__["mosquitto_files.read_secret"](path)
