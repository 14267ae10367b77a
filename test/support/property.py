"""Issue #20's property test, its machinery: hypothesis strategies for pillars
and mine entries, the formula's files rendered the way its SLS files render
them, and what each file must hold for a given validated dict.

Used by test/unit/test_property_render.py (a fixed budget in `make test`)
and bench/property.py (a longer run).

Rendering: the templates go through Salt's own Jinja renderer
(salt.utils.templates.render_jinja_tmpl, what file.managed uses) with the
context each SLS file builds. An SLS file hands its context over as YAML
text (``context: {mosquitto: {{ settings | json }}}``, ``user: {{ word(..) }}``,
an env file as a ``contents: |`` block), so each value here goes through
that same text and salt's YAML loader before it reaches a template
(``transport``, ``plain``, ``block``): what the SLS's YAML does to a value,
the file gets. Bridge files and the password file come from the execution
modules the states call (mosquitto_bridge.render_section,
mosquitto_passwd.manage).
"""
import base64
import contextlib
import copy
import functools
import hashlib
import re

import salt.utils.json
import salt.utils.templates
import salt.utils.yaml
from hypothesis import strategies as st

from test.support import mapdata, parse
from test.support.modules import ROOT, load, utils

cfg = load("_modules", "mosquitto_config")
passwd = load("_modules", "mosquitto_passwd")
bridge_mod = load("_modules", "mosquitto_bridge")
cluster = load("_modules", "mosquitto_cluster")
U = utils()
env_line = U["mosquitto_shell.env_line"]
word = U["mosquitto_shell.word"]
MINE_SPOKE = U["mosquitto_names.mine_name"]("cluster_spoke")
TEMPLATES = ROOT / "mosquitto/files/default"
MINION = "mqtt1"
VERSION = {"version": "2.0.18", "where": "installed"}


@contextlib.contextmanager
def loader_globals(mine=None):
    """The Salt globals validate and the cluster module read, set for one
    example and taken back after (other tests see the modules as before)."""
    mine = mine or {}

    def mine_get(tgt, fun, tgt_type="glob"):
        import fnmatch
        return {m: e for m, e in mine.items() if fnmatch.fnmatch(m, tgt)} if fun == MINE_SPOKE else {}

    patches = [
        (cfg, "__salt__", {"mosquitto_passwd.check_username": passwd.check_username}),
        (cfg, "__utils__", U), (cfg, "__opts__", {"id": MINION}),
        (cluster, "__salt__", {"mine.get": mine_get}), (cluster, "__opts__", {"id": MINION}),
    ]
    saved = [(mod, name, getattr(mod, name, None), hasattr(mod, name)) for mod, name, _ in patches]
    for mod, name, value in patches:
        setattr(mod, name, value)
    try:
        yield
    finally:
        for mod, name, value, had in saved:
            if had:
                setattr(mod, name, value)
            else:
                delattr(mod, name)


# --------------------------------------------------------------------------
# how an SLS file hands values to a template
# --------------------------------------------------------------------------


def transport(value):
    """``key: {{ value | json }}`` in an SLS file, read back by its YAML."""
    return salt.utils.yaml.safe_load("k: " + salt.utils.json.dumps(value, sort_keys=True).strip())["k"]


def plain(text):
    """``key: {{ value }}`` (no filter) in an SLS file, read back."""
    return salt.utils.yaml.safe_load(f"k: {text}")["k"]


def block(lines, indent=8):
    """``contents: |`` with ``lines`` at ``indent``, read back."""
    body = "".join(" " * indent + line + "\n" for line in lines)
    return salt.utils.yaml.safe_load("    - contents: |\n" + body)[0]["contents"]


_TEMPLATE_TEXT = {}
_COMPILED = {}


@contextlib.contextmanager
def _compile_once():
    """Salt's renderer compiles the template source on every call (13 ms
    each): keep the code objects of the sources seen. Same environment
    settings every call, so the same code; everything else is Salt's."""
    from jinja2.sandbox import SandboxedEnvironment
    original = SandboxedEnvironment.compile

    def compile_cached(self, source, name=None, filename=None, raw=False, defer_init=False):
        key = (source, name, filename, raw, defer_init)
        if key not in _COMPILED:
            _COMPILED[key] = original(self, source, name, filename, raw, defer_init)
        return _COMPILED[key]
    SandboxedEnvironment.compile = compile_cached
    try:
        yield
    finally:
        SandboxedEnvironment.compile = original


def render(template, **context):
    """One template through Salt's Jinja renderer, as file.managed does."""
    if template not in _TEMPLATE_TEXT:
        _TEMPLATE_TEXT[template] = (TEMPLATES / template).read_text()
    ctx = {"opts": {}, "saltenv": None}
    ctx.update(context)
    with _compile_once():
        return salt.utils.templates.render_jinja_tmpl(_TEMPLATE_TEXT[template], ctx)


# --------------------------------------------------------------------------
# validation, as mosquitto_map.data does it
# --------------------------------------------------------------------------


_PARAMETERS = {}


def built(pillar, os_family="Debian", init="systemd"):
    """test.support.mapdata.built with the parameter files read once."""
    if os_family not in _PARAMETERS:
        _PARAMETERS[os_family] = mapdata.parameters(os_family)
    return mapdata.MAP.build(copy.deepcopy(_PARAMETERS[os_family]), copy.deepcopy(pillar), init)


def validate(pillar, init="systemd"):
    """(merged input, validated dict): the map's merge, then validate with
    what the map passes (minion id, broker version; no open-files cap)."""
    merged = built(pillar, init=init)
    return merged, cfg.validate(copy.deepcopy(merged), nofile_hard_limit=None, minion_id=MINION,
                                broker_version=VERSION)


def error_items(message):
    """The items of an 'invalid mosquitto pillar' message ("\n  - "-separated:
    a key may hold any other line break)."""
    return message.split("\n  - ")[1:]


