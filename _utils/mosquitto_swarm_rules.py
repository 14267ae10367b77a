"""
The pillar rules of swarm mode (``mosquitto:swarm``), called by
mosquitto_config.validate with its error collector and the name rules (a
``_utils`` file gets no ``__utils__`` of its own from Salt, so both are
handed in, as to mosquitto_bridge_rules).

Swarm mode deploys, from a swarm manager, the broker alone (named
``domain``) or the cluster's hub (``cluster:hub``) and spokes
(``swarm:spokes``) as services of one stack. What the formula cannot carry
into that stack is refused here, naming the key, before anything changes.
"""
import fnmatch
import ipaddress
import re

__virtualname__ = "mosquitto_swarm_rules"

KEYS = {"enabled", "stack", "spokes", "subnet", "publish", "dir", "wait", "update_delay", "restart_delay",
        "exporter_image", "exporter_publish"}
# The stack name prefixes services, the network, configs, secrets and
# volumes; Docker caps config and secret names at 64 characters, and a
# name is <stack>_<broker label>_<kind>_<hash>.
_STACK = re.compile(r"^[a-z][a-z0-9-]{0,19}\Z")
_IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*\Z")
_NUMBERS = (("wait", "integer", 10, 3600), ("update_delay", "integer", 0, 3600),
            ("restart_delay", "integer", 0, 3600))


def __virtual__():
    return __virtualname__


def swarm(errors, settings, data, names):
    """Check ``mosquitto:swarm``; ``names``: mosquitto_names'
    ``is_dns_name`` and ``is_cluster_minion_id``. Returns whether swarm mode
    is on."""
    path = ["swarm"]
    if not errors.mapping(path, settings, KEYS):
        return False
    enabled = settings.get("enabled", False)
    errors.boolean(path + ["enabled"], enabled)
    stack = settings.get("stack")
    if errors.text(path + ["stack"], stack) and not _STACK.match(stack):
        errors.add(path + ["stack"], f"must be lower-case letters, digits and '-', first a letter, "
                   f"at most 20 characters, got {stack!r}")
    errors.abspath(path + ["dir"], settings.get("dir"))
    errors.table(path, settings, _NUMBERS)
    _subnet(errors, path + ["subnet"], settings.get("subnet", ""))
    brokers = _brokers(errors, path, settings, data, names)
    ports = _publish(errors, path + ["publish"], settings.get("publish", {}), brokers)
    _exporter(errors, path, settings, data, brokers, ports)
    if enabled is True:
        _leaves_alone(errors, data)
    return enabled is True


def _subnet(errors, path, subnet):
    if subnet == "":
        return
    try:
        ipaddress.ip_network(str(subnet))
    except ValueError:
        errors.add(path, f"is not a network like 198.19.0.128/26: {subnet!r}")


def _brokers(errors, path, settings, data, names):
    """The brokers' names: the hub and spokes of a cluster, else domain."""
    spokes = errors.listing(path + ["spokes"], settings.get("spokes", []))
    cluster = data.get("cluster") if isinstance(data.get("cluster"), dict) else {}
    hub = cluster.get("hub") or ""
    if not hub:
        if spokes:
            errors.add(path + ["spokes"], "needs cluster:hub (spokes bridge to the cluster's hub)")
        return [data.get("domain")] if data.get("domain") else []
    members = cluster.get("members", "*")
    seen = {hub}
    for i, spoke in enumerate(spokes):
        _spoke(errors, path + ["spokes", i], spoke, members, seen, names)
        seen.add(spoke)
    return [hub, *spokes]


def _spoke(errors, path, spoke, members, seen, names):
    # A spoke's name is its minion id on hosts: it becomes the hub's user
    # (bridge.<name>), a client id and an ACL line, and its certificate's
    # and service alias' DNS name.
    if not (names["is_cluster_minion_id"](spoke) and names["is_dns_name"](spoke)):
        errors.add(path, f"must be a lower-case DNS name (the spoke's certificate and alias), got {spoke!r}")
    elif spoke in seen:
        errors.add(path, f"{spoke!r} is named twice (or is the hub)")
    elif not isinstance(members, str) or not fnmatch.fnmatch(spoke, members):
        errors.add(path, f"{spoke!r} does not match cluster:members {members!r}: the hub would refuse it")


def _publish(errors, path, publish, brokers, ports=None):
    """port -> what publishes it (one node, one port), ``ports`` included."""
    ports = dict(ports or {})
    if not errors.mapping(path, publish, brokers):
        return ports
    for name, port in publish.items():
        if errors.integer(path + [name], port, 1, 65535):
            if port in ports:
                errors.add(path + [name], f"port {port} is also {ports[port]}'s (one node, one port)")
            ports[port] = name
    return ports


def _exporter(errors, path, settings, data, brokers, ports):
    """swarm:exporter_image ('' = no exporter services) and the node ports
    their /metrics are published on."""
    image = settings.get("exporter_image", "")
    if image != "" and errors.text(path + ["exporter_image"], image) and not _IMAGE_REF.match(image):
        errors.add(path + ["exporter_image"], f"is not an image reference: {image!r}")
    publish = settings.get("exporter_publish", {})
    exporter = data.get("exporter") if isinstance(data.get("exporter"), dict) else {}
    if publish and (image == "" or exporter.get("enabled") is False):
        errors.add(path + ["exporter_publish"], "publishes exporter services that are not deployed: "
                   "set swarm:exporter_image (and exporter:enabled)")
        return
    _publish(errors, path + ["exporter_publish"], publish, brokers, ports)


def _leaves_alone(errors, data):
    """What swarm mode does not deploy: refused rather than dropped."""
    if (data.get("container") or {}).get("enabled") is True:
        errors.add(["container", "enabled"], "container mode and swarm mode exclude each other: "
                   "swarm:enabled deploys the broker as a service")
    if data.get("bridges"):
        errors.add(["bridges"], "hand-written bridges are not deployed in swarm mode (the cluster's are): "
                   "use cluster:, or host/container mode")
    if (data.get("tls") or {}).get("ca_server"):
        errors.add(["tls", "ca_server"], "swarm mode keeps the CA on the manager that deploys the stack: "
                   "set it to ''")
    cluster = data.get("cluster") if isinstance(data.get("cluster"), dict) else {}
    if not cluster.get("hub") and not data.get("domain"):
        errors.add(["domain"], "swarm mode without a cluster deploys one broker named by domain: set it")
