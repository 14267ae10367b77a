"""
Template Override and Files Switch (TOFS), as in template-formula's
libtofs.jinja: an operator overrides any file of the formula without
forking it, from pillar::

    mosquitto:
      tofs:
        path_prefix: mosquitto            # default: the formula's directory
        files_switch: [id, os_family]     # default: grains tried in order
        source_files:
          mosquitto-configure-broker-config-file-managed: [my-mosquitto.conf.jinja]

For each file state the candidates are, in order: every file named for the
state id under ``source_files`` and then the formula's own file name, first
under ``files/<grain value>/`` for each grain of ``files_switch``, then under
``files/default/``. The first candidate the fileserver has becomes the
state's one source (a single source spares file.managed its own listing of
the master's files for every file state); with none found it is the
formula's file under ``files/default/``.

Why a module and not the macro: the macro was imported (fetched from the
master and compiled) by every SLS file that manages a file, and asked the
master for one candidate's hash at a time, ten signed requests per run. This
asks once per run for the listing under ``<path_prefix>/`` and keeps it
in the run's ``__context__`` (_utils/mosquitto_fileserver.py; mosquitto_map
reads the same listing for its parameter files). That listing comes from the master's file-list
cache, which ``state.apply`` itself has just refreshed, because Salt lists
the fileserver before it renders an SLS file. Like any fileserver listing,
it may be up to ``fileserver_list_cache_time`` (20 s) behind a file the
operator has just added. A master with ``fileserver_list_cache_time: 0``
rebuilds the list for every listing, and a master worker that finds the
rebuild's lock held sleeps a second: there Salt's own listing and this one
can each cost that second (README: keep Salt's default).
"""

from salt.exceptions import CommandExecutionError

__virtualname__ = "mosquitto_tofs"

_DEFAULT_SWITCH = ("id", "os_family")


def __virtual__():
    if "mosquitto_fileserver.listing" not in __utils__:
        return (False, "mosquitto_tofs needs the formula's _utils (run saltutil.sync_all)")
    return __virtualname__


def _settings(tplroot):
    """mosquitto:tofs from pillar, checked: (path_prefix, files_switch, source_files)."""
    tofs = __salt__["pillar.get"](f"{tplroot}:tofs", {}) or {}
    where = f"{tplroot}:tofs"
    if not isinstance(tofs, dict):
        raise CommandExecutionError(f"{where}: must be a mapping, not {type(tofs).__name__}")
    prefix = _path_prefix(where, tofs.get("path_prefix", tplroot))
    switch = _files_switch(where, tofs.get("files_switch", list(_DEFAULT_SWITCH)))
    source_files = _source_files(where, tofs.get("source_files", {}) or {})
    return prefix, switch, source_files


def _path_prefix(where, prefix):
    if not isinstance(prefix, str) or not prefix.strip("/"):
        raise CommandExecutionError(f"{where}:path_prefix: must be a non-empty path, not {prefix!r}")
    return prefix.strip("/")


def _files_switch(where, switch):
    if not isinstance(switch, list) or not all(isinstance(g, str) and g for g in switch):
        raise CommandExecutionError(f"{where}:files_switch: must be a list of grain names, not {switch!r}")
    return switch


def _source_files(where, source_files):
    if not isinstance(source_files, dict):
        raise CommandExecutionError(f"{where}:source_files: must map state ids to file lists")
    for sid, files in source_files.items():
        if not isinstance(files, list) or not all(isinstance(f, str) and f for f in files):
            raise CommandExecutionError(
                f"{where}:source_files:{sid}: must be a list of file names, not {files!r}")
    return source_files


def _listing(prefix, saltenv):
    """The fileserver's files under ``<prefix>/``: the run's one listing,
    shared with mosquitto_map (_utils/mosquitto_fileserver.py)."""
    return __utils__["mosquitto_fileserver.listing"](
        __context__.setdefault("mosquitto_fileserver", {}), __salt__["cp.list_master"], saltenv, prefix)


def candidates(source_files, lookup=None, tplroot="mosquitto"):
    """Every TOFS candidate for one file state, in the order they are tried."""
    return _candidates(_settings(tplroot), source_files, lookup)


def _candidates(settings, source_files, lookup):
    prefix, switch, overrides = settings
    files = list(overrides.get(lookup, [])) + list(source_files)
    out = []
    for grain in switch:
        value = __salt__["grains.get"](grain, "")
        if value not in ("", None) and not isinstance(value, (dict, list)):
            out += [f"{prefix}/files/{value}/{f}" for f in files]
    out += [f"{prefix}/files/default/{f}" for f in files]
    return out


def files_switch(source_files, lookup=None, tplroot="mosquitto", saltenv=None):
    """The one ``salt://`` source for a file state: the first candidate found.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_tofs.files_switch '[acl.jinja]' lookup=mosquitto-configure-acl-file-managed
    """
    if isinstance(source_files, str):
        source_files = [source_files]
    saltenv = saltenv or __opts__.get("saltenv") or "base"
    settings = _settings(tplroot)
    found = _candidates(settings, source_files, lookup)
    listing = _listing(settings[0], saltenv)
    # The formula's own file is the answer when nothing overrides it; the
    # listing is not asked about it (as the macro never hashed it).
    return "salt://" + next((c for c in found[:-1] if c in listing), found[-1])
