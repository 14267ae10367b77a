"""
Validate the mosquitto formula's merged settings, once, before any state runs.

mosquitto_map.data merges parameters/ and the ``mosquitto`` pillar
into one dict, asks :py:func:`broker_version` for the facts the bridge rules
need, and passes both to :py:func:`validate`. Every problem raises
``CommandExecutionError`` with the pillar key path and what is wrong
(``mosquitto:users:bob:password: missing``), so a bad pillar fails the
render and nothing on the host changes.

The allowlists below are the schema: an unknown key is an error, never a
silent no-op. Mosquitto's config has no escaping, so no value may hold a
line break.

validate is a pure function of its arguments: each section has a small
checker here (``_check_<section>``), the generic checks and the error
collector are ``_utils/mosquitto_validate.py``, and the bridge and cluster
rules (with the MQTT topic grammar) ``_utils/mosquitto_bridge_rules.py``.
"""

import copy
import ipaddress
import os.path
import re
import resource

from salt.exceptions import SaltInvocationError

__virtualname__ = "mosquitto_config"

_DURATION = re.compile(r"^[0-9]+[hdwmy]\Z")
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
    "log_type": "logging:types",
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
_PER_LISTENER = _LISTENER_OPTIONS | _TLS_LISTENER_OPTIONS | {
    "max_connections", "ciphers", "capath", "psk_hint", "tls_engine", "tls_engine_kpass_sha1", "tls_keyform"}

_TOP_KEYS = {
    "domain", "ports", "listeners", "users", "acl_patterns", "max_keepalive", "limits",
    "queue", "persistence", "tls", "bridges", "config", "exporter",
    "firewall", "paths", "pkg", "service", "tofs", "container", "cluster", "allow_plugins",
    "logging", "swarm", "kubernetes",
    "keep_existing_users",
}
_USER_KEYS = {"password", "password_hash", "acl"}
# The rules of a user whose pillar has no `acl` key: what mosquitto allows
# without an ACL file (every topic outside $SYS), the formula's behaviour
# since its first release and the original playbook's. Kept as the default
# because a user is a credential the pillar's author created for a client
# they trust, and tightening it would cut existing clients off on upgrade;
# `acl: []` gives such a user nothing at all.
DEFAULT_ACL = ("readwrite #",)
# mosquitto.conf options that load a broker plugin or configure one
# (2.0: plugin, auth_plugin, plugin_opt_*, auth_opt_*; 2.1: global_plugin,
# plugin_load, plugin_use). A plugin authenticates and authorises clients
# itself, in the broker's process: the password file and ACLs the formula
# writes are then no longer the whole truth. Refused unless allow_plugins.
_PLUGIN_OPTIONS = {"plugin", "auth_plugin", "global_plugin", "plugin_load", "plugin_use"}
_PLUGIN_PREFIXES = ("plugin_opt_", "auth_opt_")
_POLICY_KEYS = {"minions", "dns_names", "wildcard_dns_names", "ip_networks", "max_days"}
# One label of a signing policy's dns_names glob: DNS label characters with
# fnmatch's `*`, `?` and `[...]` (no `!`), matched within one label by the CA.
_GLOB_LABEL = re.compile(r"^(?:[a-z0-9*?-]|\[[a-z0-9-]+\])+\Z")
# The longest validity the CA gives a peer (mosquitto_ca.MAX_LEAF_DAYS).
_MAX_LEAF_DAYS = 3650
# RFC 5280 ub-common-name: `domain` is the server certificate's CN.
_MAX_CN = 64
_PIP_REQUIREMENT = re.compile(r"^[A-Za-z0-9_.\-\[\]]+\s*([<>=!~]=?[^,\s]+\s*,?\s*)*\Z")
_FIREWALL_ZONE = re.compile(r"^[A-Za-z0-9_-]+\Z")
_FIREWALL_PORT = re.compile(r"^[0-9]{1,5}(-[0-9]{1,5})?/(tcp|udp)\Z")
# lookup:paths keys that may be '' (the option is left out of mosquitto.conf).
_PATHS_MAY_BE_EMPTY = ("pid_file", "log_file", "include_dir", "sysv_limits_hook", "logrotate")
# The keys of lookup:paths and lookup:service (those of the parameter files,
# checked by test_mosquitto_config): another one is a typo that would change
# nothing, so it is named like any unknown key.
_PATHS_KEYS = {
    "conf", "passwd", "acl", "run_dir", "pid_file", "log_file", "include_dir", "bridges_dir", "exporter",
    "exporter_secret", "exporter_env", "systemd_units", "renew_cron", "cluster_secret", "sysv_limits_hook",
    "logrotate", "firewall_record",
}
# provider: set by the map from the init grain (mosquitto_map.build).
_SERVICE_KEYS = {"name", "user", "group", "exporter_name", "firewall_name", "cron_name", "sysv_provider", "provider"}

# Sections whose keys are checked alike: (key, check, *args) rows for the
# collector's table() (checks: mosquitto_validate's collector methods).
_TLS_FILES = (
    ("ca_cert", "abspath"), ("ca_key", "abspath"), ("cert", "abspath"), ("key", "abspath"),
    ("ca_common_name", "text"),
)
_TLS_DAYS = (
    ("ca_days_valid", "integer", 1, 36500), ("days_valid", "integer", 1, 36500),
    ("renew_days", "integer", 0, 36500),
)
_TLS_KEYS = {
    "ca_cert", "ca_key", "ca_common_name", "ca_days_valid", "ca_server", "cert", "key",
    "days_valid", "renew_days", "key_type", "key_size", "dns_names", "ip_addresses",
    "signing_policies", "fleet_domains", "profile", "auto_renew", "own_cert", "own_key", "adopt_ca",
}
_ADOPT_CA_KEYS = {"cert", "key", "key_passphrase"}
_EXPORTER_KEYS = {"enabled", "user", "bind_address", "install", "venv_dir", "pip_pkgs"}
_EXPORTER = (("enabled", "boolean"), ("install", "choice", ("pkg", "venv")), ("venv_dir", "abspath"))
_PERSISTENCE_KEYS = {"enabled", "location", "autosave_interval", "autosave_on_changes"}
_PERSISTENCE = (
    ("enabled", "boolean"), ("location", "abspath"),
    ("autosave_interval", "integer", 0, 86400 * 7), ("autosave_on_changes", "boolean"),
)
# mosquitto.conf(5) 2.0 log_type values. `information` is where 2.0 logs
# every autosave ("Saving in-memory database", every autosave_interval + 1 s)
# besides start, stop and reload; connections and refused logins are
# `notice` (measured: test/functional/test_idle_log.py).
_LOG_TYPES = ("error", "warning", "notice", "information", "subscribe", "unsubscribe",
              "websockets", "debug", "none", "all")
