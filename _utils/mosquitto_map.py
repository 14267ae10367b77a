"""
The formula's one dict, its pure part: which parameter files make it, how
they, pillar ``mosquitto:lookup`` and pillar ``mosquitto`` merge, and which
service provider the states use. The I/O (fileserver, pillar, grains,
validation) is _modules/mosquitto_map.py; the unit tests call these same
functions.

Reached as ``__utils__["mosquitto_map.<function>"]``.
"""
import salt.utils.dictupdate
from salt.exceptions import CommandExecutionError

__virtualname__ = "mosquitto_map"

# Layers after defaults.yaml: (directory under parameters/, grain naming the file).
# os: a distribution of the family that differs (RHEL itself has no
# epel-release in its repositories: os/RedHat.yaml).
_LAYERS = (("os_family", "os_family"), ("os", "os"), ("osfinger", "osfinger"))


def __virtual__():
    return __virtualname__


def layer_files(tplroot, grains):
    """Fileserver paths of the parameter files, in merge order: defaults,
    then the host's os_family, os and osfinger files (any may not exist)."""
    files = [f"{tplroot}/parameters/defaults.yaml"]
    for directory, grain in _LAYERS:
        value = grains.get(grain)
        if value not in (None, ""):
            files.append(f"{tplroot}/parameters/{directory}/{value}.yaml")
    return files


def merge(base, layer):
    """``layer`` over ``base``, as ``slsutil.merge(strategy='recurse')``
    does (the same Salt function): mappings merge key by key, anything else
    (lists too) is replaced. Returns a new dict; ``base`` is not changed."""
    return salt.utils.dictupdate.merge(base, layer or {}, strategy="recurse")


def merge_layers(layers):
    """The ``values:`` of each loaded parameter file over the one before;
    a missing file (None) or an empty one adds nothing."""
    merged = {}
    for layer in layers:
        if layer:
            merged = merge(merged, layer.get("values"))
    return merged


def merge_pillar(merged, pillar_data):
    """Pillar ``mosquitto:lookup`` over the parameter files, then the rest of
    pillar ``mosquitto`` over that."""
    if not isinstance(pillar_data, dict):
        # The type only: the value may hold the pillar's passwords.
        raise CommandExecutionError(f"pillar mosquitto: must be a mapping, got {type(pillar_data).__name__}")
    rest = dict(pillar_data)
    lookup = rest.pop("lookup", {})
    if lookup is not None and not isinstance(lookup, dict):
        # Salt's merge would fail on it with a TypeError naming nothing;
        # worded like validate's refusals (mosquitto_validate's collector).
        raise CommandExecutionError(
            "invalid mosquitto pillar (nothing was changed):\n  - mosquitto:lookup: must be a mapping of "
            "parameter sections over the formula's defaults (paths, pkg, service: see pillar.example), "
            f"got {type(lookup).__name__}")
    return merge(merge(merged, lookup), rest)


def service_provider(service, init):
    """The provider list every service state takes.

    Where systemd is not PID 1 the systemd service module still loads
    (systemctl exists) and would answer for the init scripts: service states
    there use the distribution's sysv module, plus mosquitto_service for the
    one function (offline) that the sysv module lacks.
    """
    if init == "systemd":
        return []
    return [{"service": service["sysv_provider"]}, {"service": "mosquitto_service"}]


def build(layers, pillar_data, init):
    """The merged, not yet validated dict: parameter ``layers`` (loaded
    files in merge order), then the pillar, and the service provider for
    the ``init`` grain."""
    merged = merge_pillar(merge_layers(layers), pillar_data)
    service = merged.get("service")
    if isinstance(service, dict):  # else validation names the bad key
        service["provider"] = service_provider(service, init)
    return merged
