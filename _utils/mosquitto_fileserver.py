"""
The fileserver's listing of one directory tree, asked once per state run and
shared by every module that needs it: mosquitto_tofs (which override files
exist) and mosquitto_map (which parameter layers exist). One listing answers
both, so a run costs one request to the master for it, not one per module
or per file looked for.

Reached as::

    __utils__["mosquitto_fileserver.listing"](
        __context__.setdefault("mosquitto_fileserver", {}), __salt__["cp.list_master"], saltenv, root)

The store is a plain dict taken from the calling module's ``__context__``:
code reached through ``__utils__`` runs in the utils loader, where a
``__context__`` passed along would resolve to that loader's own.
"""
import logging

log = logging.getLogger(__name__)

__virtualname__ = "mosquitto_fileserver"

# Every listing really asked for in this run, in order: (saltenv, root).
# mosquitto_map.stats reports it, so a test can tell one listing from two.
ASKED = "asked"


def __virtual__():
    return __virtualname__


def listing(context, list_master, saltenv, root):
    """Every file under ``salt://<root>/`` in ``saltenv``, asked once per run.

    ``context`` is a dict kept in the calling module's ``__context__`` (one
    per state run, shared by the run's modules), ``list_master`` its
    ``__salt__["cp.list_master"]``. The answer comes from the master's file
    list cache, so like any fileserver listing it may be up to
    ``fileserver_list_cache_time`` (20 s) behind a file just added.
    """
    root = root.strip("/")
    key = f"listing:{saltenv}:{root}"
    if key not in context:
        log.debug("mosquitto formula: listing salt://%s/ in saltenv %s", root, saltenv)
        context.setdefault(ASKED, []).append((saltenv, root))
        context[key] = frozenset(list_master(saltenv=saltenv, prefix=f"{root}/"))
    return context[key]