_SERVICE = tuple((key, "text") for key in ("name", "user", "group", "exporter_name", "firewall_name", "cron_name"))


def __virtual__():
    # The name rules, the checks and the bridge rules are the formula's
    # _utils: without them (modules synced but not utils) map.jinja says to
    # run saltutil.sync_all.
    needed = ("mosquitto_names.is_dns_name", "mosquitto_validate.collector", "mosquitto_bridge_rules.bridges",
              "mosquitto_hashes.problem", "mosquitto_swarm_rules.swarm", "mosquitto_kubernetes_rules.check")
    if not all(name in __utils__ for name in needed):
        return (False, "mosquitto_config needs the formula's _utils (run saltutil.sync_all)")
    return __virtualname__


def _errors():
    return __utils__["mosquitto_validate.collector"]()


def _rules(name):
    """A function of _utils/mosquitto_bridge_rules.py."""
    return __utils__[f"mosquitto_bridge_rules.{name}"]


# The name rules the bridge and cluster rules use (_utils/mosquitto_names.py).
_NAME_RULES = (
    "mosquitto_names.is_bridge_name", "mosquitto_names.cluster_bridge",
    "mosquitto_names.cluster_username", "mosquitto_names.cluster_clientid",
    "mosquitto_names.is_cluster_minion_id", "mosquitto_names.cluster_minion_id_rule",
)


def _names():
    """The name rules for the bridge rules, as a plain mapping: Salt's
    ``__utils__`` resolves only inside this module's own calls, not inside
    a utils function it is handed to."""
    return {name: __utils__[name] for name in _NAME_RULES}


def _opts():
    return globals().get("__opts__") or {}


def _dirname(path):
    return os.path.dirname(str(path or "").rstrip("/")) or None


# --------------------------------------------------------------------------
# names, users and topics: public, for the CA and for salt-call
# --------------------------------------------------------------------------


def is_dns_name(name):
    """
    True for a host name usable in a certificate SAN (lower case): the rule
    the CA signs by too (_utils/mosquitto_names.py).

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_config.is_dns_name mqtt.example.com
    """
    return __utils__["mosquitto_names.is_dns_name"](name)


def check_username(name):
    """
    Mosquitto's password-file rule, from mosquitto_passwd.check_username
    (the one copy of it): None when fine, else what is wrong.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_config.check_username alice
    """
    try:
        __salt__["mosquitto_passwd.check_username"](name)
    except SaltInvocationError as exc:
        return str(exc)
    return None


def check_topic_filter(topic):
    """
    An MQTT topic filter: '#' only as the last level, '+' a whole level.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_config.check_topic_filter 'sensors/+/temp'
    """
    return _rules("check_topic_filter")(topic)


def parse_topic_line(line):
    """
    A bridge topic line '<filter> [in|out|both] [qos] [local remote]' ->
    dict, or None.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_config.parse_topic_line 'fleet/# both 1'
    """
    return _rules("parse_topic_line")(line)


def filters_overlap(a, b):
    """
    True when some topic matches both MQTT filters a and b.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_config.filters_overlap 'a/#' 'a/+/c'
    """
    return _rules("filters_overlap")(a, b)


def parse_acl_rule(rule):
    """
    'readwrite sensors/#' or just 'sensors/#' -> ('readwrite', 'sensors/#').

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_config.parse_acl_rule 'read sensors/#'
    """
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


# --------------------------------------------------------------------------
# checks of single values that need the name rules
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# the broker's version: facts for the bridge rules, asked before validate
# --------------------------------------------------------------------------


def broker_version(data):
    """
    The version of the broker the merged settings ``data`` will run, for
    :py:func:`validate`'s version-bound bridge checks (QoS 2 lines before
    2.0.15, 2.1-only options); None when no bridge or cluster line or option
    depends on it (nothing is asked then).

    Else ``{"version": str or None, "where": ...}``: in container and swarm
    mode the image's (``where`` "image <ref>": its version tag, else what the engine
    says of it); otherwise the installed package's ("installed"), else the
    version the package manager would install ("candidate", from its lists
    as they are: no refresh while rendering). Nothing found: version None.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_config.broker_version \\
            '{"pkg": {"broker": "mosquitto"}, "bridges": {"b": {"topics": ["a/# out 2"]}}}'
    """
    if not isinstance(data, dict) or not _rules("version_bound")(data.get("bridges"), data.get("cluster")):
        return None
    container = data.get("container")
    swarm = data.get("swarm")
    in_image = isinstance(swarm, dict) and swarm.get("enabled") is True
    if __utils__["mosquitto_kubernetes_rules.enabled"](data):
        # The pods run the kubernetes:image's broker.
        version, where = _image_version(data["kubernetes"])
    elif isinstance(container, dict) and (container.get("enabled") is True or in_image):
        # The broker is the image's (container or swarm mode), whatever the
        # host has installed.
        version, where = _image_version(container)
    else:
        version, where = _package_version(data)
    return {"version": version, "where": where}


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


def _package_version(data):
    """(version, where): the installed broker's version ("installed"), else
    the package manager's candidate ("candidate"), else (None, "installed").
    The candidate comes from the package lists as they are (refresh=False:
    no apt-get update while rendering; ~0.5 s of `apt-cache policy`, asked
    only when nothing is installed). A repository the formula adds itself
    (pkg:repo) is not counted before it is installed."""
    installed = _pkg_call(data, "pkg.version")
    if installed:
        return installed, "installed"
    candidate = _pkg_call(data, "pkg.latest_version", refresh=False)
    return (candidate, "candidate") if candidate else (None, "installed")


