"""
Validate the mosquitto formula's merged settings, once, before any state runs.

map.jinja merges parameters/ and the ``mosquitto`` pillar into one dict and
passes it to :py:func:`validate`. Every problem raises
``CommandExecutionError`` with the pillar key path and what is wrong
(``mosquitto:users:bob:password: missing``), so a bad pillar fails the
render and nothing on the host changes.

The allowlists below are the schema: an unknown key is an error, never a
silent no-op. Mosquitto's config has no escaping, so no value may hold a
line break.
"""

import copy
import ipaddress
import os.path
import re
import resource

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "mosquitto_config"

_DURATION = re.compile(r"^[0-9]+[hdwmy]$")
_OPTION = re.compile(r"^[a-z][a-z0-9_.]*$")
_ACCESS = ("read", "write", "readwrite", "deny")
_TLS_VERSIONS = ("tlsv1.2", "tlsv1.3")
# tls:profile -> TLS 1.2 suites (OpenSSL names) for the listener's `ciphers`.
# intermediate: Mozilla's "intermediate" without its DHE suites: ECDHE key
# exchange with AEAD ciphers only (no CBC, no SHA-1 MAC), for ECDSA and RSA
# server keys. modern: TLS 1.3 only, whose suites OpenSSL picks well.
TLS_PROFILES = {
    "intermediate": ":".join([
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ]),
    "modern": "",
}
_KEY_TYPES = ("ec", "rsa")

# mosquitto.conf options the formula writes itself: setting them again under
# `config` would duplicate them (the broker refuses some duplicates).
_OWNED_OPTIONS = {
    "listener": "ports / listeners",
    "port": "ports / listeners",
    "bind_address": "listeners",
    "allow_anonymous": "(always false: authentication is required)",
    "password_file": "users",
    "acl_file": "users:<name>:acl",
    "pid_file": "lookup:paths:pid_file",
    "persistence": "persistence:enabled",
    "persistence_location": "persistence:location",
    "autosave_interval": "persistence:autosave_interval",
    "autosave_on_changes": "persistence:autosave_on_changes",
    "log_dest": "lookup:paths:log_file",
    "include_dir": "lookup:paths:include_dir",
    "max_keepalive": "max_keepalive",
    "max_queued_messages": "queue:max_queued_messages",
    "persistent_client_expiration": "queue:persistent_client_expiration",
    "cafile": "tls", "certfile": "tls", "keyfile": "tls",
    "tls_version": "listeners:mqtts:tls_version",
    "ciphers": "tls:profile",
    "connection": "bridges",
    "user": "lookup:service:user",
    "max_connections": "listeners:mqtts:max_connections",
    # The formula writes `per_listener_settings false`: authentication and
    # ACLs are global, and options below are placed on that assumption.
    "per_listener_settings": "(always false: users and ACLs apply to every listener)",
}

# Bridge options the formula writes from a bridge's own keys, and secrets
# that would become state arguments under `options`.
_BRIDGE_OWNED = {
    key: "bridges:<name> keys" for key in (
        "connection", "address", "addresses", "topic", "cleansession", "notifications",
        "keepalive_interval", "remote_username", "remote_password", "bridge_cafile",
        "bridge_tls_version")
}
_BRIDGE_OWNED["bridge_psk"] = "(not supported: a secret under options would be a state argument)"

# File descriptors the broker keeps for itself besides its clients: stdio,
# epoll, listening sockets, log, persistence saves, libwrap's look at
# /etc/hosts.allow, bridges and a few loopback clients (the exporter).
FD_RESERVE = 64

# Options that belong to one listener (mosquitto.conf(5) 2.0, "Listeners"),
# allowed under listeners:<name>:options. The formula writes listener, port,
# bind_address, cafile, certfile, keyfile, tls_version, ciphers (tls:profile)
# and the TLS listener's max_connections (sized with limits:open_files) itself.
_LISTENER_OPTIONS = {
    "bind_interface", "http_dir", "max_qos", "max_topic_alias",
    "mount_point", "protocol", "socket_domain", "use_username_as_clientid",
    "websockets_headers_size",
}
# Certificate options that only make sense on the TLS listener.
_TLS_LISTENER_OPTIONS = {
    "ciphers_tls1.3", "crlfile", "dhparamfile", "require_certificate",
    "use_identity_as_username", "use_subject_as_username",
}
# Under `config` (written before the first listener) a per-listener option
# would configure mosquitto's default listener on 1883 instead: refused there.
_PER_LISTENER = _LISTENER_OPTIONS | _TLS_LISTENER_OPTIONS | {"max_connections", "ciphers", "capath", "psk_hint", "tls_engine",
                                                           "tls_engine_kpass_sha1", "tls_keyform"}

_TOP_KEYS = {
    "domain", "ports", "listeners", "users", "acl_patterns", "max_keepalive", "limits",
    "queue", "persistence", "tls", "bridges", "config", "exporter",
    "firewall", "paths", "pkg", "service", "tofs", "container", "cluster",
}
_USER_KEYS = {"password", "password_hash", "acl"}
_POLICY_KEYS = {"minions", "dns_names", "ip_networks", "max_days"}
_BRIDGE_KEYS = {
    "address", "topics", "remote_username", "remote_password", "tls",
    "cleansession", "notifications", "keepalive_interval", "options",
}


class _Errors:
    """Collects every problem, so one run names them all."""

    def __init__(self):
        self.items = []

    def add(self, path, problem):
        self.items.append(f"mosquitto:{':'.join(str(p) for p in path)}: {problem}")

    def raise_if_any(self):
        if self.items:
            raise CommandExecutionError(
                "invalid mosquitto pillar (nothing was changed):\n  - "
                + "\n  - ".join(self.items)
            )


def __virtual__():
    # The name rules are the formula's _utils: without them (modules synced
    # but not utils) map.jinja says to run saltutil.sync_all.
    if "mosquitto_names.is_dns_name" not in __utils__:
        return (False, "mosquitto_config needs the formula's _utils (run saltutil.sync_all)")
    return __virtualname__


def _dirname(path):
    return os.path.dirname(str(path or "").rstrip("/")) or None


def _unknown_keys(errors, path, data, allowed):
    if not isinstance(data, dict):
        errors.add(path, f"must be a mapping, got {type(data).__name__}")
        return False
    for key in sorted(set(data) - set(allowed), key=str):
        errors.add(path + [key], f"unknown key (known: {', '.join(sorted(allowed))})")
    return True


def _text(errors, path, value, empty=False):
    """A single-line string (mosquitto's config cannot escape newlines)."""
    if not isinstance(value, str):
        errors.add(path, f"must be a string, got {type(value).__name__}")
        return False
    if not empty and not value.strip():
        errors.add(path, "must not be empty")
        return False
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        errors.add(path, "must not contain line breaks or control characters")
        return False
    return True


