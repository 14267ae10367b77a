"""
What mosquitto 2.0 accepts in a bridge's ``connection`` section, and the
hub-and-spoke cluster's rules: pillar ``bridges`` and ``cluster`` as
mosquitto_config.validate checks them, plus the MQTT topic grammar they (and
the ACL rules) share.

The facts behind the rules were measured on Debian 12's mosquitto 2.0.11
brokers and read in Mosquitto's 2.0 sources (the README's "A cluster of
bridged brokers" gives the numbers and the eclipse/mosquitto issues). In
short:

* a bridge option outside its section, or an unknown one, stops the broker
  (or, in a bridge, silently changes the whole broker); 2.1-only options
  are refused by 2.0;
* QoS 2 topic lines lose messages across reconnects before 2.0.15;
* ``both`` in a cycle, a bridge back to this broker, or two bridges to one
  remote sharing topics multiply messages or deliver them twice;
* mosquitto 2.0 does not read ``[ipv6]:port``.

Reached as ``__utils__["mosquitto_bridge_rules.<function>"]``. Salt gives
``_utils`` files no ``__utils__``, so the checks come in with the error
collector (``errors``, from mosquitto_validate.collector) and the name rules
of mosquitto_names with ``names``: a plain mapping like ``__utils__``
(``{"mosquitto_names.is_bridge_name": <function>, ...}``; a module's
``__utils__`` itself resolves only inside that module's own calls).
"""
import fnmatch
import ipaddress
import re

__virtualname__ = "mosquitto_bridge_rules"

# Keys of pillar bridges:<name>, and the defaults of those left out.
BRIDGE_KEYS = {
    "address", "topics", "remote_username", "remote_password", "tls",
    "cleansession", "notifications", "keepalive_interval", "options",
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
# Common global options, named when misplaced in a bridge.
_GLOBAL_HINTS = {
    "log_type", "log_timestamp", "connection_messages", "sys_interval", "max_inflight_messages",
    "max_packet_size", "message_size_limit", "retain_available", "set_tcp_nodelay",
    "queue_qos0_messages", "upgrade_outgoing_qos", "allow_zero_length_clientid", "clientid_prefixes",
    "mount_point", "protocol", "socket_domain", "require_certificate", "use_identity_as_username",
    "psk_hint", "psk_file", "websockets_log_level", "memory_limit", "max_connections",
}
# The first release that keeps QoS 2 bridge messages across reconnects
# (eclipse/mosquitto#3275, #2165, PR #2092; 690-1,068 of 3,000 lost on 2.0.11).
_QOS2_SAFE = (2, 0, 15)
_CLUSTER_KEYS = {"hub", "members", "topics", "keepalive_interval", "restart_timeout"}
# A host is printable, without blanks or ':' (controls would start a new
# line in the bridge file; render_section refuses them too, but only when
# the state runs).
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^:\s\x00-\x1f\x7f-\x9f]+)(?::([0-9]+))?\Z")
# Bridge keys checked alike (after the defaults are filled in).
_BRIDGE_FLAGS = (
    ("tls", "boolean"), ("cleansession", "boolean"), ("notifications", "boolean"),
    ("keepalive_interval", "integer", 5, 65535),
)


def __virtual__():
    return __virtualname__


# --------------------------------------------------------------------------
# MQTT topic grammar
# --------------------------------------------------------------------------


def check_topic_filter(topic):
    """An MQTT topic filter: '#' only as the last level, '+' a whole level."""
    if not isinstance(topic, str) or not topic or " " in topic:
        return False
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in topic):
        return False
    levels = topic.split("/")
    last = len(levels) - 1
    return all(_level_ok(level, i == last) for i, level in enumerate(levels))


def _level_ok(level, is_last):
    if "#" in level and (level != "#" or not is_last):
        return False
    return "+" not in level or level == "+"


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


# --------------------------------------------------------------------------
# the broker's version (facts passed in: see mosquitto_config.broker_version)
# --------------------------------------------------------------------------


def version_tuple(version):
    """'2.0.11-1.2+deb12u2' (or '1:2.0.18') -> (2, 0, 11); None when no version."""
    m = re.match(r"^(?:[0-9]+:)?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?", str(version or ""))
    return tuple(int(g or 0) for g in m.groups()) if m else None


def _specs(bridges):
    return [b for b in bridges.values() if isinstance(b, dict)] if isinstance(bridges, dict) else []