def item_names_path(item, data):
    """Whether ``mosquitto:<path>: <problem>`` names a path of ``data``; the
    path may itself hold ': ', so every cut is tried."""
    if not item.startswith("mosquitto:"):
        return False
    body = item[len("mosquitto:"):]
    cuts = [i for i in range(len(body)) if body.startswith(": ", i)] + [len(body)]
    return any(path_exists(data, body[:cut].split(":")) for cut in cuts)


def _step(node, key):
    if isinstance(node, dict):
        for k in node:
            if str(k) == key:
                return True, node[k]
        return False, None
    if isinstance(node, list) and key.isdigit() and int(key) < len(node):
        return True, node[int(key)]
    return False, None


def path_exists(data, path):
    """Whether ``path`` (strings, as a message names them) is in ``data``,
    or is a key missing from a mapping that is (``users:bob:password``; an
    empty key, None, counts as an empty mapping).
    ``lookup:paths:x`` and ``lookup:service:x`` are paths:x / service:x of
    the merged dict. A key holding ':' cannot be split back: matched by
    joining parts."""
    if path and path[0] == "lookup":
        path = path[1:]
    node, i = data, 0
    while i < len(path):
        for j in range(len(path), i, -1):
            found, child = _step(node, ":".join(path[i:j]))
            if found:
                node, i = child, j
                break
        else:
            # None: what YAML makes of an empty key (``users: {bob: }``)
            return i == len(path) - 1 and (isinstance(node, dict) or node is None)
    return True


# --------------------------------------------------------------------------
# the files, rendered as the SLS files render them
# --------------------------------------------------------------------------


def acl_users(data, spokes=None):
    """configure/acl.sls's acl_users."""
    users = {name: spec["acl"] or ["readwrite #"] for name, spec in data["users"].items()}
    for spoke in (spokes or {}).values():
        users[spoke["username"]] = data["cluster"].get("acl", []) + [
            f"write $SYS/broker/connection/{spoke['clientid']}/state"]
    if data["exporter"]["enabled"]:
        users[data["exporter"]["user"]] = ["read $SYS/#"]
    return users


def render_conf(data):
    settings = {k: v for k, v in data.items() if k not in ("users", "bridges")}
    return render("mosquitto.conf.jinja", mosquitto=transport(settings))


def render_acl(data, spokes=None):
    return render("acl.jinja", acl_users=transport(acl_users(data, spokes)),
                  patterns=transport(data["acl_patterns"]))


def passwd_users(pillar_users, data, spokes=None, mine=None):
    """What mosquitto_passwd.managed hands the module: each pillar user's
    password or hash read from pillar by key, each spoke's hash from the
    mine (spoke_hash), the exporter's generated password."""
    users = {}
    for name in data["users"]:
        spec = pillar_users[name]
        field = "password" if "password" in spec else "password_hash"
        users[name] = {field: spec[field]}
    for minion, spoke in (spokes or {}).items():
        hashed = cluster.spoke_hash(minion)
        if hashed is None:
            raise AssertionError(f"spoke {minion} accepted by spokes() but has no hash")
        users[spoke["username"]] = {"password_hash": hashed}
    if data["exporter"]["enabled"]:
        users[data["exporter"]["user"]] = {"password": "generated-exporter-secret-0123456789"}
    return users


def refused_hashes(users):
    """Users whose password_hash the password state (mosquitto_passwd.check_hash)
    would refuse although validate passed it: none, since both ask
    _utils/mosquitto_hashes.py (once a gap: ``$`` let a trailing newline
    through validate, and the state failed at run time after other states
    had changed the host)."""
    from salt.exceptions import SaltInvocationError
    bad = []
    for name, spec in users.items():
        if "password_hash" in spec:
            try:
                passwd.check_hash(spec["password_hash"])
            except SaltInvocationError:
                bad.append(name)
    return bad


def render_passwd(tmp_dir, users):
    path = tmp_dir / "passwd"
    if path.exists():
        path.unlink()
    passwd.manage(str(path), users, user=None, group=None, mode="0640", iterations=1)
    return path.read_text(encoding="utf-8", errors="surrogateescape")


def survives_yaml(value):
    """Whether validated text reaches a template unchanged: the SLS files
    hand it over as ``{{ value | json }}`` inside YAML, and Salt's YAML
    loader folds NEL (U+0085) to a space (a path ``/a\x85b`` became
    ``/a b`` in mosquitto.conf) and fails on non-characters (U+FFFE)
    without naming the key. validate refuses both now
    (mosquitto_validate.has_control_chars); asserted."""
    try:
        return transport(value) == value
    except Exception:  # noqa: BLE001 - any YAML error is the gap
        return False


def _texts(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _texts(k)
            yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


def _control_chars(text):
    """Whether ``text`` holds a C0 control or DEL (a bridge address did:
    validate now refuses it, mosquitto_bridge_rules._ADDRESS; asserted)."""
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in str(text))


def edge_blanks(value):
    """Whether any text in ``value`` starts or ends with a space or tab.
    mosquitto trims them from a config value (a bridge's remote_password
    ' pw' logged in as 'pw'; a path '/a ' named '/a'), so validate refuses
    them (mosquitto_validate.has_edge_blanks); asserted of what it passed."""
    return any(t != t.strip(" \t") for t in _texts(value))


def _bridge_passwords(data, pillar):
    """The remote_password of each validated bridge, as pillar gives it
    (bridges.sls reads it from there)."""
    return [(pillar.get("bridges") or {})[name].get("remote_password", "") for name in data["bridges"]]


def bridge_specs_plain(data):
    return {name: {k: v for k, v in b.items() if k != "remote_password"} for name, b in data["bridges"].items()}


def bridge_specs(data):
    """configure/bridges.sls: each validated bridge without remote_password
    (that is read from pillar by the state), through the SLS's YAML."""
    specs = {}
    for name, bridge in data["bridges"].items():
        specs[name] = {k: v for k, v in bridge.items() if k != "remote_password"}
    return transport(specs)


def render_bridges(data, pillar_bridges):
    out = {}
    # bridges.sls: `- ca_cert: {{ mosquitto.tls.ca_cert }}`, unquoted.
    ca_cert = plain(data["tls"]["ca_cert"])
    tls_version = plain(data["listeners"]["mqtts"]["tls_version"])
    for name, spec in bridge_specs(data).items():
        if "remote_username" in spec:
            spec["remote_password"] = pillar_bridges[name]["remote_password"]
        out[name] = bridge_mod.render_section(name, spec, ca_cert, tls_version)
    return out