def _image_version(container):
    """Container mode: (version, "image <ref>") of the broker the image
    runs, from what the image says of itself without running it: a
    version tag (eclipse-mosquitto:2.0.18), else the image's ``VERSION``
    environment variable (eclipse-mosquitto sets it) or its OCI
    ``org.opencontainers.image.version`` label. (None, "image <ref>")
    when it says nothing or is not in the engine yet: the host's packages
    say nothing of the image's broker."""
    is_version = _rules("version_tuple")
    image = str(container.get("image") or "")
    where = f"image {image}"
    tag = image.rsplit("/", 1)[-1].partition("@")[0].partition(":")[2]
    if is_version(tag):
        return tag, where
    config = _image_config(image)
    env = dict(e.split("=", 1) for e in config.get("Env") or [] if "=" in e)
    version = env.get("VERSION") or (config.get("Labels") or {}).get("org.opencontainers.image.version")
    return (version, where) if is_version(version) else (None, where)


def _image_config(image):
    """The image's ``Config`` as the Docker engine tells it, or {}."""
    inspect = (globals().get("__salt__") or {}).get("docker.inspect_image")
    try:
        return ((inspect(image) if inspect else None) or {}).get("Config") or {}
    except Exception:  # pylint: disable=broad-except
        return {}


# --------------------------------------------------------------------------
# validate and its sections, in the order they are checked
# --------------------------------------------------------------------------


# Sections the checkers below read as mappings or lists: a pillar value of
# another type (``listeners: x``, ``tls: [a]``) is named here, before any
# checker would fail on it with an AttributeError (found by the property
# test, test/unit/test_property_render.py).
_SECTION_TYPES = {
    "ports": dict, "listeners": dict, "limits": dict, "queue": dict, "persistence": dict,
    "tls": dict, "bridges": dict, "config": dict, "exporter": dict, "firewall": dict,
    "paths": dict, "pkg": dict, "service": dict, "tofs": dict, "container": dict, "cluster": dict,
    "swarm": dict, "users": dict, "acl_patterns": list, "logging": dict, "kubernetes": dict,
}
_SUBSECTION_TYPES = {("listeners", "mqtt"): dict, ("listeners", "mqtts"): dict}
# Sections an empty key (None in YAML) may leave out: read as {}.
_MAY_BE_EMPTY = {"cluster"}
# Sections that come from the parameter files, overridden under
# mosquitto:lookup (pillar.example): named there.
_LOOKUP_SECTIONS = {"paths", "pkg", "service", "tofs"}


def _sections_have_their_types(errors, data):
    """False (each named) when a section or listener is of the wrong type,
    or empty (None) where the checkers and templates read its keys (a
    ``lookup: {paths: }`` reached the templates as a Jinja error)."""
    ok = True
    for key, kind in _SECTION_TYPES.items():
        if key in data and not isinstance(data[key], kind) and not (data[key] is None and key in _MAY_BE_EMPTY):
            path = ["lookup", key] if key in _LOOKUP_SECTIONS else [key]
            errors.add(path, f"must be a {_KIND[kind]}, got {_type_name(data[key])}")
            ok = False
    for (key, sub), kind in _SUBSECTION_TYPES.items():
        value = data.get(key)
        if isinstance(value, dict) and sub in value and not isinstance(value[sub], kind):
            errors.add([key, sub], f"must be a {_KIND[kind]}, got {_type_name(value[sub])}")
            ok = False
    return ok


_KIND = {dict: "mapping", list: "list"}


def _type_name(value):
    return "nothing (an empty key in YAML)" if value is None else type(value).__name__


def validate(data, nofile_hard_limit=None, minion_id=None, broker_version=None):
    """
    Check the merged formula settings and return a normalised copy.

    CLI Example (mosquitto_map.data passes the same arguments):

    .. code-block:: bash

        salt-call mosquitto_config.validate '{"domain": "mqtt.example.com"}'

    ``minion_id``: this minion's id (the cluster role and bridges'
    default client ids derive from it); the CLI falls back to the
    minion's own. ``broker_version``: what :py:func:`broker_version`
    returned (None: unknown, so the version-bound bridge checks refuse,
    saying why).

    ``nofile_hard_limit`` (from :py:func:`nofile_hard`) caps
    ``limits:open_files``; the result holds ``limits:open_files_effective``
    and an integer ``listeners:mqtts:max_connections``.
    """
    errors = _errors()
    data = copy.deepcopy(data)
    if not errors.mapping([], data, _TOP_KEYS) or not _sections_have_their_types(errors, data):
        errors.raise_if_any()
    if minion_id is None:
        minion_id = _opts().get("id")

    # Rendered for Kubernetes, the brokers are pods: this minion's limits
    # and cluster role say nothing about them.
    orchestrated = __utils__["mosquitto_kubernetes_rules.enabled"](data)
    data["domain"] = _dns(errors, ["domain"], data.get("domain"))
    _check_ports(errors, data.get("ports", {}))
    _check_listeners(errors, data.get("listeners", {}))
    _capacity(errors, data, None if orchestrated else nofile_hard_limit)
    exporter = data.get("exporter", {})
    _check_exporter(errors, exporter)
    data["users"] = _users(errors, data.get("users"), exporter.get("user"))
    errors.boolean(["keep_existing_users"], data.get("keep_existing_users", False))
    data["acl_patterns"] = _acl_rules(errors, ["acl_patterns"], data.get("acl_patterns", []))
    errors.integer(["max_keepalive"], data.get("max_keepalive"), 0, 65535)
    _check_queue(errors, data.get("queue", {}))
    _check_persistence(errors, data.get("persistence", {}))
    _check_logging(errors, data.get("logging", {}))
    tls = data.get("tls", {})
    _check_tls(errors, tls, data.get("listeners", {}), data["domain"])
    data["bridges"] = _rules("bridges")(errors, data.get("bridges", {}), _names(), _OWNED_OPTIONS)
    _check_config(errors, data.get("config", {}), data.get("allow_plugins", False))
    _check_bridge_links(errors, data, tls, minion_id, broker_version)
    # Swarm mode: this minion deploys every member, so it needs no mine
    # and is none of them itself (_utils/mosquitto_swarm_rules.py).
    swarm_names = {"is_dns_name": __utils__["mosquitto_names.is_dns_name"],
                   "is_cluster_minion_id": __utils__["mosquitto_names.is_cluster_minion_id"]}
    _swarm_spokes(errors, data)
    deployer = __utils__["mosquitto_swarm_rules.swarm"](errors, data.get("swarm") or {}, data, swarm_names)
    qos2_bridged = _rules("carries_qos2")(data["bridges"], data.get("cluster"))
    data["cluster"] = _rules("cluster")(errors, data.get("cluster") or {}, minion_id, data, broker_version,
                                        _names(), masterless=_opts().get("file_client") == "local",
                                        orchestrated=orchestrated or deployer)
    if orchestrated and (deployer or (data.get("container") or {}).get("enabled") is True):
        errors.add(["kubernetes", "enabled"], "Kubernetes mode excludes swarm and container mode "
                   "(one place runs the brokers): turn swarm:enabled and container:enabled off")
    _check_firewall(errors, data.get("firewall", {}))
    _check_paths(errors, data.get("paths", {}))
    _check_service(errors, data.get("service", {}))
    _check_container(errors, data.get("container", {}), data)
    _kubernetes_spokes(errors, data)
    __utils__["mosquitto_kubernetes_rules.check"](errors, data.get("kubernetes", {}), data,
                                                   __utils__["mosquitto_names.is_dns_name"])

    errors.raise_if_any()
    data.setdefault("queue", {})["max_inflight_messages_effective"] = _max_inflight(data, qos2_bridged)
    return data


