"""The formula's parameter files merged by the map's own code
(_utils/mosquitto_map.py), for unit tests that validate a pillar without a
minion: the same merge as mosquitto_map.data, minus the fileserver."""
import copy

import yaml

from test.support.modules import ROOT, load_util

MAP = load_util("mosquitto_map")


def parameters(os_family="Debian"):
    """defaults.yaml and the os_family file, as loaded YAML, in merge order."""
    files = MAP.layer_files("mosquitto", {"os_family": os_family})
    return [yaml.safe_load((ROOT / path).read_text()) for path in files]


def merged(*pillars, os_family="Debian"):
    """The parameter files, then each pillar mapping over the one before."""
    data = MAP.merge_layers(parameters(os_family))
    for pillar in pillars:
        data = MAP.merge(data, copy.deepcopy(pillar))
    return data


def built(pillar, os_family="Debian", init="systemd"):
    """What mosquitto_map.data builds before validation: the parameter
    files, pillar ``lookup`` and pillar, and the service provider."""
    return MAP.build(parameters(os_family), copy.deepcopy(pillar), init)