def exporter_env(data):
    """configure/exporter.sls's env list: (name, value, source)."""
    exporter = data["exporter"]
    python = exporter["venv_dir"] + "/bin/python" if exporter["install"] == "venv" else "/usr/bin/python3"
    host = data["listeners"]["mqtt"]["bind_address"] or "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return [
        ("BROKER_ENDPOINT", f"tcp://{host}:{data['ports']['mqtt']}", "mosquitto:listeners:mqtt:bind_address"),
        ("BIND_ADDRESS", f"{exporter['bind_address']}:{data['ports']['exporter']}", "mosquitto:exporter:bind_address"),
        ("MQTT_USER", exporter["user"], "mosquitto:exporter:user"),
        ("MQTT_PASS_FILE", data["paths"]["exporter_secret"], "mosquitto:lookup:paths:exporter_secret"),
        ("MQTT_CLIENT_ID", f"mosquitto-exporter-{MINION}", "grains:id"),
        ("EXPORTER_PYTHON", python, "mosquitto:exporter:venv_dir"),
        ("EXPORTER_PROGRAM", data["paths"]["exporter"], "mosquitto:lookup:paths:exporter"),
        ("SERVER_CERT_FILE", data["tls"]["cert"], "mosquitto:tls:cert"),
        ("CA_CERT_FILE", data["tls"]["ca_cert"], "mosquitto:tls:ca_cert"),
        ("MAX_CONNECTIONS", data["listeners"]["mqtts"]["max_connections"],
         "mosquitto:listeners:mqtts:max_connections"),
    ]


ENV_HEADER = [
    "# Managed by Salt (mosquitto-formula). Read by the mosquitto-exporter",
    "# unit and init script; the program reads the same variables.",
    "# Values are single-quoted and never hold a quote, backslash, $,",
    "# backtick or line break, so systemd and sh read the same value.",
]


def render_env(data):
    """The env file's contents: env_line for each, in the SLS's YAML block."""
    return block(ENV_HEADER + [env_line(*row) for row in exporter_env(data)])


def exporter_words(data):
    """The unit's and init script's context: (key, value, source) word() rows."""
    exporter = data["exporter"]
    python = exporter["venv_dir"] + "/bin/python" if exporter["install"] == "venv" else "/usr/bin/python3"
    return [
        ("env_file", data["paths"]["exporter_env"], "mosquitto:lookup:paths:exporter_env"),
        ("user", exporter["user"], "mosquitto:exporter:user"),
        ("python", python, "mosquitto:exporter:venv_dir"),
        ("program", data["paths"]["exporter"], "mosquitto:lookup:paths:exporter"),
    ]


def exporter_context(data, init):
    """exporter.sls's context for the unit (systemd) or the init script,
    each token word()-checked and interpolated ``| json`` into the SLS."""
    ctx = {key: transport(word(value, source)) for key, value, source in exporter_words(data)}
    if init == "systemd":
        ctx["broker_unit"] = transport(word(data["service"]["name"], "mosquitto:lookup:service:name") + ".service")
    else:
        ctx["name"] = transport(word(data["service"]["exporter_name"], "mosquitto:lookup:service:exporter_name"))
    return ctx


def rw_paths(data):
    out = []
    if data["persistence"]["enabled"]:
        out.append(data["persistence"]["location"].rstrip("/"))
    if data["paths"]["log_file"]:
        out.append(data["paths"]["log_file"].rsplit("/", 1)[0] or "/")
    return out


def dropin_context(data):
    """service.sls's context for the drop-in."""
    run_dir = data["paths"]["run_dir"].replace("/run/", "", 1)
    low = data["ports"]["mqtt"] < 1024 or data["ports"]["mqtts"] < 1024
    return {
        "user": transport(word(data["service"]["user"], "mosquitto:lookup:service:user")),
        "group": transport(word(data["service"]["group"], "mosquitto:lookup:service:group")),
        "run_dir_name": transport(word(run_dir, "mosquitto:lookup:paths:run_dir")),
        "open_files": transport(word(data["limits"]["open_files_effective"], "mosquitto:limits:open_files")),
        "low_ports": plain(str(low)),
        "rw_paths": transport(U["mosquitto_shell.words"](
            rw_paths(data), "mosquitto:persistence:location, mosquitto:lookup:paths:log_file")),
    }


def limits_context(data):
    return {"daemon": plain("/usr/sbin/mosquitto"),
            "open_files": transport(word(data["limits"]["open_files_effective"], "mosquitto:limits:open_files"))}


# --------------------------------------------------------------------------
# what each file must hold
# --------------------------------------------------------------------------


def _value(item):
    return "true" if item is True else "false" if item is False else str(item)


def _options(options):
    out = []
    for key, value in sorted((options or {}).items()):
        for item in value if isinstance(value, list) else [value]:
            out.append((key, _value(item)))
    return out


def _qos2_bridged(data):
    """A QoS 2 topic line (its third word) on a pillar bridge or the cluster."""
    lines = [t for b in data["bridges"].values() for t in b["topics"]]
    lines += data["cluster"].get("topic_lines") or []
    return any(t.split()[2:3] == ["2"] for t in lines)