def _max_inflight(data, qos2_bridged):
    """max_inflight_messages as mosquitto.conf gets it: 0 (no cap) where a
    bridge or the cluster carries QoS 2 and mosquitto:config does not set
    it, else None (mosquitto's default, 20). Mosquitto 2.0 answers a QoS 2
    PUBLISH past the cap with a PUBREC that says "quota exceeded" (MQTT
    3.1.1 cannot say it) and drops the message; a bridge sends one past
    the remote's cap after each reconnect with a backlog: its $SYS state
    PUBACK adds to its send quota (measured on 2.0.21: 1 in 21 lost after
    a hub restart; eclipse/mosquitto#3275, #3611)."""
    if not qos2_bridged or "max_inflight_messages" in (data.get("config") or {}):
        return None
    return 0


def _known_spokes(errors, data, mode, what):
    """The cluster's spokes this minion already knows, from the Salt mine,
    as the hub of a host cluster knows them (mosquitto_cluster.spokes: the
    minions matching cluster:members that published a well-formed bridge
    identity), for ``mode``:spokes left unset (None) while ``mode`` is on:
    so a host cluster's pillar plus ``<mode>:enabled`` moves the whole
    cluster. None when not asked (mode off, no cluster, a value set).
    Masterless there is no mine to ask: refused, naming the key."""
    settings = data.get(mode)
    if not isinstance(settings, dict) or settings.get("spokes") is not None or settings.get("enabled") is not True:
        return None
    cluster = data.get("cluster") if isinstance(data.get("cluster"), dict) else {}
    hub = cluster.get("hub") or ""
    if not hub or not isinstance(hub, str):
        return None
    if _opts().get("file_client") == "local" or "mosquitto_cluster.spokes" not in __salt__:
        errors.add([mode, "spokes"], "not set, and without a Salt master (salt-call --local) there is no "
                   f"mine to learn the cluster's spokes from: set {what}")
        return None
    members = cluster.get("members", "*")
    return sorted(__salt__["mosquitto_cluster.spokes"](members if isinstance(members, str) else "*", hub))


def _swarm_spokes(errors, data):
    """swarm:spokes unset: the spokes the mine knows (_known_spokes); an
    explicit list (also []) wins."""
    known = _known_spokes(errors, data, "swarm", "their names")
    if isinstance(data.get("swarm"), dict) and data["swarm"].get("spokes") is None:
        data["swarm"]["spokes"] = known or []


def _kubernetes_spokes(errors, data):
    """kubernetes:spokes unset: as many spoke replicas as the mine knows
    spokes (_known_spokes); an explicit count wins."""
    known = _known_spokes(errors, data, "kubernetes", "the number of spoke replicas")
    if known is not None and not known:
        errors.add(["kubernetes", "spokes"], "not set, and the Salt mine knows no spoke of this cluster "
                   "(none matching cluster:members published its bridge identity): set the number of replicas")
    elif known:
        data["kubernetes"]["spokes"] = len(known)


def _check_ports(errors, ports):
    if not errors.mapping(["ports"], ports, {"mqtt", "mqtts", "exporter"}):
        return
    for key, value in ports.items():
        errors.integer(["ports", key], value, 1, 65535)
    values = [v for v in ports.values() if isinstance(v, int)]
    if len(set(values)) != len(values):
        errors.add(["ports"], f"ports must differ, got {ports}")


def _check_listeners(errors, listeners):
    if not errors.mapping(["listeners"], listeners, {"mqtt", "mqtts"}):
        return
    mqtt = listeners.get("mqtt", {})
    if errors.mapping(["listeners", "mqtt"], mqtt, {"bind_address", "options", "allow_remote_plain"}):
        _bind_address(errors, ["listeners", "mqtt", "bind_address"], mqtt.get("bind_address", ""))
        _listener_options(errors, "mqtt", mqtt, _LISTENER_OPTIONS)
        _plain_reach(errors, mqtt)
    mqtts = listeners.get("mqtts", {})
    if errors.mapping(["listeners", "mqtts"], mqtts, {"bind_address", "tls_version", "max_connections", "options"}):
        _bind_address(errors, ["listeners", "mqtts", "bind_address"], mqtts.get("bind_address", ""))
        errors.choice(["listeners", "mqtts", "tls_version"], mqtts.get("tls_version"), _TLS_VERSIONS)
        _listener_options(errors, "mqtts", mqtts, _LISTENER_OPTIONS | _TLS_LISTENER_OPTIONS)


def _is_loopback(address):
    """True for an address only this host reaches ('localhost' included)."""
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False  # '' (every address) or another host name


def _plain_reach(errors, mqtt):
    """Plain MQTT (no TLS: passwords and messages in clear text) stays on
    loopback unless listeners:mqtt:allow_remote_plain says otherwise."""
    path = ["listeners", "mqtt"]
    allowed = mqtt.get("allow_remote_plain", False)
    if not errors.boolean(path + ["allow_remote_plain"], allowed) or allowed:
        return
    address = mqtt.get("bind_address", "")
    options = mqtt.get("options")
    interface = options.get("bind_interface", "lo") if isinstance(options, dict) else "lo"
    why = ("plain MQTT carries passwords and messages in clear text; keep 127.0.0.1 or ::1 "
           "(clients elsewhere use ports:mqtts), or set listeners:mqtt:allow_remote_plain: true "
           "to accept that")
    if isinstance(address, str) and not _is_loopback(address):
        shown = "'' (every address)" if address == "" else repr(address)
        errors.add(path + ["bind_address"], f"{shown} is not a loopback address: {why}")
    if interface != "lo":
        errors.add(path + ["options", "bind_interface"], f"{interface!r} is not the loopback interface lo: {why}")