def carries_qos2(bridges, cluster):
    """Whether a pillar bridge or the cluster has a QoS 2 topic line.
    Takes pillar as given, before validation: anything malformed counts as
    nothing here (validate reports it)."""
    lines = [t for spec in _specs(bridges) + [cluster] for t in _list_at(spec, "topics")]
    return any((parse_topic_line(line) or {}).get("qos") == "2" for line in lines if isinstance(line, str))


def version_bound(bridges, cluster):
    """Whether any bridge line or option depends on the broker's version
    (only then is it worth asking the package manager or the image).
    Pillar as given, like carries_qos2."""
    if carries_qos2(bridges, cluster):
        return True
    return any(k in _BRIDGE_21 for b in _specs(bridges) if isinstance(b.get("options"), dict) for k in b["options"])


def _list_at(spec, key):
    """spec[key] when spec is a mapping and that is a list, else []."""
    value = spec.get(key) if isinstance(spec, dict) else None
    return value if isinstance(value, list) else []


def _shown_version(broker_version):
    """The broker's version as the messages say it: broker_version is None
    (unknown) or {"version": str|None, "where": "installed"|"candidate"|"image <ref>"}."""
    version, where = (broker_version or {}).get("version"), (broker_version or {}).get("where")
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


def _below(broker_version, bound):
    """True when the broker is older than ``bound``, or its version unknown."""
    have = version_tuple((broker_version or {}).get("version"))
    return have is None or have < bound


def _qos2_problem(broker_version):
    return ("QoS 2 on a bridge loses messages across reconnects before mosquitto 2.0.15 "
            f"(eclipse/mosquitto#3275, #2165); {_shown_version(broker_version)}: use QoS 1")


# --------------------------------------------------------------------------
# pillar bridges
# --------------------------------------------------------------------------


def bridges(errors, bridges, names, global_options):
    """Check pillar ``bridges`` and return them with their defaults filled
    in (the bridges that passed the name and key checks).

    names: mosquitto_names' is_bridge_name (see the module's docstring);
    global_options: options the formula writes in the global section (a
    bridge option by that name is named as misplaced)."""
    path = ["bridges"]
    if not isinstance(bridges, dict):
        errors.add(path, "must be a mapping of bridge name to settings")
        return {}
    out = {}
    for name, spec in bridges.items():
        bridge = _bridge(errors, path + [name], spec, names, global_options)
        if bridge is not None:
            out[name] = bridge
    return out


def _bridge(errors, bpath, spec, names, global_options):
    if not names["mosquitto_names.is_bridge_name"](bpath[-1]):
        errors.add(bpath, "bridge names use letters, digits, '_', '.', '-'")
        return None
    if not errors.mapping(bpath, spec, BRIDGE_KEYS):
        return None
    bridge = {
        "tls": True, "cleansession": False, "notifications": True,
        "keepalive_interval": 60, "topics": [], "options": {},
    }
    bridge.update(spec)
    bridge["address"] = _addresses(errors, bpath, bridge.get("address"))
    # topics and options of the wrong type are named, then read as empty by
    # the checks after this one (a `topics: true` made them raise a
    # TypeError naming nothing; found by the property test).
    bridge["topics"] = _topic_lines(errors, bpath, bridge["topics"])
    errors.table(bpath, bridge, _BRIDGE_FLAGS)
    _credentials(errors, bpath, bridge)
    errors.options(bpath + ["options"], bridge["options"], owned=_BRIDGE_OWNED)
    if not isinstance(bridge["options"], dict):
        bridge["options"] = {}
    _option_names(errors, bpath, bridge, global_options)
    _address_safety(errors, bpath, bridge)
    _topic_safety(errors, bpath, bridge)
    return bridge


def _addresses(errors, bpath, addresses):
    """address: host[:port], or a list of them (the first is primary).
    Strings only: ``address: true`` is no host named 'True'."""
    if addresses == []:
        errors.add(bpath + ["address"], "must be host[:port] or a list of them, got an empty list")
    addresses = addresses if isinstance(addresses, list) else [addresses]
    for i, addr in enumerate(addresses):
        apath = bpath + ["address"] + ([i] if len(addresses) > 1 else [])
        m = _ADDRESS.match(addr) if isinstance(addr, str) else None
        if not m:
            errors.add(apath, f"must be host[:port] (a string such as broker.example.net:8883), got {addr!r}")
        elif m.group(2) and not 0 < int(m.group(2)) < 65536:
            errors.add(apath, f"port out of range in {addr!r}")
    return [str(a) for a in addresses]