def expected_conf(data):
    """mosquitto.conf as sections (parse.sections), include_dir lines apart."""
    paths, pers, queue = data["paths"], data["persistence"], data["queue"]
    glob = [("user", data["service"]["user"])]
    if paths["pid_file"]:
        glob.append(("pid_file", paths["pid_file"]))
    if data["container"]["enabled"]:
        glob.append(("log_dest", "stderr"))
    elif paths["log_file"]:
        glob.append(("log_dest", "file " + paths["log_file"]))
    glob += [("log_type", kind) for kind in data["logging"]["types"]]
    glob.append(("persistence", _value(bool(pers["enabled"]))))
    if pers["enabled"]:
        glob.append(("persistence_location", pers["location"]))
        if pers["autosave_on_changes"]:
            glob.append(("autosave_on_changes", "true"))
        glob.append(("autosave_interval", str(pers["autosave_interval"])))
    glob.append(("max_queued_messages", str(queue["max_queued_messages"])))
    if queue["persistent_client_expiration"]:
        glob.append(("persistent_client_expiration", queue["persistent_client_expiration"]))
    if _qos2_bridged(data) and "max_inflight_messages" not in data["config"]:
        glob.append(("max_inflight_messages", "0"))
    glob += [("max_keepalive", str(data["max_keepalive"])), ("per_listener_settings", "false"),
             ("allow_anonymous", "false"), ("password_file", paths["passwd"]), ("acl_file", paths["acl"])]
    glob += _options(data["config"])
    mqtt, mqtts, tls = data["listeners"]["mqtt"], data["listeners"]["mqtts"], data["tls"]
    plain_listener = (f"{data['ports']['mqtt']} {mqtt['bind_address']}".strip(), _options(mqtt.get("options")))
    tls_opts = [("cafile", tls["ca_cert"]), ("certfile", tls["cert"]), ("keyfile", tls["key"]),
                ("tls_version", mqtts["tls_version"])]
    if tls.get("ciphers"):
        tls_opts.append(("ciphers", tls["ciphers"]))
    tls_opts.append(("max_connections", str(mqtts["max_connections"])))
    tls_opts += _options(mqtts.get("options"))
    tls_listener = (f"{data['ports']['mqtts']} {mqtts['bind_address']}".strip(), tls_opts)
    includes = [paths["bridges_dir"]]
    if paths["include_dir"] and not data["container"]["enabled"]:
        includes.append(paths["include_dir"])
    return {"global": glob, "listeners": [plain_listener, tls_listener], "bridges": []}, includes


def read_conf(text):
    """parse.sections with the include_dir lines taken out (wherever they fall)."""
    parsed = parse.sections(text)
    includes = [v for _, opts in parsed["listeners"] for k, v in opts if k == "include_dir"]
    includes += [v for k, v in parsed["global"] if k == "include_dir"]
    parsed["global"] = [(k, v) for k, v in parsed["global"] if k != "include_dir"]
    parsed["listeners"] = [(h, [(k, v) for k, v in opts if k != "include_dir"]) for h, opts in parsed["listeners"]]
    return parsed, includes


def expected_acl(data, spokes=None):
    patterns = [tuple(rule.split(" ", 1)) for rule in data["acl_patterns"]]
    users = {name: [tuple(rule.split(" ", 1)) for rule in rules]
             for name, rules in acl_users(data, spokes).items()}
    return patterns, users


def expected_bridge(name, bridge, pillar_bridge, ca_cert, tls_version):
    opts = [("address", " ".join(bridge["address"]))]
    opts += [("topic", t) for t in bridge["topics"]]
    opts += [("cleansession", _value(bool(bridge["cleansession"]))),
             ("notifications", _value(bool(bridge["notifications"]))),
             ("keepalive_interval", str(bridge["keepalive_interval"]))]
    if "remote_username" in bridge:
        opts += [("remote_username", bridge["remote_username"]),
                 ("remote_password", pillar_bridge["remote_password"])]
    if bridge["tls"]:
        opts += [("bridge_cafile", ca_cert), ("bridge_tls_version", tls_version)]
    opts += _options(bridge["options"])
    return name, opts


# --------------------------------------------------------------------------
# strategies: valid pillars, then hostile text and wrong types anywhere
# --------------------------------------------------------------------------

_WORDISH = "abcdefghijklmnopqrstuvwxyz0123456789"
label = st.text(_WORDISH, min_size=1, max_size=8)
dns_name = st.builds(lambda a, b: f"{a}.{b}.example", label.filter(lambda s: not s.isdigit()), label)
user_name = st.one_of(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.@ -]{0,10}[A-Za-z0-9]", fullmatch=True),
    st.sampled_from(["a", "j\u00f6rg", "x#y", "sp ace", "\u6771\u4eac", "1883", "null", "on"]))
level = st.one_of(st.text("abcxyz0189_-$.", min_size=1, max_size=5), st.just("+"),
                  st.sampled_from(["%u", "%c", "\u00e9t\u00e9"]))
topic = st.builds(lambda levels, hashed: "/".join(levels + (["#"] if hashed else [])),
                  st.lists(level, min_size=0, max_size=4), st.booleans()).filter(bool)
acl_rule = st.builds(lambda access, t: f"{access} {t}" if access else t,
                     st.sampled_from(["", "read", "write", "readwrite", "deny"]), topic)
# A bridge password goes into the bridge file as text: no control character
# (C0, C1, U+2028/U+2029, surrogates, U+FFFE/U+FFFF), which validate refuses.
# Drawn from an alphabet without them (a filter alone threw most draws away).
_TEXT_CHARS = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\ufffe\uffff")
password = st.text(_TEXT_CHARS, min_size=1, max_size=30).filter(
    lambda p: not U["mosquitto_validate.has_control_chars"](p))
segment = st.one_of(st.text("abcdefghijklmnopqrstuvwxyz0123456789_.-", min_size=1, max_size=8)
                    .filter(lambda s: s not in (".", "..")),
                    st.sampled_from(["with space", "\u00e9t\u00e9", "a+b", "x@y"]))
abspath = st.lists(segment, min_size=1, max_size=4).map(lambda segs: "/" + "/".join(segs))


def _hash(pw, iterations, salt):
    return passwd.hash_password(pw, iterations=iterations, salt=salt)


password_hash = st.builds(_hash, password, st.integers(1, 200), st.binary(min_size=12, max_size=12))


@st.composite
def users(draw):
    out = {}
    for name in draw(st.lists(user_name, max_size=4, unique=True)):
        spec = ({"password": draw(password)} if draw(st.booleans())
                else {"password_hash": draw(password_hash)})
        rules = draw(st.lists(acl_rule, max_size=3))
        if rules or draw(st.booleans()):
            spec["acl"] = rules
        out[name] = spec
    return out