def _listener_options(errors, name, listener, allowed):
    """listeners:<name>:options: only options mosquitto applies per listener."""
    options = listener.setdefault("options", {})
    if options is None:
        options = listener["options"] = {}
    errors.options(["listeners", name, "options"], options, _OWNED_OPTIONS, allowed=allowed)


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
    if init != "systemd":
        value = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        return None if value == resource.RLIM_INFINITY else value
    hard = None
    try:
        with open("/proc/1/limits", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Max open files"):
                    value = line.split()[4]
                    hard = int(value) if value.isdigit() else None
    except OSError:
        hard = None
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
    if not errors.mapping(["limits"], limits, {"open_files"}):
        return
    if not errors.integer(["limits", "open_files"], limits.get("open_files"), 1024, 1048576):
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
    elif errors.integer(path, value, 1, 1048576):
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


def _check_exporter(errors, exporter):
    path = ["exporter"]
    if not errors.mapping(path, exporter, _EXPORTER_KEYS):
        return
    errors.table(path, exporter, _EXPORTER)
    for i, req in enumerate(errors.listing(path + ["pip_pkgs"], exporter.get("pip_pkgs", []))):
        if errors.text(path + ["pip_pkgs", i], req) and not _PIP_REQUIREMENT.match(req):
            errors.add(path + ["pip_pkgs", i], f"is not a pip requirement: {req!r}")
    problem = check_username(exporter.get("user"))
    if problem:
        errors.add(path + ["user"], f"must be a valid MQTT user name: {problem}")
    _bind_address(errors, path + ["bind_address"], exporter.get("bind_address"))


def _users(errors, users, exporter_user):
    path = ["users"]
    if not isinstance(users, dict):
        errors.add(path, f"must be a mapping of user name to settings, got {type(users).__name__}")
        return {}
    out = {}
    for name, spec in users.items():
        entry = _user(errors, path + [name], spec, exporter_user)
        if entry is not None:
            out[name] = entry
    return out


def _user(errors, upath, spec, exporter_user):
    """users:<name> -> {password or password_hash, acl}, or None."""
    name = upath[-1]
    problem = check_username(name)
    if problem:
        errors.add(upath, f"bad user name: {problem}")
        return None
    if name == exporter_user:
        errors.add(upath, "is reserved for the exporter (its password is generated "
                   "on the host); pick another name or change exporter:user")
        return None
    spec = {} if spec is None else spec
    if not errors.mapping(upath, spec, _USER_KEYS):
        return None
    entry = _user_password(errors, upath, spec)
    if entry is not None:
        # No `acl` key: DEFAULT_ACL. `acl: []` is what it says: no rule, so
        # no topic at all (never "empty, hence the default").
        entry["acl"] = _acl_rules(errors, upath + ["acl"], spec["acl"]) if "acl" in spec else list(DEFAULT_ACL)
    return entry


def _user_password(errors, upath, spec):
    """Exactly one of password (plain) or password_hash."""
    has_plain, has_hash = "password" in spec, "password_hash" in spec
    if has_plain == has_hash:
        errors.add(upath + ["password"], "missing: give exactly one of password or password_hash"
                   if not has_plain else "give password or password_hash, not both")
        return None
    if has_hash:
        # The one strict shape (_utils/mosquitto_hashes.py): the broker runs
        # a $7$ hash's iteration count at every login of that user.
        problem = __utils__["mosquitto_hashes.problem"](spec["password_hash"])
        if problem:
            errors.add(upath + ["password_hash"], f"{problem} (a line of mosquitto_passwd "
                       "without 'user:')")
            return None
        return {"password_hash": spec["password_hash"]}
    pw = spec["password"]
    if not isinstance(pw, str) or pw == "":
        errors.add(upath + ["password"], "must be a non-empty string (quote it in YAML)")
        return None
    if "\n" in pw or "\r" in pw or "\0" in pw:
        errors.add(upath + ["password"], "must not contain line breaks or NUL")
        return None
    return {"password": pw}


def _acl_rules(errors, path, rules):
    out = []
    for i, rule in enumerate(errors.listing(path, rules)):
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


def _check_queue(errors, queue):
    if not errors.mapping(["queue"], queue, {"max_queued_messages", "persistent_client_expiration"}):
        return
    errors.integer(["queue", "max_queued_messages"], queue.get("max_queued_messages"), 0, 2**31 - 1)
    exp = queue.get("persistent_client_expiration")
    if exp not in ("", None) and not (isinstance(exp, str) and _DURATION.match(exp)):
        errors.add(["queue", "persistent_client_expiration"],
                   f"must be like 14d, 12h, 2w, 1m, 1y or '' (never), got {exp!r}")


def _check_persistence(errors, persistence):
    if not errors.mapping(["persistence"], persistence, _PERSISTENCE_KEYS):
        return
    errors.table(["persistence"], persistence, _PERSISTENCE)
    if isinstance(persistence.get("location"), str) and not persistence["location"].endswith("/"):
        persistence["location"] += "/"  # mosquitto concatenates the file name
    if persistence.get("autosave_on_changes") is True and persistence.get("autosave_interval") == 0:
        # 0 turns autosave off in either mode: not what on_changes asks for.
        errors.add(["persistence", "autosave_interval"],
                   "must be a count of at least 1 when autosave_on_changes is true")


def _check_logging(errors, logging):
    if not errors.mapping(["logging"], logging, {"types"}):
        return
    path = ["logging", "types"]
    types = errors.listing(path, logging.get("types"))
    if isinstance(logging.get("types"), list) and not types:
        # No log_type line at all is mosquitto's own default, information included.
        errors.add(path, "must name at least one type (none: no log)")
    for i, kind in enumerate(types):
        errors.choice(path + [i], kind, _LOG_TYPES)


def _check_tls(errors, tls, listeners, domain):
    path = ["tls"]
    if not errors.mapping(path, tls, _TLS_KEYS):
        return
    errors.table(path, tls, _TLS_FILES)
    if tls.get("ca_server", "") != "":
        errors.text(path + ["ca_server"], tls.get("ca_server"))
    errors.table(path, tls, _TLS_DAYS)
    if isinstance(tls.get("renew_days"), int) and isinstance(tls.get("days_valid"), int) \
            and tls["renew_days"] >= tls["days_valid"]:
        errors.add(path + ["renew_days"], "must be below days_valid, or every run would reissue the certificate")
    _tls_profile(errors, tls, listeners)
    errors.boolean(path + ["auto_renew"], tls.get("auto_renew"))
    _tls_own_cert(errors, tls)
    _tls_key(errors, tls)
    _tls_names(errors, tls)
    tls["signing_policies"] = _signing_policies(errors, path + ["signing_policies"],
                                                tls.get("signing_policies", []))
    tls["fleet_domains"] = _fleet_domains(errors, path + ["fleet_domains"], tls.get("fleet_domains", []))
    _adopt_ca(errors, tls)
    if domain and len(domain) > _MAX_CN:
        errors.add(["domain"], f"has {len(domain)} characters, but it is the certificate's common name, "
                               f"which holds at most {_MAX_CN} (RFC 5280): use a shorter domain and put "
                               "the long name in tls:dns_names")
    if domain:
        # The domain first, then extra names, each once: the SAN list.
        tls["san_dns"] = list(dict.fromkeys([domain] + tls["dns_names"]))


def _tls_own_cert(errors, tls):
    """tls:own_cert and own_key: both or neither; not with a fleet CA."""
    own = {key: tls.get(key, "") for key in ("own_cert", "own_key")}
    for key, value in own.items():
        errors.abspath(["tls", key], value, empty=True)
    if bool(own["own_cert"]) != bool(own["own_key"]):
        missing = "own_key" if own["own_cert"] else "own_cert"
        errors.add(["tls", missing], "is needed with tls:own_cert and tls:own_key both set or both empty "
                                     "(a certificate the formula does not issue comes with its key)")
    if own["own_cert"] and tls.get("ca_server"):
        errors.add(["tls", "own_cert"], "and tls:ca_server exclude each other: a certificate issued "
                                        "elsewhere is not signed by the fleet's CA minion")
    if own["own_cert"] and own["own_cert"] in (tls.get("cert"), tls.get("key")):
        errors.add(["tls", "own_cert"], "must not be tls:cert or tls:key: the formula copies it there")
    if own["own_key"] and own["own_key"] in (tls.get("cert"), tls.get("key")):
        errors.add(["tls", "own_key"], "must not be tls:cert or tls:key: the formula copies it there")
def _adopt_ca(errors, tls):
    """tls:adopt_ca: the shape only. Whether the files are there, open with
    the passphrase and belong together is mosquitto_adopt.ca_check's, on
    the host, while configure.tls renders. The passphrase is never echoed."""
    path = ["tls", "adopt_ca"]
    adopt = tls.setdefault("adopt_ca", {"cert": "", "key": "", "key_passphrase": ""})
    if not errors.mapping(path, adopt, _ADOPT_CA_KEYS):
        return
    adopt.setdefault("key_passphrase", "")
    cert_ok = errors.abspath(path + ["cert"], adopt.setdefault("cert", ""), empty=True)
    key_ok = errors.abspath(path + ["key"], adopt.setdefault("key", ""), empty=True)
    if not isinstance(adopt["key_passphrase"], str):
        errors.add(path + ["key_passphrase"], "must be a string")
    if cert_ok and key_ok and bool(adopt["cert"]) != bool(adopt["key"]):
        missing = "key" if adopt["cert"] else "cert"
        errors.add(path + [missing], "must be given with tls:adopt_ca:" + ("cert" if missing == "key" else "key")
                   + ": the CA certificate and its key are adopted together")
    if adopt["cert"] and tls.get("ca_server", "") != "":
        errors.add(path + ["cert"], "cannot be used with tls:ca_server: a fleet's CA lives on its CA minion")
    if adopt["cert"] and tls.get("own_cert", ""):
        errors.add(path + ["cert"], "cannot be used with tls:own_cert: with a certificate issued elsewhere "
                                    "the formula issues nothing, so there is no CA of its own to adopt into")


def _tls_key(errors, tls):
    """tls:key_type and key_size: only keys a fleet CA signs (mosquitto_pki)."""
    if not errors.choice(["tls", "key_type"], tls.get("key_type"), _KEY_TYPES):
        return
    if tls["key_type"] == "rsa":
        errors.choice(["tls", "key_size"], tls.get("key_size"), (2048, 3072, 4096))
    elif tls.get("key_size") == 521:
        errors.add(["tls", "key_size"], "EC P-521 is not signed: key_size 256 (P-256, the default) or 384 (P-384)")


def _tls_profile(errors, tls, listeners):
    """tls:profile -> the listener's ciphers; modern also raises the TLS floor."""
    if not errors.choice(["tls", "profile"], tls.get("profile"), tuple(TLS_PROFILES)):
        return
    tls["ciphers"] = TLS_PROFILES[tls["profile"]]
    mqtts = listeners.get("mqtts") if isinstance(listeners, dict) else None
    if tls["profile"] == "modern" and isinstance(mqtts, dict):
        mqtts["tls_version"] = "tlsv1.3"  # the floor for listener and bridges


def _tls_names(errors, tls):
    """tls:dns_names and ip_addresses, normalised (the certificate's extra SANs)."""
    names = errors.listing(["tls", "dns_names"], tls.get("dns_names", []))
    tls["dns_names"] = [n for i, name in enumerate(names) if (n := _dns(errors, ["tls", "dns_names", i], name))]
    ips = errors.listing(["tls", "ip_addresses"], tls.get("ip_addresses", []))
    tls["ip_addresses"] = [a for i, ip in enumerate(ips) if (a := errors.ip(["tls", "ip_addresses", i], ip))]


def _signing_policies(errors, path, policies):
    """tls:signing_policies (read by the CA minion): who may get which names."""
    out = []
    for i, spec in enumerate(errors.listing(path, policies)):
        policy = _signing_policy(errors, path + [i], spec)
        if policy is not None:
            out.append(policy)
    return out


def _signing_policy(errors, ppath, spec):
    if not errors.mapping(ppath, spec, _POLICY_KEYS):
        return None
    minions = spec.get("minions")
    if not errors.text(ppath + ["minions"], minions):
        return None
    policy = {"minions": minions.strip().lower(), "dns_names": [], "wildcard_dns_names": [], "ip_networks": [],
              "max_days": None}
    for key, check in (("dns_names", _policy_dns_pattern), ("wildcard_dns_names", _policy_wildcard)):
        for j, value in enumerate(errors.listing(ppath + [key], spec.get(key, []))):
            value = check(errors, ppath + [key, j], value)
            if value is not None:
                policy[key].append(value)
    for j, net in enumerate(errors.listing(ppath + ["ip_networks"], spec.get("ip_networks", []))):
        try:
            policy["ip_networks"].append(str(ipaddress.ip_network(str(net), strict=True)))
        except ValueError:
            errors.add(ppath + ["ip_networks", j],
                       f"must be a network such as 192.0.2.0/24 (host bits zero), got {net!r}")
    if spec.get("max_days") is not None and errors.integer(ppath + ["max_days"], spec["max_days"], 1,
                                                           _MAX_LEAF_DAYS):
        policy["max_days"] = spec["max_days"]
    return policy


def _policy_dns_pattern(errors, jpath, pattern):
    """A DNS name glob of a signing policy, lower case, or None. The CA
    matches it label by label (``*`` never spans a dot), so each label is
    checked alone; the last must be literal, or a minion could pick its
    top-level domain."""
    if not errors.text(jpath, pattern):
        return None
    pattern = pattern.strip().lower().rstrip(".")
    labels = pattern.split(".")
    if len(pattern) > 253 or not all(len(label) <= 63 and _GLOB_LABEL.match(label) for label in labels):
        errors.add(jpath, f"must be a DNS name glob such as '*.example.com' (`*`, `?` and `[a-z]` within a "
                          f"label), got {pattern!r}")
        return None
    if all(label.strip("*?") == "" for label in labels):
        errors.add(jpath, f"{pattern!r} matches every name: list the domains instead")
        return None
    if not is_dns_name(labels[-1]):
        errors.add(jpath, f"{pattern!r}: its last label must be literal (such as 'com'), or a minion could "
                          "have that name under any top-level domain")
        return None
    return pattern


def _policy_wildcard(errors, jpath, name):
    """A wildcard name a policy lets its minions have, exactly: '*.' and a
    name of at least two labels (OpenSSL matches '*.lan' against nothing)."""
    if not errors.text(jpath, name):
        return None
    name = name.strip().lower().rstrip(".")
    rest = name[2:] if name.startswith("*.") else ""
    if not is_dns_name(rest) or "." not in rest or len(name) > 253:
        errors.add(jpath, f"must be a wildcard DNS name such as '*.edge.example.com' ('*.' and at least two "
                          f"labels), got {name!r}")
        return None
    return name


def _fleet_domains(errors, path, domains):
    """tls:fleet_domains (read by the CA minion): each minion may have
    ``<id>.<domain>`` for these. Plain names, lower case, each once."""
    out = []
    for i, domain in enumerate(errors.listing(path, domains)):
        name = _dns(errors, path + [i], domain)
        if name is not None and name.rstrip(".") not in out:
            out.append(name.rstrip("."))
    return out


def signing_policies(policies):
    """
    Check and normalise ``mosquitto:tls:signing_policies`` (a list of
    {minions, dns_names, wildcard_dns_names, ip_networks, max_days}) as
    :py:func:`validate` does; raises naming the key. For an operator to try policies before
    they go into the CA minion's pillar (the CA itself reads them from the
    validated map, ``mosquitto_map.data``), and for the tests' stand-in map.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_config.signing_policies '[{minions: "edge*", dns_names: ["*.edge.example.com"]}]'
    """
    errors = _errors()
    out = _signing_policies(errors, ["tls", "signing_policies"], [] if policies is None else policies)
    errors.raise_if_any()
    return out


def _check_config(errors, config, allow_plugins):
    """mosquitto:config, free-form global options: none the formula writes,
    none that belongs to one listener or to a bridge, no plugin unless
    allow_plugins."""
    errors.options(["config"], config, _OWNED_OPTIONS, per_listener=_PER_LISTENER)
    _rules("global_not_bridge")(errors, config)
    if not errors.boolean(["allow_plugins"], allow_plugins) or allow_plugins or not isinstance(config, dict):
        return
    for key in sorted(k for k in config if isinstance(k, str) and is_plugin_option(k)):
        errors.add(["config", key], "loads or configures a broker plugin, which authenticates and authorises "
                   "clients itself instead of the formula's password file and ACLs: set allow_plugins: true "
                   "to accept that")


def is_plugin_option(name):
    """
    True for a mosquitto.conf option that loads or configures a plugin.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_config.is_plugin_option auth_plugin
    """
    return name in _PLUGIN_OPTIONS or name.startswith(_PLUGIN_PREFIXES)


def _check_bridge_links(errors, data, tls, minion_id, version):
    """Bridges as a whole: versions, loops to this broker, client ids."""
    _rules("bridge_versions")(errors, data["bridges"], version)
    own_names = [data["domain"]] + list((tls or {}).get("dns_names") or [])
    _rules("bridge_pairs")(errors, data["bridges"], own_names)
    _rules("default_clientids")(data["bridges"], minion_id)


def _check_firewall(errors, firewall):
    path = ["firewall"]
    if not errors.mapping(path, firewall, {"enabled", "zone", "mode", "ssh", "extra_ports"}):
        return
    errors.choice(path + ["enabled"], firewall.get("enabled"), (True, False, "auto"))
    errors.choice(path + ["mode"], firewall.get("mode"), ("exclusive", "shared"))
    if errors.text(path + ["zone"], firewall.get("zone")) and not _FIREWALL_ZONE.match(firewall["zone"]):
        errors.add(path + ["zone"], f"is not a firewalld zone name: {firewall['zone']!r}")
    errors.boolean(path + ["ssh"], firewall.get("ssh"))
    for i, port in enumerate(errors.listing(path + ["extra_ports"], firewall.get("extra_ports", []))):
        if not (isinstance(port, str) and _FIREWALL_PORT.match(port)):
            errors.add(path + ["extra_ports", i], f"must be like '1234/tcp', got {port!r}")


def _check_paths(errors, paths):
    """lookup:paths: absolute paths; bridges_dir a directory of its own."""
    if not errors.mapping(["lookup", "paths"], paths, _PATHS_KEYS):
        return
    for key, value in paths.items():
        if key in _PATHS_KEYS:
            errors.abspath(["lookup", "paths", key], value, empty=key in _PATHS_MAY_BE_EMPTY)
    # The formula empties bridges_dir of other *.conf files.
    if paths.get("bridges_dir") and paths.get("bridges_dir") in (paths.get("include_dir"),
                                                                  _dirname(paths.get("conf"))):
        errors.add(["lookup", "paths", "bridges_dir"], "must be a directory of its own "
                   "(not include_dir, not the directory of mosquitto.conf)")


def _check_service(errors, service):
    if errors.mapping(["lookup", "service"], service, _SERVICE_KEYS):
        errors.table(["lookup", "service"], service, _SERVICE)


# --------------------------------------------------------------------------
# container mode
# --------------------------------------------------------------------------

_CONTAINER_KEYS = {
    "enabled", "name", "image", "uid", "gid", "network", "subnet", "ip", "publish",
    "restart_policy", "nofile", "healthcheck",
}
_DOCKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*\Z")
_PUBLISH = re.compile(r"^(?:(\[[0-9a-fA-F:]+\]|[0-9.]+):)?([0-9]{1,5}):([0-9]{1,5})\Z")
_RESTART_POLICY = re.compile(r"^(no|always|unless-stopped|on-failure(:[0-9]+)?)\Z")
_HEALTHCHECK = (
    ("interval", "integer", 1, 3600), ("timeout", "integer", 1, 3600),
    ("start_period", "integer", 1, 3600), ("retries", "integer", 1, 100),
)


def _check_container(errors, container, data):
    """mosquitto:container: the broker in a Docker container (container mode)."""
    path = ["container"]
    if not errors.mapping(path, container, _CONTAINER_KEYS):
        return
    errors.boolean(path + ["enabled"], container.get("enabled"))
    _container_identity(errors, path, container)
    host_net = _container_network(errors, path, container)
    _container_publish(errors, path, container, host_net, data)
    _container_runtime(errors, path, container)


def _container_identity(errors, path, container):
    """name, image, and the uid/gid the broker runs as (never root)."""
    if errors.text(path + ["name"], container.get("name")) and not _DOCKER_NAME.match(container["name"]):
        errors.add(path + ["name"], f"is not a container name: {container['name']!r}")
    if errors.text(path + ["image"], container.get("image")) and not _IMAGE_REF.match(container["image"]):
        errors.add(path + ["image"], f"is not an image reference: {container['image']!r}")
    for key in ("uid", "gid"):
        if errors.integer(path + [key], container.get(key), 0, 2**31 - 2) and container[key] == 0:
            errors.add(path + [key], "must not be 0: the broker never runs as root in its container")


def _container_network(errors, path, container):
    """network, subnet and ip; returns whether the network is the host's."""
    network = container.get("network")
    if errors.text(path + ["network"], network):
        if network in ("bridge", "none", "default") or not _DOCKER_NAME.match(network):
            errors.add(path + ["network"],
                       f"must be host or the name of a network the formula creates, got {network!r}")
    host_net = network == "host"
    subnet = _container_subnet(errors, path, container.get("subnet", ""), host_net)
    ip = container.get("ip", "")
    if ip == "":
        return host_net
    if host_net:
        errors.add(path + ["ip"], "only for a named network (network is host)")
    elif (addr := errors.ip(path + ["ip"], ip)) and subnet and ipaddress.ip_address(addr) not in subnet:
        errors.add(path + ["ip"], f"{ip} is not in subnet {subnet}")
    elif not subnet:
        errors.add(path + ["ip"], "needs container:subnet (a fixed address needs a known subnet)")
    return host_net


def _container_subnet(errors, path, subnet, host_net):
    """The subnet as a network ('' when not given, None when not one)."""
    if subnet == "":
        return subnet
    if host_net:
        errors.add(path + ["subnet"], "only for a named network (network is host)")
        return subnet
    try:
        return ipaddress.ip_network(str(subnet))
    except ValueError:
        errors.add(path + ["subnet"], f"is not a network like 198.19.0.0/24: {subnet!r}")
        return None


def _container_publish(errors, path, container, host_net, data):
    for i, spec in enumerate(errors.listing(path + ["publish"], container.get("publish", []))):
        m = _PUBLISH.match(str(spec))
        if host_net:
            errors.add(path + ["publish", i], "has no effect with network host: the broker's listeners are the host's")
        elif not m or not all(0 < int(p) < 65536 for p in m.group(2, 3)):
            errors.add(path + ["publish", i], f"must be '[host_ip:]host_port:container_port', got {spec!r}")
        elif int(m.group(3)) == data.get("ports", {}).get("mqtt") and m.group(1) not in ("127.0.0.1", "[::1]") \
                and _remote_plain_allowed(data) is not True:
            # Docker's port publishing goes around firewalld: plain MQTT
            # stays on loopback, as for the listener (_plain_reach).
            errors.add(path + ["publish", i], "plain MQTT (ports:mqtt) may only be published on 127.0.0.1 "
                       "(or set listeners:mqtt:allow_remote_plain: true to accept clear text off this host)")


def _remote_plain_allowed(data):
    listeners = data.get("listeners")
    mqtt = listeners.get("mqtt") if isinstance(listeners, dict) else None
    return mqtt.get("allow_remote_plain", False) if isinstance(mqtt, dict) else False


def _container_runtime(errors, path, container):
    """restart policy, open-files limit and health check."""
    policy = container.get("restart_policy")
    if not (isinstance(policy, str) and _RESTART_POLICY.match(policy)):
        errors.add(path + ["restart_policy"], f"must be no, always, unless-stopped or on-failure[:N], got {policy!r}")
    errors.integer(path + ["nofile"], container.get("nofile"), 1024, 1048576)
    health = container.get("healthcheck", {})
    if errors.mapping(path + ["healthcheck"], health, {"interval", "timeout", "retries", "start_period"}):
        errors.table(path + ["healthcheck"], health, _HEALTHCHECK)