def _int(errors, path, value, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        errors.add(path, f"must be an integer, got {value!r}")
        return False
    if not low <= value <= high:
        errors.add(path, f"must be between {low} and {high}, got {value}")
        return False
    return True


def _bool(errors, path, value):
    if not isinstance(value, bool):
        errors.add(path, f"must be true or false, got {value!r}")
        return False
    return True


def _choice(errors, path, value, choices):
    if value not in choices:
        errors.add(path, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
        return False
    return True


def _abspath(errors, path, value, empty=False):
    if value == "" and empty:
        return True
    if _text(errors, path, value) and not value.startswith("/"):
        errors.add(path, f"must be an absolute path, got {value!r}")


def _list(errors, path, value):
    if not isinstance(value, list):
        errors.add(path, f"must be a list, got {type(value).__name__}")
        return []
    return value


def is_dns_name(name):
    """True for a host name usable in a certificate SAN (lower case): the
    rule the CA signs by too (_utils/mosquitto_names.py)."""
    return __utils__["mosquitto_names.is_dns_name"](name)


def _dns(errors, path, value):
    if not isinstance(value, str) or not value.strip():
        errors.add(path, "must be a DNS name such as mqtt.example.com, got "
                   + (repr(value) if value != "" else "an empty value"))
        return None
    name = value.strip().lower()
    if not is_dns_name(name):
        errors.add(path, f"is not a valid DNS name: {value!r}")
        return None
    return name


def _ip(errors, path, value):
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        errors.add(path, f"is not an IP address: {value!r}")
        return None


def _bind_address(errors, path, value):
    if value == "":
        return
    if not isinstance(value, str):
        errors.add(path, f"must be an IP address or '', got {value!r}")
        return
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not is_dns_name(value):
            errors.add(path, f"must be an IP address, a host name or '' (all), got {value!r}")


def check_username(name):
    """Mosquitto's password-file rule, from mosquitto_passwd.check_username
    (the one copy of it): None when fine, else what is wrong."""
    try:
        __salt__["mosquitto_passwd.check_username"](name)
    except SaltInvocationError as exc:
        return str(exc)
    return None


def check_topic_filter(topic):
    """An MQTT topic filter: '#' only as the last level, '+' a whole level."""
    if not isinstance(topic, str) or not topic or " " in topic:
        return False
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in topic):
        return False
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def parse_acl_rule(rule):
    """'readwrite sensors/#' or just 'sensors/#' -> ('readwrite', 'sensors/#')."""
    if not isinstance(rule, str):
        return None
    parts = rule.split(None, 1)
    if len(parts) == 2 and parts[0] in _ACCESS:
        access, topic = parts[0], parts[1].strip()
    elif len(parts) == 1:
        access, topic = "readwrite", parts[0]
    else:
        return None
    return (access, topic) if check_topic_filter(topic) else None


def _acl_rules(errors, path, rules, pattern=False):
    out = []
    for i, rule in enumerate(_list(errors, path, rules)):
        parsed = parse_acl_rule(rule)
        if parsed is None:
            errors.add(
                path + [i],
                f"{rule!r} is not '<read|write|readwrite|deny> <topic filter>' "
                "('#' only last, '+' a whole level)",
            )
            continue
        out.append(f"{parsed[0]} {parsed[1]}")
    return out


def _users(errors, users, exporter_user):
    path = ["users"]
    if not isinstance(users, dict):
        errors.add(path, f"must be a mapping of user name to settings, got {type(users).__name__}")
        return {}
    out = {}
    for name, spec in users.items():
        upath = path + [name]
        problem = check_username(name)
        if problem:
            errors.add(upath, f"bad user name: {problem}")
            continue
        if name == exporter_user:
            errors.add(upath, "is reserved for the exporter (its password is generated "
                       "on the host); pick another name or change exporter:user")
            continue
        if spec is None:
            spec = {}
        if not _unknown_keys(errors, upath, spec, _USER_KEYS):
            continue
        has_plain, has_hash = "password" in spec, "password_hash" in spec
        if has_plain == has_hash:
            errors.add(upath + ["password"], "missing: give exactly one of password or password_hash"
                       if not has_plain else "give password or password_hash, not both")
            continue
        entry = {}
        if has_plain:
            pw = spec["password"]
            if not isinstance(pw, str) or pw == "":
                errors.add(upath + ["password"], "must be a non-empty string (quote it in YAML)")
                continue
            if "\n" in pw or "\r" in pw or "\0" in pw:
                errors.add(upath + ["password"], "must not contain line breaks or NUL")
                continue
            entry["password"] = pw
        else:
            hashed = spec["password_hash"]
            if not isinstance(hashed, str) or not re.match(r"^\$(6|7)\$\S+$", hashed):
                errors.add(upath + ["password_hash"], "must be a mosquitto_passwd hash ($7$... or $6$...)")
                continue
            entry["password_hash"] = hashed
        entry["acl"] = _acl_rules(errors, upath + ["acl"], spec.get("acl", []))
        out[name] = entry
    return out


def _bridges(errors, bridges, tls):
    path = ["bridges"]
    if not isinstance(bridges, dict):
        errors.add(path, "must be a mapping of bridge name to settings")
        return {}
    out = {}
    for name, spec in bridges.items():
        bpath = path + [name]
        if not __utils__["mosquitto_names.is_bridge_name"](name):
            errors.add(bpath, "bridge names use letters, digits, '_', '.', '-'")
            continue
        if not _unknown_keys(errors, bpath, spec, _BRIDGE_KEYS):
            continue
        bridge = {
            "tls": True, "cleansession": False, "notifications": True,
            "keepalive_interval": 60, "topics": [], "options": {},
        }
        bridge.update(spec)
        addresses = bridge.get("address")
        addresses = addresses if isinstance(addresses, list) else [addresses]
        for i, addr in enumerate(addresses):
            apath = bpath + ["address"] + ([i] if len(addresses) > 1 else [])
            m = re.match(r"^(\[[0-9a-fA-F:.]+\]|[^:\s]+)(?::([0-9]+))?$", str(addr or ""))
            if not addr or not m:
                errors.add(apath, f"must be host[:port], got {addr!r}")
            elif m.group(2) and not 0 < int(m.group(2)) < 65536:
                errors.add(apath, f"port out of range in {addr!r}")
        bridge["address"] = [str(a) for a in addresses]
        topics = _list(errors, bpath + ["topics"], bridge["topics"])
        if not topics:
            errors.add(bpath + ["topics"], "a bridge needs at least one topic line, e.g. 'sensors/# out 1'")
        for i, topic in enumerate(topics):
            parts = str(topic).split()
            if (not _text(errors, bpath + ["topics", i], topic)
                    or not check_topic_filter(parts[0])
                    or (len(parts) > 1 and parts[1] not in ("in", "out", "both"))
                    or (len(parts) > 2 and parts[2] not in ("0", "1", "2"))):
                errors.add(bpath + ["topics", i], f"must be '<topic> [in|out|both] [0|1|2] ...', got {topic!r}")
        for key in ("tls", "cleansession", "notifications"):
            _bool(errors, bpath + [key], bridge[key])
        _int(errors, bpath + ["keepalive_interval"], bridge["keepalive_interval"], 5, 65535)
        for key in ("remote_username", "remote_password"):
            if key in bridge:
                _text(errors, bpath + [key], bridge[key])
        if ("remote_username" in bridge) != ("remote_password" in bridge):
            errors.add(bpath, "remote_username and remote_password go together")
        _options(errors, bpath + ["options"], bridge["options"], owned=_BRIDGE_OWNED)
        _bridge_safety(errors, bpath, bridge)
        out[name] = bridge
    return out


def _signing_policies(errors, path, policies):
    """tls:signing_policies (read by the CA minion): who may get which names."""
    out = []
    for i, spec in enumerate(_list(errors, path, policies)):
        ppath = path + [i]
        if not _unknown_keys(errors, ppath, spec, _POLICY_KEYS):
            continue
        minions = spec.get("minions")
        if not _text(errors, ppath + ["minions"], minions):
            continue
        policy = {"minions": minions.strip().lower(), "dns_names": [], "ip_networks": [], "max_days": None}
        for j, pattern in enumerate(_list(errors, ppath + ["dns_names"], spec.get("dns_names", []))):
            if not _text(errors, ppath + ["dns_names", j], pattern):
                continue
            pattern = pattern.strip().lower()
            if not re.match(r"^[a-z0-9*?.\[\]_-]+$", pattern):
                errors.add(ppath + ["dns_names", j], f"must be a DNS name glob such as '*.example.com', got {pattern!r}")
                continue
            if pattern.strip("*?.") == "":
                errors.add(ppath + ["dns_names", j], f"{pattern!r} matches every name: list the domains instead")
                continue
            policy["dns_names"].append(pattern)
        for j, net in enumerate(_list(errors, ppath + ["ip_networks"], spec.get("ip_networks", []))):
            try:
                policy["ip_networks"].append(str(ipaddress.ip_network(str(net), strict=True)))
            except ValueError:
                errors.add(ppath + ["ip_networks", j], f"must be a network such as 192.0.2.0/24 (host bits zero), got {net!r}")
        if spec.get("max_days") is not None and _int(errors, ppath + ["max_days"], spec["max_days"], 1, 36500):
            policy["max_days"] = spec["max_days"]
        out.append(policy)
    return out


def signing_policies(policies):
    """
    Check and normalise ``mosquitto:tls:signing_policies`` (a list of
    {minions, dns_names, ip_networks, max_days}); raises naming the key.
    The CA minion's ``mosquitto_ca.sign_csr`` reads its policies through this.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_config.signing_policies '[{minions: "edge*", dns_names: ["*.edge.example.com"]}]'
    """
    errors = _Errors()
    out = _signing_policies(errors, ["tls", "signing_policies"], [] if policies is None else policies)
    errors.raise_if_any()
    return out


def _listener_options(errors, name, listener, allowed):
    """listeners:<name>:options: only options mosquitto applies per listener."""
    path = ["listeners", name, "options"]
    options = listener.setdefault("options", {})
    if options is None:
        options = listener["options"] = {}
    _options(errors, path, options, _OWNED_OPTIONS, allowed=allowed)


def _options(errors, path, options, owned, allowed=None, per_listener=()):
    """Free-form mosquitto.conf options: name -> scalar or list of scalars.

    allowed: the only names accepted (listener options); per_listener: names
    refused because they belong under listeners:<name>:options."""
    if not isinstance(options, dict):
        errors.add(path, "must be a mapping of mosquitto.conf option to value")
        return
    for key, value in options.items():
        kpath = path + [key]
        if not isinstance(key, str) or not _OPTION.match(key):
            errors.add(kpath, "is not a mosquitto.conf option name")
            continue
        if key in owned:
            errors.add(kpath, f"is managed by the formula: set {owned[key]} instead")
            continue
        if key in per_listener:
            errors.add(kpath, "is a per-listener option: set it under "
                       "listeners:mqtt:options or listeners:mqtts:options")
            continue
        if allowed is not None and key not in allowed:
            errors.add(kpath, f"is not a per-listener option here (allowed: {', '.join(sorted(allowed))}); "
                       "global options go under config")
            continue
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            ipath = kpath + ([i] if isinstance(value, list) else [])
            if isinstance(item, bool) or isinstance(item, (int, float)):
                continue
            _text(errors, ipath, item)


def nofile_hard(init=None):
    """The highest open-files limit a broker started here can get.

    Under systemd that is PID 1's hard limit: systemd sets a unit's
    LimitNOFILE= to at most its own (it lowers a higher value silently).
    Elsewhere the init script inherits salt's process limit. None when
    unlimited or unknown.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_config.nofile_hard systemd
    """
    hard = None
    if init == "systemd":
        try:
            with open("/proc/1/limits", encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("Max open files"):
                        value = line.split()[4]
                        hard = int(value) if value.isdigit() else None
        except OSError:
            hard = None
    else:
        value = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        hard = None if value == resource.RLIM_INFINITY else value
    return hard


def _capacity(errors, data, nofile_hard_limit):
    """limits:open_files and the TLS listener's max_connections.

    Each client holds one file descriptor, so the open-files limit is the
    broker's real connection limit: past it every new connection is closed
    at once. max_connections 'auto' takes all of it (limit - FD_RESERVE); a
    number above that is refused, a number below it lowers the limit to
    max_connections + FD_RESERVE. That is what holds on Debian 12's
    mosquitto 2.0.11, whose own max_connections count drifts down by one at
    every client disconnect (upstream #1460) and soon limits nothing; it is
    written too, for versions that count right.
    """
    limits = data.get("limits", {})
    if not _unknown_keys(errors, ["limits"], limits, {"open_files"}):
        return
    if not _int(errors, ["limits", "open_files"], limits.get("open_files"), 1024, 1048576):
        return
    wanted = limits["open_files"]
    effective = min(wanted, nofile_hard_limit) if nofile_hard_limit else wanted
    limits["open_files_effective"] = effective
    mqtts = data.get("listeners", {}).get("mqtts")
    if not isinstance(mqtts, dict):
        return
    room = effective - FD_RESERVE
    value = mqtts.get("max_connections", "auto")
    path = ["listeners", "mqtts", "max_connections"]
    if value == "auto":
        mqtts["max_connections"] = room
    elif _int(errors, path, value, 1, 1048576):
        if value > room:
            capped = "" if effective == wanted else (
                f", lowered to {effective} by this host's hard limit (raise it, e.g. "
                "DefaultLimitNOFILE= in systemd's system.conf, or LimitNOFILE= for containers)")
            errors.add(path, f"{value} is more than the broker can hold open: limits:open_files is "
                       f"{wanted}{capped}, which leaves room for {room} clients ({FD_RESERVE} files "
                       "are kept for the broker itself); lower max_connections, raise "
                       "limits:open_files, or use 'auto'")
        else:
            limits["open_files_effective"] = value + FD_RESERVE


# --------------------------------------------------------------------------
# bridges: what mosquitto 2.0 accepts in a `connection` section, and clusters
# (measured facts and upstream issues: /work/shared/BRIDGES.md, README)
# --------------------------------------------------------------------------

# Bridge options allowed under bridges:<name>:options (mosquitto.conf(5),
# 2.0). Anything else is refused: an unknown word is an error the broker
# reports only at start, and a global option there changes the whole broker.
_BRIDGE_OPTIONS = {
    "bridge_attempt_unsubscribe", "bridge_alpn", "bridge_certfile", "bridge_keyfile",
    "bridge_max_packet_size", "bridge_outgoing_retain", "bridge_protocol_version",
    "bridge_require_ocsp", "idle_timeout", "local_cleansession", "local_clientid",
    "local_username", "notifications_local_only", "notification_topic", "remote_clientid",
    "restart_timeout", "round_robin", "start_type", "threshold", "try_private",
}
# Bridge options refused with a reason of their own.
_BRIDGE_REFUSED = {
    "bridge_insecure": "turns off the check of the remote's host name against its certificate",
    "bridge_capath": "the formula verifies bridges with tls:ca_cert (bridge_cafile)",
    "bridge_identity": "PSK bridges are not supported (with a CA file the broker refuses to start)",
    "local_password": "a secret under options would be a state argument",
}
# Rejected as unknown by mosquitto 2.0 (eclipse/mosquitto 2.1 changelog).
_BRIDGE_21 = {
    "bridge_reload_type", "bridge_receive_maximum", "bridge_session_expiry_interval",
    "bridge_tls_use_os_certs", "bridge_bind_address",
}
# The first release that keeps QoS 2 bridge messages across reconnects
# (eclipse/mosquitto#3275, #2165, PR #2092; 690-1,068 of 3,000 lost on 2.0.11).
_QOS2_SAFE = (2, 0, 15)
_CLUSTER_KEYS = {"hub", "members", "topics", "keepalive_interval", "restart_timeout"}
CLUSTER_BRIDGE = "cluster"


def _version_tuple(version):
    m = re.match(r"^(?:[0-9]+:)?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?", str(version or ""))
    return tuple(int(g or 0) for g in m.groups()) if m else None


def _pkg_call(data, fun, **kwargs):
    salt_funcs = globals().get("__salt__") or {}
    pkg = (data.get("pkg") or {}).get("broker") if isinstance(data.get("pkg"), dict) else None
    if fun not in salt_funcs or not isinstance(pkg, str) or not pkg:
        return None
    try:
        got = salt_funcs[fun](pkg, **kwargs)
    except Exception:  # pylint: disable=broad-except
        return None
    return got if isinstance(got, str) and got else None


def _installed_version(data):
    """The installed broker package's version, or None (not installed, no Salt)."""
    return _pkg_call(data, "pkg.version")


def _candidate_version(data):
    """The version the package manager would install now, or None. From the
    package lists as they are (refresh=False: no apt-get update while
    rendering; ~0.5 s of `apt-cache policy`, asked only when nothing is
    installed). A repository the formula adds itself (pkg:repo) is not
    counted before it is installed."""
    return _pkg_call(data, "pkg.latest_version", refresh=False)


def _package_version(data, ask_candidate=True):
    """(version, where): the installed broker's version ("installed"), else
    the package manager's candidate ("candidate"), else (None, None)."""
    installed = _installed_version(data)
    if installed:
        return installed, "installed"
    candidate = _candidate_version(data) if ask_candidate else None
    return (candidate, "candidate") if candidate else (None, None)


def _image_version(data):
    """Container mode: (version, "image <name>") of the broker the image
    runs, from what the image says of itself without running it: a
    version tag (eclipse-mosquitto:2.0.18), else the image's ``VERSION``
    environment variable (eclipse-mosquitto sets it) or its OCI
    ``org.opencontainers.image.version`` label. (None, "image <name>")
    when it says nothing or is not in the engine yet: the host's packages
    say nothing of the image's broker."""
    image = str((data.get("container") or {}).get("image") or "")
    where = f"image {image}"
    tag = image.rsplit("/", 1)[-1].partition("@")[0].partition(":")[2]
    if _version_tuple(tag):
        return tag, where
    inspect = (globals().get("__salt__") or {}).get("docker.inspect_image")
    try:
        config = ((inspect(image) if inspect else None) or {}).get("Config") or {}
    except Exception:  # pylint: disable=broad-except
        config = {}
    env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
    version = env.get("VERSION") or (config.get("Labels") or {}).get("org.opencontainers.image.version")
    return (version, where) if _version_tuple(version) else (None, where)


def _version_bound(bridges, cluster):
    """Whether any bridge line or option depends on the broker's version
    (only then is the package manager asked for its candidate)."""
    lines = [t for b in (bridges or {}).values() for t in b.get("topics") or []]
    if isinstance(cluster, dict) and isinstance(cluster.get("topics"), list):
        lines += cluster["topics"]
    if any((parse_topic_line(line) or {}).get("qos") == "2" for line in lines if isinstance(line, str)):
        return True
    return any(k in _BRIDGE_21 for b in (bridges or {}).values()
               if isinstance(b.get("options"), dict) for k in b["options"])


def _shown_version(version, where):
    if where and where.startswith("image "):
        return (f"{where} runs {version}" if version else
                f"{where} does not say which mosquitto it runs (a version tag, its VERSION "
                "environment variable or its org.opencontainers.image.version label), "
                "or is not in the engine yet")
    if version and where == "candidate":
        return f"not installed yet; the package manager would install {version}"
    if version:
        return f"installed: {version}"
    return ("installed: unknown (not installed yet, and the package lists have no candidate; "
            "Debian 12 and EPEL 9 ship 2.0)")


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def filters_overlap(a, b):
    """True when some topic matches both MQTT filters a and b."""
    la, lb = a.split("/"), b.split("/")
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else None
        y = lb[i] if i < len(lb) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != y and "+" not in (x, y):
            return False
    return True


def parse_topic_line(line):
    """'<filter> [in|out|both] [qos] [local remote]' -> dict, or None."""
    parts = str(line).split()
    if not parts or len(parts) > 5 or len(parts) == 4:
        return None
    out = {"filter": parts[0], "direction": parts[1] if len(parts) > 1 else "out",
           "qos": parts[2] if len(parts) > 2 else "0", "prefixes": parts[3:]}
    if out["direction"] not in ("in", "out", "both") or out["qos"] not in ("0", "1", "2"):
        return None
    if out["filter"] == '""' and out["prefixes"]:
        return out
    return out if check_topic_filter(out["filter"]) else None


def _bridge_safety(errors, bpath, bridge):
    """What mosquitto 2.0 would do wrong (or refuse) with this bridge."""
    options = bridge.get("options") if isinstance(bridge.get("options"), dict) else {}
    for key in sorted(k for k in options if isinstance(k, str)):
        kpath = bpath + ["options", key]
        if key in _BRIDGE_OPTIONS or key in _BRIDGE_OWNED or key in _BRIDGE_21:
            continue
        if key in _BRIDGE_REFUSED:
            errors.add(kpath, f"refused: {_BRIDGE_REFUSED[key]}")
        elif key in _OWNED_OPTIONS or key in _GLOBAL_HINTS:
            errors.add(kpath, "is a global option, not a bridge option (inside a connection "
                       "section it changes the whole broker): set it under mosquitto:config")
        else:
            errors.add(kpath, f"unknown bridge option (known: {', '.join(sorted(_BRIDGE_OPTIONS))})")
    for i, addr in enumerate(bridge.get("address") or []):
        apath = bpath + ["address"] + ([i] if len(bridge["address"]) > 1 else [])
        host = str(addr).rsplit(":", 1)[0] if ":" in str(addr) and not str(addr).startswith("[") else str(addr)
        if str(addr).startswith("["):
            errors.add(apath, f"mosquitto 2.0 does not read '[ipv6]:port' ({addr!r}); bridge to a DNS "
                       "name the remote's certificate holds")
        elif bridge.get("tls") is False and "remote_username" in bridge and not _is_loopback(host):
            errors.add(bpath + ["tls"], f"false with remote_username/remote_password would send the "
                       f"password in clear to {addr}: use tls (or a loopback address)")
    topics = bridge.get("topics") if isinstance(bridge.get("topics"), list) else []
    if options.get("try_private") in (False, "false"):
        for i, topic in enumerate(topics):
            parsed = parse_topic_line(topic)
            if parsed and parsed["direction"] == "both":
                errors.add(bpath + ["topics", i], "'both' with try_private false sends each message "
                           "back where it came from (a two-broker loop): use try_private true or one direction")
    seen = {}
    for i, topic in enumerate(topics):
        parsed = parse_topic_line(topic)
        if parsed and parsed["filter"] in seen:
            errors.add(bpath + ["topics", i], f"repeats the filter of topic line {seen[parsed['filter']]}")
        elif parsed:
            seen[parsed["filter"]] = i


# Common global options, named when misplaced in a bridge.
_GLOBAL_HINTS = {
    "log_type", "log_timestamp", "connection_messages", "sys_interval", "max_inflight_messages",
    "max_packet_size", "message_size_limit", "retain_available", "set_tcp_nodelay",
    "queue_qos0_messages", "upgrade_outgoing_qos", "allow_zero_length_clientid", "clientid_prefixes",
    "mount_point", "protocol", "socket_domain", "require_certificate", "use_identity_as_username",
    "psk_hint", "psk_file", "websockets_log_level", "memory_limit", "max_connections",
}


def _global_not_bridge(errors, config):
    if not isinstance(config, dict):
        return
    for key in sorted(k for k in config if isinstance(k, str)):
        if key != "connection" and (key in _BRIDGE_OPTIONS or key in _BRIDGE_OWNED
                                    or key in _BRIDGE_REFUSED or key in _BRIDGE_21):
            errors.add(["config", key], "is a bridge option: in the global section the broker exits "
                       "(\"Invalid bridge configuration\"); set it under bridges:<name>:options")


def _bridge_versions(errors, bridges, version, where="installed"):
    """QoS 2 lines and 2.1-only options, judged by the installed broker (or
    the one the package manager would install)."""
    have = _version_tuple(version)
    shown = _shown_version(version, where)
    for name, bridge in (bridges or {}).items():
        for i, topic in enumerate(bridge.get("topics") or []):
            parsed = parse_topic_line(topic)
            if parsed and parsed["qos"] == "2" and (have is None or have < _QOS2_SAFE):
                errors.add(["bridges", name, "topics", i], "QoS 2 on a bridge loses messages across "
                           f"reconnects before mosquitto 2.0.15 (eclipse/mosquitto#3275, #2165); "
                           f"{shown}: use QoS 1")
        for key in sorted(k for k in (bridge.get("options") or {}) if k in _BRIDGE_21):
            if have is None or have < (2, 1, 0):
                errors.add(["bridges", name, "options", key], f"needs mosquitto 2.1 (2.0 refuses to "
                           f"start on it); {shown}")


def _bridge_pairs(errors, bridges, own_names):
    """A bridge back to this broker, or two bridges to one remote sharing
    topics: each message comes back or arrives twice."""
    targets = {}
    for name, bridge in (bridges or {}).items():
        hosts = [str(a).rsplit(":", 1)[0].lower() for a in bridge.get("address") or []]
        for host in hosts:
            if host in [n for n in own_names if n]:
                errors.add(["bridges", name, "address"], f"{host} is this broker itself: a bridge to "
                           "itself is a loop")
        filters = [p["filter"] for p in map(parse_topic_line, bridge.get("topics") or []) if p]
        for host in set(hosts):
            for other, other_filters in targets.get(host, []):
                if any(filters_overlap(a, b) for a in filters for b in other_filters):
                    errors.add(["bridges", name], f"bridges to {host} like bridges:{other} with an "
                               "overlapping topic: every message would cross twice")
            targets.setdefault(host, []).append((name, filters))


def _default_clientids(bridges, minion_id):
    """remote_clientid <minion id>.<bridge> unless set: 2.0's default,
    <hostname>.<bridge>, collides between containers and cloned hosts, and
    two bridges with one id take each other's session over and over."""
    if not minion_id:
        return
    for name, bridge in (bridges or {}).items():
        if isinstance(bridge.get("options"), dict):
            bridge["options"].setdefault("remote_clientid", f"{minion_id}.{name}")


def _restart_timeout(errors, path, value):
    if isinstance(value, list):
        if len(value) == 2 and all(_int(errors, path + [i], v, 1, 3600) for i, v in enumerate(value)):
            if value[0] > value[1]:
                errors.add(path, f"base {value[0]} is above the cap {value[1]}")
                return None
            return f"{value[0]} {value[1]}"
        if len(value) != 2:
            errors.add(path, f"must be seconds or [base, cap], got {value!r}")
        return None
    return str(value) if _int(errors, path, value, 1, 3600) else None


def _cluster(errors, cluster, minion_id, data, version, where="installed"):
    """mosquitto:cluster -> this host's role and its derived bridge settings.

    Hub-and-spoke, loop-free by construction: spokes bridge to the hub, the
    hub has no cluster bridges, and no other bridge on a member may carry a
    cluster topic (a second path between brokers is a loop).
    """
    path = ["cluster"]
    if not _unknown_keys(errors, path, cluster, _CLUSTER_KEYS):
        return {"role": None}
    hub = cluster.get("hub", "")
    topics = cluster.get("topics") or []
    if hub in ("", None):
        if topics:
            errors.add(path + ["hub"], "missing: a cluster needs the minion id of its hub")
        return {"role": None}
    if not _text(errors, path + ["hub"], hub) or not re.match(r"^[A-Za-z0-9_.-]+$", hub):
        errors.add(path + ["hub"], f"must be a minion id, got {hub!r}")
        return {"role": None}
    members = cluster.get("members", "*")
    _text(errors, path + ["members"], members)
    out = {
        "hub": hub, "members": members, "topics": [], "acl": [],
        "keepalive_interval": cluster.get("keepalive_interval", 60),
        "restart_timeout": _restart_timeout(errors, path + ["restart_timeout"], cluster.get("restart_timeout", [5, 30])),
    }
    _int(errors, path + ["keepalive_interval"], out["keepalive_interval"], 5, 65535)
    if not _list(errors, path + ["topics"], topics) and isinstance(topics, list):
        errors.add(path + ["topics"], "a cluster needs at least one topic line, e.g. 'fleet/# both 1'")
    have = _version_tuple(version)
    for i, line in enumerate(topics if isinstance(topics, list) else []):
        parsed = parse_topic_line(line) if isinstance(line, str) else None
        if parsed is None or parsed["prefixes"]:
            errors.add(path + ["topics", i], f"must be '<filter> [in|out|both] [0|1]' (no prefixes), got {line!r}")
            continue
        if parsed["qos"] == "2" and (have is None or have < _QOS2_SAFE):
            errors.add(path + ["topics", i], "QoS 2 on a bridge loses messages across reconnects before "
                       f"mosquitto 2.0.15 (eclipse/mosquitto#3275, #2165); {_shown_version(version, where)}: use QoS 1")
            continue
        if any(filters_overlap(parsed["filter"], t["filter"]) for t in out["topics"]):
            errors.add(path + ["topics", i], f"{parsed['filter']!r} overlaps an earlier cluster topic "
                       "(each message would cross twice)")
            continue
        out["topics"].append(parsed)
        # The hub's ACL for a spoke's bridge user, from the hub's side.
        access = {"out": "write", "in": "read", "both": "readwrite"}[parsed["direction"]]
        out["acl"].append(f"{access} {parsed['filter']}")
    out["topic_lines"] = [f"{t['filter']} {t['direction']} {t['qos']}" for t in out["topics"]]
    if not minion_id:
        errors.add(path, "cannot tell this minion's id (run through Salt)")
        return dict(out, role=None)
    if (globals().get("__opts__") or {}).get("file_client") == "local":
        errors.add(path, "needs a Salt master: hub and spokes find each other through the Salt mine "
                   "(masterless salt-call --local has none)")
    import fnmatch
    if minion_id == hub:
        out["role"] = "hub"
    else:
        out["role"] = "spoke"
        if not isinstance(members, str) or not fnmatch.fnmatch(minion_id, members):
            errors.add(path + ["members"], f"{members!r} does not match this spoke {minion_id!r}: the hub "
                       "would refuse its bridge")
        out["bridge"] = CLUSTER_BRIDGE
        out["username"] = f"bridge.{minion_id}"
        out["remote_clientid"] = f"{minion_id}.{CLUSTER_BRIDGE}"
    persistence = data.get("persistence") if isinstance(data.get("persistence"), dict) else {}
    if persistence.get("enabled") is False:
        errors.add(["persistence", "enabled"], "must be true on a cluster member: bridged messages queued "
                   "during an outage live in the persistence file")
    for name, bridge in (data.get("bridges") or {}).items():
        if name == CLUSTER_BRIDGE:
            errors.add(["bridges", name], f"the name {CLUSTER_BRIDGE!r} is the cluster's own bridge")
            continue
        for i, line in enumerate(bridge.get("topics") or []):
            parsed = parse_topic_line(line)
            hit = parsed and next((t["filter"] for t in out["topics"]
                                   if filters_overlap(parsed["filter"], t["filter"])), None)
            if hit:
                errors.add(["bridges", name, "topics", i], f"overlaps cluster topic {hit!r}: a second path "
                           "between cluster brokers makes a loop (messages multiply without end)")
    return out


def validate(data, nofile_hard_limit=None, minion_id=None, broker_version=None):
    """
    Check the merged formula settings and return a normalised copy.

    CLI Example (what map.jinja does):

    .. code-block:: bash

        salt-call mosquitto_config.validate '{"domain": "mqtt.example.com"}'

    ``minion_id`` and ``broker_version`` default to this minion's id and
    the installed broker package's version (before the package is
    installed: the version the package manager would install, see
    _package_version): the cluster role and the version-bound
    bridge checks depend on them.

    ``nofile_hard_limit`` (from :py:func:`nofile_hard`) caps
    ``limits:open_files``; the result holds ``limits:open_files_effective``
    and an integer ``listeners:mqtts:max_connections``.
    """
    errors = _Errors()
    data = copy.deepcopy(data)
    if not _unknown_keys(errors, [], data, _TOP_KEYS):
        errors.raise_if_any()

    data["domain"] = _dns(errors, ["domain"], data.get("domain"))

    ports = data.get("ports", {})
    if _unknown_keys(errors, ["ports"], ports, {"mqtt", "mqtts", "exporter"}):
        for key, value in ports.items():
            _int(errors, ["ports", key], value, 1, 65535)
        values = [v for v in ports.values() if isinstance(v, int)]
        if len(set(values)) != len(values):
            errors.add(["ports"], f"ports must differ, got {ports}")

    listeners = data.get("listeners", {})
    if _unknown_keys(errors, ["listeners"], listeners, {"mqtt", "mqtts"}):
        if _unknown_keys(errors, ["listeners", "mqtt"], listeners.get("mqtt", {}), {"bind_address", "options"}):
            _bind_address(errors, ["listeners", "mqtt", "bind_address"], listeners["mqtt"].get("bind_address", ""))
            _listener_options(errors, "mqtt", listeners["mqtt"], _LISTENER_OPTIONS)
        mqtts = listeners.get("mqtts", {})
        if _unknown_keys(errors, ["listeners", "mqtts"], mqtts, {"bind_address", "tls_version", "max_connections", "options"}):
            _bind_address(errors, ["listeners", "mqtts", "bind_address"], mqtts.get("bind_address", ""))
            _choice(errors, ["listeners", "mqtts", "tls_version"], mqtts.get("tls_version"), _TLS_VERSIONS)
            _listener_options(errors, "mqtts", mqtts, _LISTENER_OPTIONS | _TLS_LISTENER_OPTIONS)

    _capacity(errors, data, nofile_hard_limit)

    exporter = data.get("exporter", {})
    if _unknown_keys(errors, ["exporter"], exporter,
                     {"enabled", "user", "bind_address", "install", "venv_dir", "pip_pkgs"}):
        _bool(errors, ["exporter", "enabled"], exporter.get("enabled"))
        _choice(errors, ["exporter", "install"], exporter.get("install"), ("pkg", "venv"))
        _abspath(errors, ["exporter", "venv_dir"], exporter.get("venv_dir"))
        for i, req in enumerate(_list(errors, ["exporter", "pip_pkgs"], exporter.get("pip_pkgs", []))):
            if _text(errors, ["exporter", "pip_pkgs", i], req) and not re.match(r"^[A-Za-z0-9_.\-\[\]]+\s*([<>=!~]=?[^,\s]+\s*,?\s*)*$", req):
                errors.add(["exporter", "pip_pkgs", i], f"is not a pip requirement: {req!r}")
        problem = check_username(exporter.get("user"))
        if problem:
            errors.add(["exporter", "user"], f"must be a valid MQTT user name: {problem}")
        _bind_address(errors, ["exporter", "bind_address"], exporter.get("bind_address"))

    data["users"] = _users(errors, data.get("users"), exporter.get("user"))
    data["acl_patterns"] = _acl_rules(errors, ["acl_patterns"], data.get("acl_patterns", []), pattern=True)

    _int(errors, ["max_keepalive"], data.get("max_keepalive"), 0, 65535)
    queue = data.get("queue", {})
    if _unknown_keys(errors, ["queue"], queue, {"max_queued_messages", "persistent_client_expiration"}):
        _int(errors, ["queue", "max_queued_messages"], queue.get("max_queued_messages"), 0, 2**31 - 1)
        exp = queue.get("persistent_client_expiration")
        if exp not in ("", None) and not (isinstance(exp, str) and _DURATION.match(exp)):
            errors.add(["queue", "persistent_client_expiration"], f"must be like 14d, 12h, 2w, 1m, 1y or '' (never), got {exp!r}")

    persistence = data.get("persistence", {})
    if _unknown_keys(errors, ["persistence"], persistence,
                     {"enabled", "location", "autosave_interval", "autosave_on_changes"}):
        _bool(errors, ["persistence", "enabled"], persistence.get("enabled"))
        _abspath(errors, ["persistence", "location"], persistence.get("location"))
        if isinstance(persistence.get("location"), str) and not persistence["location"].endswith("/"):
            persistence["location"] += "/"  # mosquitto concatenates the file name
        _int(errors, ["persistence", "autosave_interval"], persistence.get("autosave_interval"), 0, 86400 * 7)
        _bool(errors, ["persistence", "autosave_on_changes"], persistence.get("autosave_on_changes"))
        if persistence.get("autosave_on_changes") is True and persistence.get("autosave_interval") == 0:
            # 0 turns autosave off in either mode: not what on_changes asks for.
            errors.add(["persistence", "autosave_interval"],
                       "must be a count of at least 1 when autosave_on_changes is true")

    tls = data.get("tls", {})
    tls_keys = {"ca_cert", "ca_key", "ca_common_name", "ca_days_valid", "ca_server", "cert", "key",
                "days_valid", "renew_days", "key_type", "key_size", "dns_names", "ip_addresses",
                "signing_policies", "profile", "auto_renew"}
    if _unknown_keys(errors, ["tls"], tls, tls_keys):
        for key in ("ca_cert", "ca_key", "cert", "key"):
            _abspath(errors, ["tls", key], tls.get(key))
        _text(errors, ["tls", "ca_common_name"], tls.get("ca_common_name"))
        if tls.get("ca_server", "") != "":
            _text(errors, ["tls", "ca_server"], tls.get("ca_server"))
        _int(errors, ["tls", "ca_days_valid"], tls.get("ca_days_valid"), 1, 36500)
        _int(errors, ["tls", "days_valid"], tls.get("days_valid"), 1, 36500)
        _int(errors, ["tls", "renew_days"], tls.get("renew_days"), 0, 36500)
        if isinstance(tls.get("renew_days"), int) and isinstance(tls.get("days_valid"), int) \
                and tls["renew_days"] >= tls["days_valid"]:
            errors.add(["tls", "renew_days"], "must be below days_valid, or every run would reissue the certificate")
        if _choice(errors, ["tls", "profile"], tls.get("profile"), tuple(TLS_PROFILES)):
            tls["ciphers"] = TLS_PROFILES[tls["profile"]]
            mqtts = listeners.get("mqtts") if isinstance(listeners, dict) else None
            if tls["profile"] == "modern" and isinstance(mqtts, dict):
                mqtts["tls_version"] = "tlsv1.3"  # the floor for listener and bridges
        _choice(errors, ["tls", "key_type"], tls.get("key_type"), _KEY_TYPES)
        _bool(errors, ["tls", "auto_renew"], tls.get("auto_renew"))
        if tls.get("key_type") == "rsa":
            _choice(errors, ["tls", "key_size"], tls.get("key_size"), (2048, 3072, 4096))
        tls["dns_names"] = [n for i, name in enumerate(_list(errors, ["tls", "dns_names"], tls.get("dns_names", [])))
                            if (n := _dns(errors, ["tls", "dns_names", i], name))]
        tls["ip_addresses"] = [a for i, ip in enumerate(_list(errors, ["tls", "ip_addresses"], tls.get("ip_addresses", [])))
                               if (a := _ip(errors, ["tls", "ip_addresses", i], ip))]
        tls["signing_policies"] = _signing_policies(errors, ["tls", "signing_policies"],
                                                    tls.get("signing_policies", []))
        if data["domain"]:
            # The domain first, then extra names, each once: the SAN list.
            tls["san_dns"] = list(dict.fromkeys([data["domain"]] + tls["dns_names"]))

    data["bridges"] = _bridges(errors, data.get("bridges", {}), tls)
    _options(errors, ["config"], data.get("config", {}), _OWNED_OPTIONS, per_listener=_PER_LISTENER)
    _global_not_bridge(errors, data.get("config", {}))
    if minion_id is None:
        minion_id = (globals().get("__opts__") or {}).get("id")
    where = "installed"
    if broker_version is None and (data.get("container") or {}).get("enabled") is True:
        # The broker is the image's, whatever the host has installed.
        broker_version, where = (_image_version(data) if _version_bound(data["bridges"], data.get("cluster"))
                                 else (None, None))
    elif broker_version is None:
        broker_version, where = _package_version(
            data, ask_candidate=_version_bound(data["bridges"], data.get("cluster")))
    _bridge_versions(errors, data["bridges"], broker_version, where)
    _bridge_pairs(errors, data["bridges"], [data["domain"]] + list((tls or {}).get("dns_names") or []))
    _default_clientids(data["bridges"], minion_id)
    data["cluster"] = _cluster(errors, data.get("cluster") or {}, minion_id, data, broker_version, where)

    firewall = data.get("firewall", {})
    if _unknown_keys(errors, ["firewall"], firewall, {"enabled", "zone", "ssh", "extra_ports"}):
        _choice(errors, ["firewall", "enabled"], firewall.get("enabled"), (True, False, "auto"))
        if _text(errors, ["firewall", "zone"], firewall.get("zone")) and not re.match(r"^[A-Za-z0-9_-]+$", firewall["zone"]):
            errors.add(["firewall", "zone"], f"is not a firewalld zone name: {firewall['zone']!r}")
        _bool(errors, ["firewall", "ssh"], firewall.get("ssh"))
        for i, port in enumerate(_list(errors, ["firewall", "extra_ports"], firewall.get("extra_ports", []))):
            if not (isinstance(port, str) and re.match(r"^[0-9]{1,5}(-[0-9]{1,5})?/(tcp|udp)$", port)):
                errors.add(["firewall", "extra_ports", i], f"must be like '1234/tcp', got {port!r}")

    paths = data.get("paths", {})
    if isinstance(paths, dict):
        for key, value in paths.items():
            _abspath(errors, ["lookup", "paths", key], value, empty=key in ("pid_file", "log_file", "include_dir", "sysv_limits_hook"))
        # The formula empties bridges_dir of other *.conf files.
        if paths.get("bridges_dir") and paths.get("bridges_dir") in (paths.get("include_dir"),
                                                                      _dirname(paths.get("conf"))):
            errors.add(["lookup", "paths", "bridges_dir"], "must be a directory of its own "
                       "(not include_dir, not the directory of mosquitto.conf)")
    service = data.get("service", {})
    if isinstance(service, dict):
        for key in ("name", "user", "group", "exporter_name", "firewall_name"):
            _text(errors, ["lookup", "service", key], service.get(key))

    _container(errors, data.get("container", {}), data)

    errors.raise_if_any()
    return data


_CONTAINER_KEYS = {
    "enabled", "name", "image", "uid", "gid", "network", "subnet", "ip", "publish",
    "restart_policy", "nofile", "healthcheck",
}
_DOCKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
_PUBLISH = re.compile(r"^(?:(\[[0-9a-fA-F:]+\]|[0-9.]+):)?([0-9]{1,5}):([0-9]{1,5})$")


def _container(errors, container, data):
    """mosquitto:container: the broker in a Docker container (container mode)."""
    path = ["container"]
    if not _unknown_keys(errors, path, container, _CONTAINER_KEYS):
        return
    _bool(errors, path + ["enabled"], container.get("enabled"))
    if _text(errors, path + ["name"], container.get("name")) and not _DOCKER_NAME.match(container["name"]):
        errors.add(path + ["name"], f"is not a container name: {container['name']!r}")
    if _text(errors, path + ["image"], container.get("image")) and not _IMAGE_REF.match(container["image"]):
        errors.add(path + ["image"], f"is not an image reference: {container['image']!r}")
    for key in ("uid", "gid"):
        if _int(errors, path + [key], container.get(key), 0, 2**31 - 2) and container[key] == 0:
            errors.add(path + [key], "must not be 0: the broker never runs as root in its container")
    network = container.get("network")
    if _text(errors, path + ["network"], network):
        if network in ("bridge", "none", "default") or not _DOCKER_NAME.match(network):
            errors.add(path + ["network"], f"must be host or the name of a network the formula creates, got {network!r}")
    host_net = network == "host"
    subnet = container.get("subnet", "")
    if subnet != "":
        if host_net:
            errors.add(path + ["subnet"], "only for a named network (network is host)")
        else:
            try:
                subnet = ipaddress.ip_network(str(subnet))
            except ValueError:
                errors.add(path + ["subnet"], f"is not a network like 198.19.0.0/24: {subnet!r}")
                subnet = None
    ip = container.get("ip", "")
    if ip != "":
        if host_net:
            errors.add(path + ["ip"], "only for a named network (network is host)")
        elif (addr := _ip(errors, path + ["ip"], ip)) and subnet and ipaddress.ip_address(addr) not in subnet:
            errors.add(path + ["ip"], f"{ip} is not in subnet {subnet}")
        elif not subnet:
            errors.add(path + ["ip"], "needs container:subnet (a fixed address needs a known subnet)")
    for i, spec in enumerate(_list(errors, path + ["publish"], container.get("publish", []))):
        m = _PUBLISH.match(str(spec))
        if host_net:
            errors.add(path + ["publish", i], "has no effect with network host: the broker's listeners are the host's")
        elif not m or not all(0 < int(p) < 65536 for p in m.group(2, 3)):
            errors.add(path + ["publish", i], f"must be '[host_ip:]host_port:container_port', got {spec!r}")
        elif int(m.group(3)) == data.get("ports", {}).get("mqtt") and m.group(1) not in ("127.0.0.1", "[::1]"):
            # Docker's port publishing goes around firewalld: plain MQTT
            # must stay on loopback.
            errors.add(path + ["publish", i], "plain MQTT (ports:mqtt) may only be published on 127.0.0.1")
    policy = container.get("restart_policy")
    if not (isinstance(policy, str) and re.match(r"^(no|always|unless-stopped|on-failure(:[0-9]+)?)$", policy)):
        errors.add(path + ["restart_policy"], f"must be no, always, unless-stopped or on-failure[:N], got {policy!r}")
    _int(errors, path + ["nofile"], container.get("nofile"), 1024, 1048576)
    health = container.get("healthcheck", {})
    if _unknown_keys(errors, path + ["healthcheck"], health, {"interval", "timeout", "retries", "start_period"}):
        for key in ("interval", "timeout", "start_period"):
            _int(errors, path + ["healthcheck", key], health.get(key), 1, 3600)
        _int(errors, path + ["healthcheck", "retries"], health.get("retries"), 1, 100)