def _topic_lines(errors, bpath, topics):
    """The topic lines as a list ([] when they are none: named)."""
    if topics == []:
        errors.add(bpath + ["topics"], "a bridge needs at least one topic line, e.g. 'sensors/# out 1'")
    topics = errors.listing(bpath + ["topics"], topics)
    for i, topic in enumerate(topics):
        if not _topic_line_ok(errors, bpath + ["topics", i], topic):
            errors.add(bpath + ["topics", i], f"must be '<topic> [in|out|both] [0|1|2] ...', got {topic!r}")
    return topics


def _topic_line_ok(errors, tpath, topic):
    if not errors.text(tpath, topic):
        return False
    parts = str(topic).split()
    return (check_topic_filter(parts[0])
            and (len(parts) < 2 or parts[1] in ("in", "out", "both"))
            and (len(parts) < 3 or parts[2] in ("0", "1", "2")))


def _credentials(errors, bpath, bridge):
    for key in ("remote_username", "remote_password"):
        if key in bridge:
            errors.text(bpath + [key], bridge[key])
    if ("remote_username" in bridge) != ("remote_password" in bridge):
        errors.add(bpath, "remote_username and remote_password go together")


def _options_of(bridge):
    return bridge.get("options") if isinstance(bridge.get("options"), dict) else {}


def _option_names(errors, bpath, bridge, global_options):
    """Options mosquitto 2.0 would refuse, or read as the whole broker's."""
    for key in sorted(k for k in _options_of(bridge) if isinstance(k, str)):
        if key in _BRIDGE_OPTIONS or key in _BRIDGE_OWNED or key in _BRIDGE_21:
            continue
        kpath = bpath + ["options", key]
        if key in _BRIDGE_REFUSED:
            errors.add(kpath, f"refused: {_BRIDGE_REFUSED[key]}")
        elif key in global_options or key in _GLOBAL_HINTS:
            errors.add(kpath, "is a global option, not a bridge option (inside a connection "
                       "section it changes the whole broker): set it under mosquitto:config")
        else:
            errors.add(kpath, f"unknown bridge option (known: {', '.join(sorted(_BRIDGE_OPTIONS))})")


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _address_safety(errors, bpath, bridge):
    """Addresses 2.0 cannot read, and passwords that would travel in clear."""
    addresses = bridge.get("address") or []
    for i, addr in enumerate(addresses):
        addr = str(addr)
        apath = bpath + ["address"] + ([i] if len(addresses) > 1 else [])
        host = addr.rsplit(":", 1)[0] if ":" in addr and not addr.startswith("[") else addr
        if addr.startswith("["):
            errors.add(apath, f"mosquitto 2.0 does not read '[ipv6]:port' ({addr!r}); bridge to a DNS "
                       "name the remote's certificate holds")
        elif bridge.get("tls") is False and "remote_username" in bridge and not _is_loopback(host):
            errors.add(bpath + ["tls"], f"false with remote_username/remote_password would send the "
                       f"password in clear to {addr}: use tls (or a loopback address)")


def _topic_safety(errors, bpath, bridge):
    """Topic lines that echo messages back, or repeat a filter."""
    topics = bridge.get("topics") if isinstance(bridge.get("topics"), list) else []
    parsed = [parse_topic_line(topic) for topic in topics]
    if _options_of(bridge).get("try_private") in (False, "false"):
        for i, line in enumerate(parsed):
            if line and line["direction"] == "both":
                errors.add(bpath + ["topics", i], "'both' with try_private false sends each message "
                           "back where it came from (a two-broker loop): use try_private true or one direction")
    seen = {}
    for i, line in enumerate(parsed):
        if line and line["filter"] in seen:
            errors.add(bpath + ["topics", i], f"repeats the filter of topic line {seen[line['filter']]}")
        elif line:
            seen[line["filter"]] = i


def global_not_bridge(errors, config):
    """A bridge option in the global section (pillar ``config``)."""
    if not isinstance(config, dict):
        return
    for key in sorted(k for k in config if isinstance(k, str)):
        if key != "connection" and (key in _BRIDGE_OPTIONS or key in _BRIDGE_OWNED
                                    or key in _BRIDGE_REFUSED or key in _BRIDGE_21):
            errors.add(["config", key], "is a bridge option: in the global section the broker exits "
                       "(\"Invalid bridge configuration\"); set it under bridges:<name>:options")


