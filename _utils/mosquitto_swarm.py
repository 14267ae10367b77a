"""
Swarm mode's plain logic, without Docker or the file system: which brokers
a pillar deploys, where each one's files live on the manager and inside its
task, the settings its mosquitto.conf is rendered from, and the service
spec the engine gets. ``_modules/mosquitto_swarm.py`` does the I/O.

Names. Everything the formula makes carries the stack's namespace label
(``com.docker.stack.namespace``), as ``docker stack deploy`` does, so
``docker stack ls/ps/services`` show it. Swarm configs and secrets cannot
change: each is named ``<stack>_<broker label>_<kind>_<content hash>``,
and a changed file is a new object that the service rolls to; the old one
is removed once no service names it.
"""
import copy
import hashlib
import json
import re

__virtualname__ = "mosquitto_swarm"

NAMESPACE = "com.docker.stack.namespace"
BROKER_LABEL = "io.mosquitto-formula.broker"
SPEC_LABEL = "io.mosquitto-formula.spec"
# Inside a task: the configs at the broker's usual paths, the secrets where
# Docker puts them (tmpfs, /run/secrets/<target>).
CONF = "/etc/mosquitto/mosquitto.conf"
ACL = "/etc/mosquitto/acl"
SECRETS = "/run/secrets"
# target in the task -> (object kind, file name on the manager)
CONFIG_FILES = {CONF: ("conf", "mosquitto.conf"), ACL: ("acl", "acl")}
SECRET_FILES = {"passwd": ("passwd", "passwd"), "server.crt": ("cert", "server.crt"),
                "server.key": ("key", "server.key")}
CA_TARGET = "ca.crt"
BRIDGE_TARGET = "cluster.conf"
# The exporter's service (swarm:exporter_image): the formula's exporter
# program as a config, its MQTT password as a secret, and the broker's
# certificates (public; it serves their expiry and verifies the broker's
# name with the CA).
EXPORTER_PROGRAM = "/opt/mosquitto-exporter/mosquitto_exporter.py"
EXPORTER_PASSWORD = "exporter-password"
_NS = 1_000_000_000


def __virtual__():
    return __virtualname__


def labels():
    """The label keys the formula sets and reads: the stack namespace, the
    broker's name, the spec digest (constants do not reach ``__utils__``)."""
    return {"namespace": NAMESPACE, "broker": BROKER_LABEL, "spec": SPEC_LABEL}


def label(name):
    """A broker name as the lower-case ``[a-z0-9-]`` part of Docker object
    names, at most 20 characters (a longer one keeps a hash of the rest)."""
    text = re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-") or "broker"
    if len(text) <= 20:
        return text
    return text[:13].rstrip("-") + "-" + hashlib.sha256(text.encode()).hexdigest()[:6]


def brokers(data):
    """The brokers of a validated map: [{name, label, role}], the spokes
    first and the hub last (the order services are rolled in: the hub's
    restart drops every bridge, so once, at the end); one ``broker`` named
    ``domain`` without a cluster."""
    swarm, cluster = data["swarm"], data.get("cluster") or {}
    hub = cluster.get("hub") or ""
    if not hub:
        return [{"name": data["domain"], "label": label(data["domain"]), "role": "broker"}]
    spokes = [{"name": s, "label": label(s), "role": "spoke"} for s in swarm.get("spokes") or []]
    return spokes + [{"name": hub, "label": label(hub), "role": "hub"}]


def exporter_on(data):
    """Whether each broker gets an exporter service: exporter:enabled and
    an image to run it in (swarm:exporter_image; '' = none)."""
    return bool(data["exporter"]["enabled"] and data["swarm"].get("exporter_image"))


def _exporter_files(data, base, name):
    swarm = data["swarm"]
    return {
        "configs": {EXPORTER_PROGRAM: f"{swarm['dir'].rstrip('/')}/mosquitto_exporter.py"},
        "secrets": {EXPORTER_PASSWORD: f"{base}/exporter.secret", CA_TARGET: data["tls"]["ca_cert"],
                    "server.crt": f"{base}/server.crt"},
        "publish": int((swarm.get("exporter_publish") or {}).get(name, 0)),
    }