_BRIDGE_OPTIONS = {
    "try_private": st.booleans(), "restart_timeout": st.sampled_from([10, "5 30"]),
    "local_clientid": label, "bridge_protocol_version": st.sampled_from(["mqttv311", "mqttv50"]),
    "notification_topic": topic.filter(lambda t: "%" not in t), "threshold": st.integers(1, 100),
    "round_robin": st.booleans(), "start_type": st.sampled_from(["automatic", "lazy", "once"]),
    "idle_timeout": st.integers(1, 3600), "bridge_attempt_unsubscribe": st.booleans(),
}


@st.composite
def bridges(draw):
    out = {}
    names = draw(st.lists(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,8}", fullmatch=True),
                          max_size=3, unique=True).filter(lambda ns: "cluster" not in ns))
    for i, name in enumerate(names):
        filters = draw(st.lists(topic.filter(lambda t: "%" not in t), min_size=1, max_size=3, unique=True))
        lines = [f"{f} {draw(st.sampled_from(['in', 'out', 'both']))} {draw(st.sampled_from(['0', '1', '2']))}"
                 if draw(st.booleans()) else f for f in filters]
        spec = {"address": f"remote{i}.example.net:{draw(st.integers(1, 65535))}", "topics": lines}
        if draw(st.booleans()):
            spec["remote_username"] = draw(user_name)
            # No space at either end: mosquitto would trim it (validate refuses it).
            spec["remote_password"] = draw(password.filter(lambda p: p.strip() and p == p.strip(" \t")))
        for key in ("tls", "cleansession", "notifications"):
            if draw(st.booleans()):
                spec[key] = draw(st.booleans())
        if spec.get("tls") is False and "remote_username" in spec:
            spec["tls"] = True
        opts = draw(st.dictionaries(st.sampled_from(sorted(_BRIDGE_OPTIONS)), st.just(None), max_size=3))
        spec["options"] = {k: draw(_BRIDGE_OPTIONS[k]) for k in opts}
        if spec["options"].get("try_private") is False:
            spec["options"]["try_private"] = True
        out[name] = spec
    return out


_CONFIG_OPTIONS = {
    "sys_interval": st.integers(1, 60), "connection_messages": st.booleans(),
    "log_timestamp_format": st.sampled_from(["%Y-%m-%dT%H:%M:%S", "%H:%M"]),
    "max_inflight_messages": st.integers(0, 100), "memory_limit": st.integers(0, 10**9),
    "retain_available": st.booleans(), "max_packet_size": st.integers(20, 10**6),
}


@st.composite
def pillars(draw):
    """A valid pillar (validate accepts it) touching every section the
    formula renders from."""
    mqtt, mqtts, exp = draw(st.lists(st.integers(1, 65535), min_size=3, max_size=3, unique=True))
    pillar = {
        "domain": draw(dns_name),
        "ports": {"mqtt": mqtt, "mqtts": mqtts, "exporter": exp},
        "users": draw(users()),
        "acl_patterns": draw(st.lists(acl_rule, max_size=3)),
        "max_keepalive": draw(st.integers(0, 65535)),
        "queue": {"max_queued_messages": draw(st.integers(0, 2**31 - 1)),
                  "persistent_client_expiration": draw(st.sampled_from(["", "14d", "12h", "1y"]))},
        "listeners": {
            # Loopback only: anything else needs listeners:mqtt:allow_remote_plain.
            "mqtt": {"bind_address": draw(st.sampled_from(["127.0.0.1", "::1", "localhost"])),
                     "options": draw(st.dictionaries(st.sampled_from(["max_qos", "max_topic_alias"]),
                                                     st.integers(0, 2), max_size=2))},
            "mqtts": {"bind_address": draw(st.sampled_from(["", "0.0.0.0", "192.0.2.7", "::", "mqtt.example"])),
                      "tls_version": draw(st.sampled_from(["tlsv1.2", "tlsv1.3"])),
                      "options": draw(st.dictionaries(st.sampled_from(["require_certificate",
                                                                       "use_identity_as_username"]),
                                                      st.booleans(), max_size=2))},
        },
        "persistence": {"enabled": draw(st.booleans()), "location": draw(abspath),
                        "autosave_interval": draw(st.integers(1, 3600)),
                        "autosave_on_changes": draw(st.booleans())},
        "logging": {"types": draw(st.lists(st.sampled_from(["error", "warning", "notice", "information"]),
                                           min_size=1, max_size=3, unique=True))},
        "tls": {"ca_cert": draw(abspath), "cert": draw(abspath), "key": draw(abspath),
                "profile": draw(st.sampled_from(["intermediate", "modern"]))},
        "bridges": draw(bridges()),
        "config": {k: draw(v) for k, v in draw(st.dictionaries(st.sampled_from(sorted(_CONFIG_OPTIONS)),
                                                                st.just(None), max_size=3)).items()
                   for v in [_CONFIG_OPTIONS[k]]},
        "exporter": {"enabled": draw(st.booleans()), "user": draw(user_name),
                     "bind_address": draw(st.sampled_from(["0.0.0.0", "127.0.0.1", "::", "metrics.example"])),
                     "install": draw(st.sampled_from(["pkg", "venv"])), "venv_dir": draw(abspath)},
        "firewall": {"enabled": draw(st.sampled_from([True, False, "auto"])),
                     "zone": draw(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True)),
                     "extra_ports": draw(st.lists(st.integers(1, 65535).map(lambda p: f"{p}/tcp"), max_size=2))},
        "lookup": {"paths": {k: draw(abspath) for k in draw(st.lists(st.sampled_from(
            ["passwd", "acl", "exporter_env", "exporter_secret", "exporter", "log_file", "bridges_dir"]),
            unique=True, max_size=4))},
            "service": {k: draw(st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True))
                        for k in draw(st.lists(st.sampled_from(["user", "group"]), unique=True, max_size=2))}},
    }
    if pillar["exporter"]["user"] in pillar["users"]:
        pillar["users"].pop(pillar["exporter"]["user"])
    return pillar