def bridge_versions(errors, bridges, broker_version):
    """QoS 2 lines and 2.1-only options, judged by ``broker_version``
    (None: unknown, refused with the reason)."""
    for name, bridge in (bridges or {}).items():
        for i, topic in enumerate(bridge.get("topics") or []):
            parsed = parse_topic_line(topic)
            if parsed and parsed["qos"] == "2" and _below(broker_version, _QOS2_SAFE):
                errors.add(["bridges", name, "topics", i], _qos2_problem(broker_version))
        for key in sorted(k for k in (bridge.get("options") or {}) if k in _BRIDGE_21):
            if _below(broker_version, (2, 1, 0)):
                errors.add(["bridges", name, "options", key], f"needs mosquitto 2.1 (2.0 refuses to "
                           f"start on it); {_shown_version(broker_version)}")


def bridge_pairs(errors, bridges, own_names):
    """A bridge back to this broker, or two bridges to one remote sharing
    topics: each message comes back or arrives twice."""
    own = [n for n in own_names if n]
    targets = {}
    for name, bridge in (bridges or {}).items():
        hosts = [str(a).rsplit(":", 1)[0].lower() for a in bridge.get("address") or []]
        for host in hosts:
            if host in own:
                errors.add(["bridges", name, "address"], f"{host} is this broker itself: a bridge to "
                           "itself is a loop")
        filters = [p["filter"] for p in map(parse_topic_line, bridge.get("topics") or []) if p]
        for host in set(hosts):
            _same_remote(errors, name, host, filters, targets.setdefault(host, []))
            targets[host].append((name, filters))


def _same_remote(errors, name, host, filters, earlier):
    """Bridge ``name`` to ``host`` against the earlier bridges to it."""
    for other, other_filters in earlier:
        if any(filters_overlap(a, b) for a in filters for b in other_filters):
            errors.add(["bridges", name], f"bridges to {host} like bridges:{other} with an "
                       "overlapping topic: every message would cross twice")


def default_clientids(bridges, minion_id):
    """remote_clientid <minion id>.<bridge> unless set: 2.0's default,
    <hostname>.<bridge>, collides between containers and cloned hosts, and
    two bridges with one id take each other's session over and over."""
    if not minion_id:
        return
    for name, bridge in (bridges or {}).items():
        if isinstance(bridge.get("options"), dict):
            bridge["options"].setdefault("remote_clientid", f"{minion_id}.{name}")


# --------------------------------------------------------------------------
# the cluster
# --------------------------------------------------------------------------


def cluster(errors, settings, minion_id, data, broker_version, names, masterless=False, orchestrated=False):
    """mosquitto:cluster -> this host's role and its derived bridge settings.

    Hub-and-spoke, loop-free by construction: spokes bridge to the hub, the
    hub has no cluster bridges, and no other bridge on a member may carry a
    cluster topic (a second path between brokers is a loop). ``data`` is
    the pillar with bridges already checked; ``names`` mosquitto_names'
    cluster_bridge, cluster_username and cluster_clientid (see the module's
    docstring); ``masterless``: this minion runs
    without a Salt master (``file_client: local``), so has no mine;
    ``orchestrated``: this minion deploys (swarm mode) or describes
    (Kubernetes) every member itself, so it needs no mine and has no role
    of its own.
    """
    path = ["cluster"]
    out = _cluster_settings(errors, path, settings)
    if out is None:
        return {"role": None}
    out["topics"], out["acl"] = _cluster_topics(errors, path, settings.get("topics") or [], broker_version)
    out["topic_lines"] = [f"{t['filter']} {t['direction']} {t['qos']}" for t in out["topics"]]
    if orchestrated:
        _cluster_neighbours(errors, out["topics"], data, names["mosquitto_names.cluster_bridge"]())
        return dict(out, role=None)
    if not minion_id:
        errors.add(path, "cannot tell this minion's id (run through Salt)")
        return dict(out, role=None)
    if masterless:
        errors.add(path, "needs a Salt master: hub and spokes find each other through the Salt mine "
                   "(masterless salt-call --local has none)")
    _cluster_role(errors, path, out, minion_id, names)
    _cluster_neighbours(errors, out["topics"], data, names["mosquitto_names.cluster_bridge"]())
    return out


def _cluster_settings(errors, path, settings):
    """hub, members and the link's timers; None when there is no cluster
    (or no usable hub)."""
    if not errors.mapping(path, settings, _CLUSTER_KEYS):
        return None
    hub = settings.get("hub", "")
    if hub in ("", None):
        if settings.get("topics") or []:
            errors.add(path + ["hub"], "missing: a cluster needs the minion id of its hub")
        return None
    if not errors.text(path + ["hub"], hub) or not re.match(r"^[A-Za-z0-9_.-]+\Z", hub):
        errors.add(path + ["hub"], f"must be a minion id, got {hub!r}")
        return None
    members = settings.get("members", "*")
    errors.text(path + ["members"], members)
    out = {
        "hub": hub, "members": members, "topics": [], "acl": [],
        "keepalive_interval": settings.get("keepalive_interval", 60),
        "restart_timeout": _restart_timeout(errors, path + ["restart_timeout"],
                                            settings.get("restart_timeout", [5, 30])),
    }
    errors.integer(path + ["keepalive_interval"], out["keepalive_interval"], 5, 65535)
    return out