def layout(data):
    """Each broker with its files on the manager (``<swarm:dir>/<label>/``)
    and where its task reads them: {label: {name, role, dir, configs:
    {target: path}, secrets: {target: path}, publish, exporter}}
    (exporter: its service's configs, secrets and publish, or None). Paths
    only, never contents: this is a state argument."""
    swarm = data["swarm"]
    out = {}
    for broker in brokers(data):
        base = f"{swarm['dir'].rstrip('/')}/{broker['label']}"
        secrets = {target: f"{base}/{name}" for target, (_, name) in SECRET_FILES.items()}
        secrets[CA_TARGET] = data["tls"]["ca_cert"]
        if broker["role"] == "spoke":
            secrets[BRIDGE_TARGET] = f"{base}/bridges/{BRIDGE_TARGET}"
        out[broker["label"]] = {
            "name": broker["name"], "role": broker["role"], "dir": base,
            "configs": {target: f"{base}/{name}" for target, (_, name) in CONFIG_FILES.items()},
            "secrets": secrets,
            "publish": int((swarm.get("publish") or {}).get(broker["name"], 0)),
            "exporter": _exporter_files(data, base, broker["name"]) if exporter_on(data) else None,
        }
    return out


def broker_settings(data, name, nofile):
    """The map mosquitto.conf.jinja renders for broker ``name`` in its task:
    the pillar's broker settings with the task's paths (configs under
    /etc/mosquitto, secrets under /run/secrets, bridges from the secrets
    directory, log to stderr). No users, bridges or passwords."""
    out = copy.deepcopy({k: v for k, v in data.items() if k not in ("users", "bridges")})
    out["domain"] = name
    out["paths"].update(conf=CONF, acl=ACL, passwd=f"{SECRETS}/passwd", bridges_dir=SECRETS,
                        pid_file="", log_file="", include_dir="")
    out["tls"].update(ca_cert=f"{SECRETS}/{CA_TARGET}", cert=f"{SECRETS}/server.crt",
                      key=f"{SECRETS}/server.key")
    # log_dest stderr (docker service logs); the template's container branch.
    out["container"]["enabled"] = True
    # The task's open-files limit is container:nofile, not the manager's.
    out["limits"]["open_files_effective"] = nofile
    mqtts = out["listeners"]["mqtts"]
    mqtts["max_connections"] = min(int(mqtts["max_connections"]), nofile - 64)
    return out


def acl_users(data, broker):
    """user -> ACL rules on ``broker`` (a layout entry): the pillar's users
    and, on the hub, each spoke's bridge user (the cluster topics from the
    hub's side and its own connection state), and the exporter's user
    when the broker has an exporter service."""
    users = {name: spec["acl"] for name, spec in data["users"].items()}
    if exporter_on(data):
        users[data["exporter"]["user"]] = ["read $SYS/#"]
    if broker["role"] == "hub":
        cluster = data["cluster"]
        for spoke in data["swarm"]["spokes"]:
            users[f"bridge.{spoke}"] = list(cluster["acl"]) + [
                f"write $SYS/broker/connection/{spoke}.cluster/state"]
    return users


def object_name(stack, broker_label, kind, content):
    """A config's or secret's name: immutable objects are versioned by
    content (a 10-hex prefix of its SHA-256; of a key or a password file
    that tells nothing of it). Content None (test=True: a file that would
    change to what the plan cannot know) gives ``..._pending``."""
    digest_ = "pending" if content is None else hashlib.sha256(content).hexdigest()[:10]
    return f"{stack}_{broker_label}_{kind}_{digest_}"


def kind_of(target):
    """The object kind of a config or secret target."""
    if target in CONFIG_FILES:
        return CONFIG_FILES[target][0]
    if target in SECRET_FILES:
        return SECRET_FILES[target][0]
    return {CA_TARGET: "ca", BRIDGE_TARGET: "bridge", EXPORTER_PROGRAM: "exporter",
            EXPORTER_PASSWORD: "exppass"}[target]


def service_name(stack, broker_label):
    return f"{stack}_{broker_label}"


def volume_name(stack, broker_label):
    return f"{stack}_{broker_label}_data"


def network_name(stack):
    return f"{stack}_net"


def _published(target, published):
    """A port published on the node itself (host mode: the ingress mesh
    needs IPVS, README "Orchestrators"); none when not asked."""
    if not published:
        return []
    return [{"Protocol": "tcp", "TargetPort": target, "PublishedPort": published, "PublishMode": "host"}]


