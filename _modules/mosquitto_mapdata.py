"""
map.jinja's validated dict, kept for the rest of one state run.

Every SLS file of the formula imports map.jinja, and Salt renders each
import anew: fetching the parameter files from the master again (a round
trip each, with a signed token), compiling them, merging and validating.
The first import stores its result here; the others (a dozen per apply)
take it back. The store is the state run's ``__context__``, which Salt makes
for each run (a copy per job), and an entry counts only for the pillar and
grains it was built from, so nothing outlives or outguesses one run.
"""

import copy
import json

__virtualname__ = "mosquitto_mapdata"

_KEY = "mosquitto_mapdata"
# Everything map.jinja reads besides the formula's own files.
_GRAINS = ("id", "os_family", "osfinger", "init")


def __virtual__():
    return __virtualname__


def _inputs():
    grains = {name: __grains__.get(name) for name in _GRAINS}
    return json.dumps([__pillar__.get("mosquitto"), grains], sort_keys=True, default=repr)


def cached():
    """The dict stored earlier in this run for the same pillar and grains, else None."""
    entry = __context__.get(_KEY)
    if entry is None or entry[0] != _inputs():
        return None
    # A copy: an SLS file that changes its dict must not change the next one's.
    return copy.deepcopy(entry[1])


def store(data):
    """Keep ``data`` (map.jinja's validated dict) for the rest of this run."""
    __context__[_KEY] = (_inputs(), copy.deepcopy(data))
    return True
