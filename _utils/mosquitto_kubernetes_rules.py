"""
The pillar rules of ``mosquitto:kubernetes`` (issue #23): names that become
Kubernetes object names and DNS labels, image references, quantities, the
pod's ids. Handed the validation collector by mosquitto_config (a _utils
file gets no ``__utils__``), like mosquitto_bridge_rules.
"""
import re

__virtualname__ = "mosquitto_kubernetes_rules"

KEYS = {
    "enabled", "dir", "name", "namespace", "cluster_domain", "image", "exporter_image", "uid", "gid",
    "spokes", "storage", "storage_class", "service_type", "monitoring_namespace", "service_monitor",
    "resources", "kubeconfig", "kubectl",
}
# A DNS-1123 label; `name` is shorter: "<name>-spoke-headless" and the
# StatefulSet's pod names ("<name>-spoke-<n>", plus the 11-character
# controller-revision hash label) must stay within 63.
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?\Z")
_NAME_MAX = 30
_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\Z")
_IMAGE_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*\Z")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?\Z")
_SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
_CONTAINERS = ("broker", "exporter")


def __virtual__():
    return __virtualname__


def _label(errors, path, value, longest=63):
    if not errors.text(path, value):
        return
    if len(value) > longest or not _LABEL.match(value):
        errors.add(path, f"must be a DNS label (lower case letters, digits, inner '-', at most {longest} "
                   f"characters), got {value!r}")


def _image(errors, path, value, empty=False):
    if value == "" and empty:
        return
    if errors.text(path, value) and not _IMAGE_REF.match(value):
        errors.add(path, f"is not an image reference: {value!r}")


def _resources(errors, path, resources):
    """{broker|exporter: {requests|limits: {cpu|memory: quantity}}}."""
    if not errors.mapping(path, resources, _CONTAINERS):
        return
    for container, spec in resources.items():
        cpath = path + [container]
        if not errors.mapping(cpath, spec, ("requests", "limits")):
            continue
        for kind, amounts in spec.items():
            if not errors.mapping(cpath + [kind], amounts, ("cpu", "memory")):
                continue
            for key, value in amounts.items():
                if not _QUANTITY.match(str(value)):
                    errors.add(cpath + [kind, key], f"is not a Kubernetes quantity like 100m or 64Mi: {value!r}")


def _exporter_image(errors, path, settings, data):
    """The sidecar's image must run the formula's exporter program
    (python3 with paho-mqtt and prometheus-client): no public image does,
    so there is no default to fall back on."""
    exporter = data.get("exporter") if isinstance(data.get("exporter"), dict) else {}
    wanted = settings.get("enabled") is True and exporter.get("enabled", True) is True
    if wanted and settings.get("exporter_image", "") == "":
        errors.add(path + ["exporter_image"], "missing: an image with python3, paho-mqtt and prometheus-client "
                   "for the exporter sidecar (see README), or exporter:enabled false")
    else:
        _image(errors, path + ["exporter_image"], settings.get("exporter_image", ""), empty=True)


def check(errors, settings, data, is_dns_name):
    """mosquitto:kubernetes, checked into ``errors``; ``is_dns_name`` is
    mosquitto_names' rule."""
    path = ["kubernetes"]
    if not errors.mapping(path, settings, KEYS):
        return
    errors.boolean(path + ["enabled"], settings.get("enabled"))
    errors.boolean(path + ["service_monitor"], settings.get("service_monitor"))
    errors.abspath(path + ["dir"], settings.get("dir"))
    errors.abspath(path + ["kubeconfig"], settings.get("kubeconfig"), empty=True)
    errors.text(path + ["kubectl"], settings.get("kubectl"))
    _label(errors, path + ["name"], settings.get("name"), _NAME_MAX)
    _label(errors, path + ["namespace"], settings.get("namespace"))
    _label(errors, path + ["monitoring_namespace"], settings.get("monitoring_namespace"))
    domain = settings.get("cluster_domain")
    if errors.text(path + ["cluster_domain"], domain) and not is_dns_name(domain):
        errors.add(path + ["cluster_domain"], f"is not a DNS name: {domain!r}")
    _image(errors, path + ["image"], settings.get("image"))
    _exporter_image(errors, path, settings, data)
    for key in ("uid", "gid"):
        if errors.integer(path + [key], settings.get(key), 0, 2**31 - 2) and settings[key] == 0:
            errors.add(path + [key], "must not be 0: the pod runs as non-root (restricted)")
    # None: not set and not learned (kubernetes off, no cluster; or refused
    # already by mosquitto_config, naming the key).
    if settings.get("spokes") is not None:
        errors.integer(path + ["spokes"], settings.get("spokes"), 1, 100)
    if not _QUANTITY.match(str(settings.get("storage"))):
        errors.add(path + ["storage"], f"is not a Kubernetes quantity like 1Gi: {settings.get('storage')!r}")
    storage_class = settings.get("storage_class", "")
    if storage_class != "" and errors.text(path + ["storage_class"], storage_class) \
            and not _SUBDOMAIN.match(storage_class):
        errors.add(path + ["storage_class"], f"is not a StorageClass name: {storage_class!r}")
    errors.choice(path + ["service_type"], settings.get("service_type"), _SERVICE_TYPES)
    _resources(errors, path + ["resources"], settings.get("resources"))


def enabled(data):
    """True when this minion renders the broker for Kubernetes."""
    settings = data.get("kubernetes") if isinstance(data, dict) else None
    return isinstance(settings, dict) and settings.get("enabled") is True