# Hostile text for any string position: line breaks, quotes, shell and
# systemd syntax, comment starts, blanks the readers trim, Unicode line
# breaks YAML knows, very long text.
HOSTILE = [
    "\n", "\r", "\r\n", "\x00", "\t", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\u2028", "\u2029", "\ufeff",
    "#", " ", "  ", "'", '"', "\\", "$(id)", "`id`", "${HOME}", "%h", "%%", ": ", " #x", "- ", "-",
    "\nuser admin\ntopic readwrite #", "\nconnection evil", "\nlistener 1884 0.0.0.0", "\nExecStartPre=/bin/id",
    "'; id; '", "\u00e9t\u00e9", "\U0001f600", "null", "yes", "0777", "1_000", "~", "*", "{a: b}", "[x]",
    "x" * 5000,
]
WRONG_TYPES = [None, True, 0, -1, 2**40, 1.5, [], {}, ["x"], {"a": 1}]


def leaves(node, path=()):
    """(path, kind) of every place a mutation can go: values and mapping keys."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((path + (key,), "key"))
            out += leaves(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += leaves(value, path + (i,))
    out.append((path, "value"))
    return out


def _get(node, path):
    for p in path:
        node = node[p]
    return node


def _hostile_text(draw, original):
    text = original if isinstance(original, str) else str(original)
    bad = draw(st.sampled_from(HOSTILE))
    where = draw(st.sampled_from(["replace", "prefix", "suffix", "middle"]))
    if where == "replace":
        return bad
    if where == "prefix":
        return bad + text
    if where == "suffix":
        return text + bad
    cut = draw(st.integers(0, len(text)))
    return text[:cut] + bad + text[cut:]


@st.composite
def mutated_pillars(draw):
    """A valid pillar with one to three places changed to hostile text or a
    wrong type. Returns (pillar, [mutated paths])."""
    pillar = draw(pillars())
    changed = []
    for _ in range(draw(st.integers(1, 3))):
        spots = [s for s in leaves(pillar) if s[0]]
        texts = [s for s in spots if s[1] == "value" and isinstance(_get(pillar, s[0]), str)]
        if texts and draw(st.integers(0, 3)):
            spots = texts  # mostly text: where escaping bugs live
        path, kind = draw(st.sampled_from(spots))
        parent = _get(pillar, path[:-1])
        if kind == "key":
            if not isinstance(parent, dict) or path[-1] not in parent:
                continue
            new = _hostile_text(draw, path[-1])
            parent[new] = parent.pop(path[-1])
            changed.append(path[:-1] + (new,))
            continue
        current = _get(pillar, path)
        if isinstance(current, str) and draw(st.integers(0, 3)):
            value = _hostile_text(draw, current)
        else:
            value = draw(st.sampled_from(WRONG_TYPES + [_hostile_text(draw, current)]))
        parent[path[-1]] = value
        changed.append(path)
    return pillar, changed


# --------------------------------------------------------------------------
# the same examples in every process
# --------------------------------------------------------------------------

# The formula's own code: the constants Hypothesis may draw (fixed_constants).
_CONSTANT_SOURCES = ("_modules", "_utils", "_states")


@contextlib.contextmanager
def fixed_constants():
    """Hypothesis (since 6.131) now and then draws a literal found in the
    source of a *local module the process has imported* instead of a random
    value. Which modules those are depends on what else the process ran: a
    whole `make test` session imports other modules than a rerun of one
    file, so one derandomized test drew other examples there (a failure
    found in a CI run, `listeners: "\n"`, did not come back in six reruns).
    Inside this block the pool is fixed: the literals of the formula's own
    files (_modules, _utils, _states), read from disk in a fixed order,
    whatever was imported. Hypothesis internals, pinned in pyproject.toml."""
    from hypothesis.internal.conjecture import providers
    pool = _formula_constants()
    saved = providers._get_local_constants
    providers._get_local_constants = lambda: pool
    providers.CONSTANTS_CACHE.cache.clear()  # built from the process's pool so far
    try:
        yield pool
    finally:
        providers._get_local_constants = saved
        providers.CONSTANTS_CACHE.cache.clear()


@functools.cache
def _formula_constants():
    """The literals of the formula's files, sorted as Hypothesis keeps its own."""
    from hypothesis.internal import constants_ast
    from hypothesis.internal.floats import float_to_int
    from sortedcontainers import SortedSet

    found = constants_ast.Constants()
    for path in sorted(f for d in _CONSTANT_SOURCES for f in (ROOT / d).glob("*.py")):
        found |= constants_ast._constants_from_source(path.read_bytes(), limit=True)
    return constants_ast.Constants(integers=SortedSet(found.integers), floats=SortedSet(found.floats, key=float_to_int),
                                   bytes=SortedSet(found.bytes), strings=SortedSet(found.strings))


def drawn_digest(strategy, examples=20):
    """A digest of the first ``examples`` values a derandomized run draws
    from the strategy function ``strategy`` (a name in this module) under
    fixed_constants, as the fast lane draws them: equal in every process."""
    from hypothesis import HealthCheck, Phase, given, settings
    seen = []

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(globals()[strategy]())
    def draw(value):
        seen.append(repr(value))

    with fixed_constants():
        draw()
    return hashlib.sha256("\n".join(seen).encode("utf-8", "surrogatepass")).hexdigest()


# --------------------------------------------------------------------------
# mine entries
# --------------------------------------------------------------------------

# fullmatch only: '$' also matches before a trailing newline.
# The iteration bound of _utils/mosquitto_hashes.py (PBKDF2 at every login).
MAX_ITERATIONS = 5000
STRICT_HASH = re.compile(r"\$7\$([1-9][0-9]{0,8})\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==")
# Bounded: a context key over 1,024 characters breaks the SLS files' YAML
# (a flow mapping's implicit key), so the hub's ACL render would fail.
STRICT_MINION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
minion_id = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,10}", fullmatch=True)
hostile_minion_id = st.one_of(minion_id, st.builds(lambda m, bad: m + bad, minion_id, st.sampled_from(HOSTILE)))


def good_hash(secret=b"s", iterations=101):
    salt = hashlib.sha256(secret).digest()[:12]
    return passwd.hash_password(secret.hex(), iterations=iterations, salt=salt)