def _healthcheck(settings):
    """Alive = the plain listener answers an MQTT CONNECT: an anonymous one
    is refused "not authorised", which mosquitto_sub reports as exit code 5
    (no answer is 1). No credential in the service's spec."""
    health, port = settings["healthcheck"], settings["mqtt_port"]
    return {
        "Test": ["CMD-SHELL", f"mosquitto_sub -h 127.0.0.1 -p {port} -t health -C 1 -W 3 "
                 "-i mosquitto-healthcheck >/dev/null 2>&1; [ $? -eq 5 ]"],
        "Interval": health["interval"] * _NS, "Timeout": health["timeout"] * _NS,
        "Retries": health["retries"], "StartPeriod": health["start_period"] * _NS,
    }


def _file_refs(settings, objects, kind, mode):
    key = "ConfigName" if kind == "config" else "SecretName"
    return [{"File": {"Name": target, "UID": str(settings["uid"]), "GID": str(settings["gid"]), "Mode": mode},
             key: objects[target]} for target in sorted(objects)]


def service_spec(stack, broker_label, broker, configs, secrets, settings):
    """The engine's ServiceSpec for one broker (configs/secrets: target ->
    object name; the module adds their IDs). One replica, on the stack's
    overlay network with the broker's name as alias (dnsrr: the virtual-IP
    mode needs IPVS), its own volume, non-root, read-only root, no
    capabilities, restart on failure, rolled stop-first (never two brokers
    on one data volume, and the old one saves its store before the new one
    reads it)."""
    labels = {NAMESPACE: stack, BROKER_LABEL: broker["name"]}
    uid, gid, nofile = settings["uid"], settings["gid"], settings["nofile"]
    container = {
        "Image": settings["image"],
        "Command": ["mosquitto", "-c", CONF],
        "User": f"{uid}:{gid}",
        "Hostname": broker["name"],
        "Labels": {NAMESPACE: stack},
        "ReadOnly": True,
        "CapabilityDrop": ["ALL"],
        "Ulimits": [{"Name": "nofile", "Soft": nofile, "Hard": nofile}],
        "Mounts": [{"Type": "volume", "Source": volume_name(stack, broker_label),
                    "Target": settings["data_dir"].rstrip("/") or "/",
                    "VolumeOptions": {"Labels": labels}}],
        "Healthcheck": _healthcheck(settings),
        "StopGracePeriod": 30 * _NS,
        "Configs": _file_refs(settings, configs, "config", 0o440),
        "Secrets": _file_refs(settings, secrets, "secret", 0o400),
    }
    ports = _published(settings["mqtts_port"], broker.get("publish"))
    roll = {"Parallelism": 1, "Order": "stop-first", "Delay": settings["update_delay"] * _NS,
            "Monitor": 5 * _NS, "FailureAction": "rollback"}
    spec = {
        "Name": service_name(stack, broker_label),
        "Labels": labels,
        "TaskTemplate": {
            "ContainerSpec": container,
            "RestartPolicy": {"Condition": "on-failure", "Delay": settings["restart_delay"] * _NS,
                              "MaxAttempts": 0},
            "Networks": [{"Target": network_name(stack), "Aliases": [broker["name"]]}],
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "UpdateConfig": roll,
        "RollbackConfig": dict(roll, FailureAction="pause"),
        "EndpointSpec": {"Mode": "dnsrr", "Ports": ports},
    }
    # On the service (compared on the next run) and on its tasks (which
    # task runs the wanted spec while a service rolls).
    spec_digest = digest(spec)
    spec["Labels"] = dict(labels, **{SPEC_LABEL: spec_digest})
    container["Labels"][SPEC_LABEL] = spec_digest
    return spec


def exporter_service_name(stack, broker_label):
    return f"{service_name(stack, broker_label)}-exporter"


def exporter_spec(stack, broker_label, broker, configs, secrets, settings):
    """The ServiceSpec of broker ``broker``'s exporter: the formula's
    exporter program in ``settings["exporter_image"]``, logged in to its
    broker by name over TLS (verified with the stack's CA: the plain
    listener stays on the broker task's loopback), its password a secret
    file (never in the environment). Non-root, read-only root (a tmpfs
    /tmp), no capabilities, on the stack's network; /metrics published
    on the node only when swarm:exporter_publish names the broker."""
    exporter = broker["exporter"]
    name = exporter_service_name(stack, broker_label)
    labels = {NAMESPACE: stack, BROKER_LABEL: broker["name"]}
    env = {
        "BROKER_ENDPOINT": f"ssl://{broker['name']}:{settings['mqtts_port']}",
        "MQTT_CAFILE": f"{SECRETS}/{CA_TARGET}",
        "MQTT_USER": settings["exporter_user"],
        "MQTT_PASS_FILE": f"{SECRETS}/{EXPORTER_PASSWORD}",
        "MQTT_CLIENT_ID": f"mosquitto-exporter-{broker_label}",
        "SERVER_CERT_FILE": f"{SECRETS}/server.crt",
        "CA_CERT_FILE": f"{SECRETS}/{CA_TARGET}",
        "BIND_ADDRESS": f"0.0.0.0:{settings['exporter_port']}",
        "MAX_CONNECTIONS": str(settings["max_connections"]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    container = {
        "Image": settings["exporter_image"],
        "Command": ["python3", EXPORTER_PROGRAM],
        "Env": [f"{key}={value}" for key, value in sorted(env.items())],
        "User": f"{settings['uid']}:{settings['gid']}",
        "Hostname": f"{broker_label}-exporter",
        "Labels": {NAMESPACE: stack},
        "ReadOnly": True,
        "CapabilityDrop": ["ALL"],
        "Mounts": [{"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 16 << 20}}],
        "StopGracePeriod": 10 * _NS,
        "Configs": _file_refs(settings, configs, "config", 0o444),
        "Secrets": _file_refs(settings, secrets, "secret", 0o400),
    }
    ports = _published(settings["exporter_port"], exporter.get("publish"))
    spec = {
        "Name": name,
        "Labels": labels,
        "TaskTemplate": {
            "ContainerSpec": container,
            "RestartPolicy": {"Condition": "on-failure", "Delay": settings["restart_delay"] * _NS,
                              "MaxAttempts": 0},
            "Networks": [{"Target": network_name(stack), "Aliases": [f"{broker_label}-exporter"]}],
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "UpdateConfig": {"Parallelism": 1, "Order": "stop-first", "Delay": settings["update_delay"] * _NS,
                         "FailureAction": "rollback"},
        "EndpointSpec": {"Mode": "dnsrr", "Ports": ports},
    }
    spec_digest = digest(spec)
    spec["Labels"] = dict(labels, **{SPEC_LABEL: spec_digest})
    container["Labels"][SPEC_LABEL] = spec_digest
    return spec


def digest(spec):
    """A stable hash of a spec as the formula writes it (object names, not
    IDs): the service's label, compared on the next run."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+\d+(?:,\d+)? @@")


def apply_diff(old, diff):
    """``old`` text with a unified diff (file.managed's test=True ``diff``)
    applied: the content the file would get. None when the diff does not
    apply to ``old`` (then the new object's name is not known yet)."""
    lines, out, pos = old.splitlines(True), [], 0
    rows = [r for r in diff.splitlines(True) if not r.startswith(("---", "+++"))]
    for row in rows:
        hunk = _HUNK.match(row)
        if hunk:
            start = int(hunk.group(1)) - (0 if hunk.group(2) == "0" else 1)
            if start < pos:
                return None
            out.extend(lines[pos:start])
            pos = start
            continue
        tag, text = row[:1], row[1:]
        if tag in (" ", "-"):
            if pos >= len(lines) or lines[pos] != text:
                return None
            pos += 1
        if tag in (" ", "+"):
            out.append(text)
        elif tag not in ("-",):
            return None
    return "".join(out + lines[pos:])


def pending_contents(running, paths):
    """Under test=True: what the states run before this one would write
    into ``paths`` (this run's ``__running__``): path -> new bytes, or
    None when a file would change to content the plan cannot know (a
    secret file, or a first run). Files no state would change are left out."""
    out = {}
    for result in running.values():
        if result.get("result") is not None or not result.get("changes"):
            continue
        name = str(result.get("name", ""))
        for path in paths:
            if path != name and not path.startswith(name.rstrip("/") + "/"):
                continue
            diff = result["changes"].get("diff") if path == name else None
            new = None
            if isinstance(diff, str):
                try:
                    with open(path, encoding="utf-8") as fh:
                        new = apply_diff(fh.read(), diff)
                except OSError:
                    new = None
            out[path] = None if new is None else new.encode()
    return out
