"""
The formula's one dict: parameters/defaults.yaml <- os_family/<os_family>.yaml
<- os/<os>.yaml <- osfinger/<osfinger>.yaml <- pillar ``mosquitto:lookup`` <- pillar
``mosquitto``, validated by mosquitto_config. Every SLS file reads it with
one line::

    {%- set mosquitto = salt['mosquitto_map.data'](tplroot, saltenv) %}

A bad pillar fails there, while the SLS files render, so nothing on the
host has changed yet.

Built once per state run: the first call reads the parameter files from the
fileserver (which exist: from the one listing per run that mosquitto_tofs
shares, _utils/mosquitto_fileserver.py) and validates; later calls (one per
SLS file, a dozen and more per apply) get a copy. The store is the run's
``__context__``, which Salt makes for each run, and an entry counts only for
the pillar and grains it was built from, so nothing outlives or outguesses
one run. The merge itself is _utils/mosquitto_map.py.

The parameter files are plain YAML (no Jinja is rendered in them).
"""
import copy
import json
import logging

import salt.utils.data
import salt.utils.files
import salt.utils.yaml
from salt.exceptions import CommandExecutionError

try:  # Salt 3008's pillar masking; absent from other Salt versions
    import salt.utils.secret as _secret
except ImportError:  # pragma: no cover
    _secret = None

log = logging.getLogger(__name__)

__virtualname__ = "mosquitto_map"

_BUILT = "mosquitto_map.built"
_STATS = "mosquitto_map.stats"
# Shared with mosquitto_tofs: the run's fileserver listing (_utils/mosquitto_fileserver.py).
_FILESERVER = "mosquitto_fileserver"
# Every grain the dict depends on (validate reads the minion id).
_GRAINS = ("id", "os_family", "os", "osfinger", "init")
_NOT_SYNCED = ('mosquitto formula: custom modules are not synced; run "saltutil.sync_all" '
               "(or state.apply with sync_mods=all) first")
_UTILS = ("mosquitto_map.build", "mosquitto_fileserver.listing")


def __virtual__():
    # Without the formula's _utils (modules synced but not utils) this stays
    # unloaded, and the SLS files' guard says to run saltutil.sync_all.
    if not all(name in __utils__ for name in _UTILS):
        return (False, "mosquitto_map needs the formula's _utils (run saltutil.sync_all)")
    return __virtualname__


def data(tplroot="mosquitto", saltenv=None, pillar=None):
    """
    The formula's validated dict for this minion, built once per state run.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_map.data

    ``pillar``: a whole pillar to build from instead of the minion's
    in-memory one (mosquitto_ca passes one compiled anew for a peer
    request, so a policy changed since the last refresh counts).

    Inside a template (the SLS files) the result is a plain dict. Elsewhere
    (this CLI, other modules) it is wrapped as Salt 3008 wraps pillar data:
    reading it gives the values, printing it masks them, since the dict
    holds the pillar's passwords.
    """
    saltenv = saltenv or __opts__.get("saltenv") or "base"
    built = __context__.setdefault(_BUILT, {})
    stats = _stats()
    source = _pillar(pillar)
    inputs = _inputs(tplroot, saltenv, source)
    if inputs in built:
        stats["hits"] += 1
    else:
        built[inputs] = _build(tplroot, saltenv, source)
        stats["builds"] += 1
    # A copy: an SLS file that changes its dict must not change the next one's.
    return _for_caller(copy.deepcopy(built[inputs]))


def stats():
    """
    What this run's map cost: ``builds`` (the dict built; 1 in a state
    run), ``hits`` (calls answered from the run's copy), ``files`` (the
    parameter files fetched from the fileserver) and ``listings`` (the
    fileserver listings asked for, shared with mosquitto_tofs).

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_map.stats
    """
    out = copy.deepcopy(_stats())
    out["listings"] = [list(asked) for asked in __context__.get(_FILESERVER, {}).get("asked", [])]
    return out


def _stats():
    return __context__.setdefault(_STATS, {"builds": 0, "hits": 0, "files": []})


def _pillar(pillar=None):
    """Pillar ``mosquitto`` as plain data (Salt 3008 may hand __pillar__ over
    wrapped for masking), a copy the merge cannot change."""
    value = (__pillar__ if pillar is None else pillar).get("mosquitto", {})
    if _secret is not None:
        value = _secret.expose(value)
    return copy.deepcopy(value)


def _inputs(tplroot, saltenv, source):
    """Everything the dict is built from besides the formula's files."""
    grains = {name: __grains__.get(name) for name in _GRAINS}
    return json.dumps([tplroot, saltenv, __opts__.get("id"), source, grains],
                      sort_keys=True, default=repr)


def _build(tplroot, saltenv, source):
    grains = {name: __grains__.get(name) for name in _GRAINS}
    files = __utils__["mosquitto_map.layer_files"](tplroot, grains)
    layers = [_load(path, tplroot, saltenv) for path in files]
    if layers[0] is None:
        raise CommandExecutionError(f"mosquitto formula: salt://{files[0]} not found in saltenv {saltenv}")
    merged = __utils__["mosquitto_map.build"](layers, source, grains["init"])
    return _validated(merged, grains["init"])


def _load(path, tplroot, saltenv):
    """One parameter file's YAML, or None when the fileserver has no such file."""
    listing = __utils__["mosquitto_fileserver.listing"](
        __context__.setdefault(_FILESERVER, {}), __salt__["cp.list_master"], saltenv, tplroot)
    if path not in listing:
        return None
    local = __salt__["cp.cache_file"](f"salt://{path}", saltenv=saltenv)
    if not local:
        return None
    _stats()["files"].append(path)
    with salt.utils.files.fopen(local, "r") as fh:
        return salt.utils.data.decode(salt.utils.yaml.safe_load(fh))


def _validated(merged, init):
    if "mosquitto_config.validate" not in __salt__:
        raise CommandExecutionError(_NOT_SYNCED)
    # The broker's open-files limit cannot exceed what its service manager
    # may grant (systemd lowers LimitNOFILE= to its own hard limit
    # silently): validate caps limits:open_files to it and sizes
    # max_connections.
    nofile_hard = __salt__["mosquitto_config.nofile_hard"](init)
    version = __salt__["mosquitto_config.broker_version"](merged)
    return __salt__["mosquitto_config.validate"](
        merged, nofile_hard_limit=nofile_hard, minion_id=__opts__["id"], broker_version=version)


def _for_caller(value):
    """Plain inside a template render; wrapped for masking elsewhere (see data)."""
    if _secret is None or not _secret.mask_pillar.get():
        return value
    return _secret.hide(value)