def _b64(n):
    return base64.b64encode(b"\x01" * n).decode()


hostile_hash = st.one_of(
    st.builds(lambda s, it: good_hash(s, it), st.binary(min_size=1, max_size=8), st.integers(1, 2000)),
    st.sampled_from([
        "$7$999999999999$" + _b64(12) + "$" + _b64(64),   # absurd iterations
        "$7$0$" + _b64(12) + "$" + _b64(64), "$7$-5$" + _b64(12) + "$" + _b64(64),
        "$7$101$" + _b64(12) + "$" + _b64(64) + "\nadmin:$7$1$x$y",
        "$7$101$" + _b64(12) + "$" + _b64(64) + "\n", "$7$101$" + _b64(8) + "$" + _b64(64),
        "$7$101$" + _b64(12) + "$" + _b64(32), "$7$101$!!!!$????", "$7$", "$7$101$x$y",
        "$6$" + _b64(12) + "$" + _b64(64), "plain", "", " $7$101$" + _b64(12) + "$" + _b64(64),
        "$7$101$" + _b64(12) + "$" + _b64(64) + " #", "$7$1e3$" + _b64(12) + "$" + _b64(64),
        "$7$\u0661\u0660\u0661$" + _b64(12) + "$" + _b64(64),
    ]),
    st.text(max_size=40).map(lambda t: "$7$" + t),
    st.sampled_from(WRONG_TYPES),
)


@st.composite
def mine_entries(draw):
    """minion id -> mosquitto_cluster_spoke entry, as mine.get returns them."""
    out = {}
    for minion in draw(st.lists(hostile_minion_id, max_size=5, unique=True)):
        kind = draw(st.sampled_from(["good", "good", "hash", "names", "type", "extra"]))
        entry = {"username": f"bridge.{minion}", "clientid": f"{minion}.cluster",
                 "password_hash": good_hash(minion.encode("utf-8", "surrogatepass"))}
        if kind == "hash":
            entry["password_hash"] = draw(hostile_hash)
        elif kind == "names":
            key = draw(st.sampled_from(["username", "clientid"]))
            entry[key] = _hostile_text(draw, entry[key])
        elif kind == "type":
            entry = draw(st.sampled_from(WRONG_TYPES + [{"username": f"bridge.{minion}"}]))
        elif kind == "extra":
            entry["acl"] = ["readwrite #"]
        out[minion] = entry
    return out


# --------------------------------------------------------------------------
# the properties (the test and bench/property.py wrap them in @given)
# --------------------------------------------------------------------------


class Refused(Exception):
    """The formula refused the input, naming these key paths."""


def _names_input(message, merged):
    """Every 'invalid mosquitto pillar' item names a path of the input."""
    items = error_items(message)
    assert items, message
    for item in items:
        assert item_names_path(item, merged), (item, message)


def _render_refusal(exc, merged):
    """A value refused while an SLS file renders (mosquitto_shell): its
    message starts with the pillar keys it came from."""
    head = str(exc).split(": ", 1)[0]
    keys = [re.sub(r"\[[0-9]+\]$", "", k.strip()) for k in head.split(",")]
    assert any(k.startswith("mosquitto:") and path_exists(merged, k.split(":")[1:]) for k in keys), str(exc)


def _sentinels(keys):
    return {key: f"@@{key}@@" for key in keys}


def _fill(text, values):
    for key, value in values.items():
        text = text.replace(f"@@{key}@@", str(value))
    return text


def check_pillar(pillar, tmp_dir, init="systemd"):
    """See _check_pillar. A wrong type anywhere (``bridges:b:topics: true``,
    ``lookup: x``, ``lookup:paths: true``) is refused naming its key like
    any other bad value: an AttributeError, a TypeError or a Jinja error
    fails the property (they were known gaps until validate and the map's
    merge named them)."""
    with loader_globals():
        return _check_pillar(pillar, tmp_dir, init)