def _restart_timeout(errors, path, value):
    """restart_timeout: seconds, or [base, cap] (a backoff) -> option text."""
    if not isinstance(value, list):
        return str(value) if errors.integer(path, value, 1, 3600) else None
    if len(value) != 2:
        errors.add(path, f"must be seconds or [base, cap], got {value!r}")
        return None
    if not all(errors.integer(path + [i], v, 1, 3600) for i, v in enumerate(value)):
        return None
    if value[0] > value[1]:
        errors.add(path, f"base {value[0]} is above the cap {value[1]}")
        return None
    return f"{value[0]} {value[1]}"


def _cluster_topics(errors, path, topics, broker_version):
    """The cluster's topic lines (parsed) and the hub's ACL for a spoke."""
    if not errors.listing(path + ["topics"], topics) and isinstance(topics, list):
        errors.add(path + ["topics"], "a cluster needs at least one topic line, e.g. 'fleet/# both 1'")
    kept, acl = [], []
    for i, line in enumerate(topics if isinstance(topics, list) else []):
        parsed = parse_topic_line(line) if isinstance(line, str) else None
        if parsed is None or parsed["prefixes"]:
            errors.add(path + ["topics", i], f"must be '<filter> [in|out|both] [0|1]' (no prefixes), got {line!r}")
        elif parsed["qos"] == "2" and _below(broker_version, _QOS2_SAFE):
            errors.add(path + ["topics", i], _qos2_problem(broker_version))
        elif any(filters_overlap(parsed["filter"], t["filter"]) for t in kept):
            errors.add(path + ["topics", i], f"{parsed['filter']!r} overlaps an earlier cluster topic "
                       "(each message would cross twice)")
        else:
            kept.append(parsed)
            # The hub's ACL for a spoke's bridge user, from the hub's side.
            access = {"out": "write", "in": "read", "both": "readwrite"}[parsed["direction"]]
            acl.append(f"{access} {parsed['filter']}")
    return kept, acl


def _cluster_role(errors, path, out, minion_id, names):
    """hub or spoke; a spoke gets its bridge's names (derived from its id)."""
    if minion_id == out["hub"]:
        out["role"] = "hub"
        return
    out["role"] = "spoke"
    if not names["mosquitto_names.is_cluster_minion_id"](minion_id):
        # The hub would skip this spoke's mine entry: its id becomes a user
        # name, a client id and an ACL line there.
        errors.add(path, f"this minion's id {minion_id!r} cannot be a cluster spoke: the hub accepts "
                   f"only ids of {names['mosquitto_names.cluster_minion_id_rule']()}")
    members = out["members"]
    if not isinstance(members, str) or not fnmatch.fnmatch(minion_id, members):
        errors.add(path + ["members"], f"{members!r} does not match this spoke {minion_id!r}: the hub "
                   "would refuse its bridge")
    out["bridge"] = names["mosquitto_names.cluster_bridge"]()
    out["username"] = names["mosquitto_names.cluster_username"](minion_id)
    out["remote_clientid"] = names["mosquitto_names.cluster_clientid"](minion_id)


def _cluster_neighbours(errors, topics, data, cluster_bridge):
    """What the rest of a member's pillar must leave to the cluster."""
    persistence = data.get("persistence") if isinstance(data.get("persistence"), dict) else {}
    if persistence.get("enabled") is False:
        errors.add(["persistence", "enabled"], "must be true on a cluster member: bridged messages queued "
                   "during an outage live in the persistence file")
    for name, bridge in (data.get("bridges") or {}).items():
        if name == cluster_bridge:
            errors.add(["bridges", name], f"the name {cluster_bridge!r} is the cluster's own bridge")
            continue
        for i, line in enumerate(bridge.get("topics") or []):
            parsed = parse_topic_line(line)
            hit = parsed and next((t["filter"] for t in topics
                                   if filters_overlap(parsed["filter"], t["filter"])), None)
            if hit:
                errors.add(["bridges", name, "topics", i], f"overlaps cluster topic {hit!r}: a second path "
                           "between cluster brokers makes a loop (messages multiply without end)")
