"""mosquitto_config.validate on a pillar merged like the map merges it, for
tests outside test_mosquitto_config.py (which keeps its own copy of these
two helpers).

``__salt__`` (the username rule lives in mosquitto_passwd, as the loader
wires it) is set only for the one call, through a MonkeyPatch.
"""
import copy

import pytest
import yaml
from salt.exceptions import CommandExecutionError

from test.support.modules import ROOT, load

cfg = load("_modules", "mosquitto_config")


def _merge(a, b):
    for k, v in b.items():
        a[k] = _merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return a


def settings(**pillar):
    """defaults.yaml + Debian.yaml + a domain and a user + a pillar."""
    data = yaml.safe_load((ROOT / "mosquitto/parameters/defaults.yaml").read_text())["values"]
    _merge(data, yaml.safe_load((ROOT / "mosquitto/parameters/os_family/Debian.yaml").read_text())["values"])
    base = {"domain": "mqtt.example.com", "users": {"alice": {"password": "pw"}}}
    return _merge(_merge(data, base), copy.deepcopy(pillar))


def validate(data):
    """cfg.validate(data) with the loader's __salt__ for the call."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cfg, "__salt__", {"mosquitto_passwd.check_username": load("_modules", "mosquitto_passwd").check_username},
                   raising=False)
        return cfg.validate(data)


def error_of(**pillar):
    """The message validate raises for settings(**pillar)."""
    with pytest.raises(CommandExecutionError) as exc:
        validate(settings(**pillar))
    return str(exc.value)