def _check_pillar(pillar, tmp_dir, init):
    """Validation refuses ``pillar`` naming keys it has, or every file the
    formula writes from it reads back exactly what it asked for. Returns
    "refused", "refused at render" or "rendered"."""
    from salt.exceptions import CommandExecutionError, SaltInvocationError
    pillar_in = copy.deepcopy(pillar)
    try:
        # The map's merge refuses a non-mapping lookup (named like validate).
        merged = built(pillar_in, init=init)
    except CommandExecutionError as exc:
        _names_input(str(exc), pillar_in)
        return "refused"
    try:
        merged, data = validate(pillar_in, init)
    except CommandExecutionError as exc:
        _names_input(str(exc), merged)
        return "refused"
    assert pillar_in == pillar, "validate changed its input"
    # What SLS files compute while they render (a refusal there names its key).
    try:
        env_text = render_env(data)
    except SaltInvocationError as exc:
        _render_refusal(exc, merged)
        return "refused at render"

    # The files whose context an SLS hands over as `| json` in YAML.
    settings = {k: v for k, v in data.items() if k not in ("users", "bridges")}
    # validate refuses what YAML would rewrite (has_control_chars)
    assert survives_yaml([settings, acl_users(data), bridge_specs_plain(data)]), "YAML rewrites a validated value"
    # validate refuses text with blanks at either end (mosquitto trims them)
    assert not edge_blanks([settings, bridge_specs_plain(data), _bridge_passwords(data, pillar)]), \
        "validate passed text with blanks at either end"
    # mosquitto.conf
    conf, includes = read_conf(render_conf(data))
    want_conf, want_includes = expected_conf(data)
    assert conf == want_conf
    assert includes == want_includes

    # the ACL file: each user once, exactly its rules
    acl = parse.acl(render_acl(data))
    patterns, want_users = expected_acl(data)
    assert acl["patterns"] == patterns
    names = [name for name, _ in acl["users"]]
    assert len(names) == len(set(names)), names
    assert dict(acl["users"]) == want_users

    # the password file: each user once, its password verifies / its hash as given
    wanted = passwd_users(pillar["users"], data)
    assert not refused_hashes(wanted), "validate passed a hash the password state refuses"
    entries = parse.passwd(render_passwd(tmp_dir, wanted))
    assert [u for u, _ in entries] == list(wanted)
    for user, hashed in entries:
        spec = wanted[user]
        if "password" in spec:
            assert passwd.verify_password(spec["password"], hashed), user
        else:
            assert hashed == spec["password_hash"], user

    # bridge files: one connection section each, exactly its options
    # validate refuses a bridge address with a control character
    assert not any(_control_chars(a) for b in data["bridges"].values() for a in b["address"])
    files = render_bridges(data, pillar.get("bridges") or {})
    assert sorted(files) == sorted(data["bridges"])
    for name, text in files.items():
        got = parse.bridge_file(text)
        want = expected_bridge(name, data["bridges"][name], (pillar.get("bridges") or {}).get(name, {}),
                               data["tls"]["ca_cert"], data["listeners"]["mqtts"]["tls_version"])
        assert got == want

    # the exporter's env file, as systemd and as sh read it
    want_env = {name: str(value) for name, value, _ in exporter_env(data)}
    assert parse.env_systemd(env_text) == want_env
    assert parse.env_sh(env_text) == want_env

    # units, the drop-in and the sh files: the text with sentinels for the
    # values, each value put in its place; nothing else differs
    # Unit, drop-in, scripts: their tokens are word()-checked while the SLS
    # renders (checked last, so a refusal there still lets the files above
    # be checked).
    try:
        unit_ctx = exporter_context(data, "systemd")
        init_ctx = exporter_context(data, "sysvinit")
        dropin_ctx = dropin_context(data)
        limits_ctx = limits_context(data)
    except SaltInvocationError as exc:
        _render_refusal(exc, merged)
        return "refused at render"
    for template, ctx in (("mosquitto-exporter.service.jinja", unit_ctx),
                          ("mosquitto.service.d.conf.jinja", dropin_ctx)):
        scalars = {k: v for k, v in ctx.items() if isinstance(v, str | int) and not isinstance(v, bool)}
        shape = dict(ctx, **_sentinels(scalars))
        if "rw_paths" in ctx:
            shape["rw_paths"] = [f"@@rw{i}@@" for i in range(len(ctx["rw_paths"]))]
            want_values = dict({k: v for k, v in _word_values(data, template).items()},
                               **{f"rw{i}": p for i, p in enumerate(rw_paths(data))})
        else:
            want_values = _word_values(data, template)
        got = parse.unit(render(template, **ctx))
        want = [(s, k, _fill(v, want_values)) for s, k, v in parse.unit(render(template, **shape))]
        assert got == want
    for template, ctx in (("mosquitto-exporter.init.jinja", init_ctx), ("mosquitto-limits.sh.jinja", limits_ctx)):
        want_values = _word_values(data, template)
        shape = dict(ctx, **_sentinels(ctx))
        assert render(template, **ctx) == _fill(render(template, **shape), want_values)
    return "rendered", env_text, want_env


def _word_values(data, template):
    """The values a unit/script template must show, as the pillar gave them."""
    values = {key: str(value) for key, value, _ in exporter_words(data)}
    values["broker_unit"] = f"{data['service']['name']}.service"
    values["name"] = data["service"]["exporter_name"]
    values.update(user=data["exporter"]["user"]) if "exporter" in template else values.update(
        user=data["service"]["user"], group=data["service"]["group"],
        run_dir_name=data["paths"]["run_dir"].replace("/run/", "", 1),
        open_files=str(data["limits"]["open_files_effective"]), daemon="/usr/sbin/mosquitto")
    return values


def check_mine_accepted_strict(mine):
    """Every spoke mosquitto_cluster.spokes accepts (and spoke_hash hands
    the password state) is exactly of the strict shape: a plain minion id,
    the names derived from it, a $7$<int>$<16 b64>$<88 b64> hash with a
    bounded iteration count."""
    with loader_globals(mine):
        got = cluster.spokes("*", hub="hub1")
        for minion, spoke in got.items():
            assert STRICT_MINION.fullmatch(minion), minion
            assert spoke == {"username": f"bridge.{minion}", "clientid": f"{minion}.cluster"}
            hashed = cluster.spoke_hash(minion)
            assert isinstance(hashed, str) and STRICT_HASH.fullmatch(hashed), (minion, hashed)
            assert int(hashed.split("$")[2]) <= MAX_ITERATIONS, (minion, hashed)


def _strict(minion, entry):
    return (STRICT_MINION.fullmatch(minion) and isinstance(entry, dict)
            and isinstance(entry.get("password_hash"), str) and STRICT_HASH.fullmatch(entry["password_hash"]))


def check_mine_files(mine, tmp_dir, data):
    """On a hub, the spokes' entries reach the ACL and password files
    exactly: one user per accepted spoke with the cluster's rules and its
    own state topic, its hash as published; nothing of an entry that was
    not accepted. Returns False when spokes() accepted a malformed entry
    (check_mine_accepted_strict's business)."""
    with loader_globals(mine):
        spokes = cluster.spokes("*", hub="hub1")
        if not all(_strict(m, mine[m]) for m in spokes):
            return False
        acl = parse.acl(render_acl(data, spokes))
        patterns, want_users = expected_acl(data, spokes)
        assert acl["patterns"] == patterns
        assert [n for n, _ in acl["users"]] == sorted(want_users)
        assert dict(acl["users"]) == want_users
        wanted = passwd_users({n: {"password": "pw"} for n in data["users"]}, data, spokes, mine)
        entries = parse.passwd(render_passwd(tmp_dir, wanted))
        assert dict(entries) == {**{n: dict(entries)[n] for n in data["users"]},
                                 **{s["username"]: mine[m]["password_hash"] for m, s in spokes.items()},
                                 **({data["exporter"]["user"]: dict(entries)[data["exporter"]["user"]]}
                                    if data["exporter"]["enabled"] else {})}
        rejected = set(mine) - set(spokes)
        for text in (render_acl(data, spokes), render_passwd(tmp_dir, wanted)):
            for minion in rejected:
                assert f"bridge.{minion}" not in text.split() and minion not in text.split(":"), minion
    return True
