"""Helpers the tests of mosquitto_config.validate share.

``cfg`` is _modules/mosquitto_config.py as the tests load it (real
``__utils__``). A test module that calls it imports
``configure_loader_modules`` from here: salt-factories' loader plugin then
gives ``cfg`` its Salt globals for each test (the username rule of
mosquitto_passwd as ``__salt__``, empty ``__opts__``) and takes them back
after, so nothing one test sets reaches another. A test that needs more
(``__opts__``, pkg.* functions) adds it with ``monkeypatch``.
"""
import fnmatch
import pathlib

import pytest
from salt.exceptions import CommandExecutionError

from test.support.mapdata import merged
from test.support.modules import load, utils

ROOT = pathlib.Path(__file__).resolve().parents[2]

cfg = load("_modules", "mosquitto_config")
passwd = load("_modules", "mosquitto_passwd")

# A cluster and a hand-written bridge, as pillar gives them.
CLUSTER = {"hub": "mqtt1", "topics": ["fleet/# both 1"]}
BRIDGE = {"address": "remote.example.com:8883", "topics": ["site/# out 1"]}


@pytest.fixture
def configure_loader_modules():
    # The username rule lives once, in mosquitto_passwd (as the loader wires it).
    return {cfg: {"__salt__": {"mosquitto_passwd.check_username": passwd.check_username},
                  "__utils__": utils()}}


def settings(**pillar):
    """defaults.yaml + Debian.yaml + a pillar, merged by the map's own code."""
    base = {"domain": "mqtt.example.com", "users": {"alice": {"password": "pw"}}}
    return merged(base, pillar)


def error_of(**pillar):
    """The error text validate raises for the defaults plus ``pillar``."""
    with pytest.raises(CommandExecutionError) as exc:
        cfg.validate(settings(**pillar))
    return str(exc.value)


def installed(version):
    """broker_version as mosquitto_config.broker_version reports an
    installed package (None: unknown)."""
    return None if version is None else {"version": version, "where": "installed"}


def validate(minion="mqtt2", version="2.0.11", **pillar):
    """validate as a cluster member ``minion`` with broker ``version`` installed."""
    return cfg.validate(settings(**pillar), minion_id=minion, broker_version=installed(version))


# The Salt mine entry a spoke publishes (mosquitto_cluster_spoke).
MINE_SPOKE = utils()["mosquitto_names.mine_name"]("cluster_spoke")


def master_mine(monkeypatch, minion_id):
    """The Salt mine as a master hands it to ``minion_id``: ``cfg`` gets the
    real mosquitto_cluster.spokes (the function a host hub lists its spokes
    with), whose mine.get reads the dict returned here (minion id -> its
    spoke entry, see spoke_entry); fill it, or clear it, in the test."""
    cluster = load("_modules", "mosquitto_cluster")
    entries = {}

    def get(tgt, fun, tgt_type="glob"):
        return {m: e for m, e in entries.items() if fnmatch.fnmatch(m, tgt)} if fun == MINE_SPOKE else {}
    monkeypatch.setattr(cluster, "__salt__", {"mine.get": get}, raising=False)
    monkeypatch.setattr(cluster, "__utils__", utils(), raising=False)
    monkeypatch.setattr(cluster, "__opts__", {"id": minion_id}, raising=False)
    monkeypatch.setitem(cfg.__salt__, "mosquitto_cluster.spokes", cluster.spokes)
    return entries


def spoke_entry(minion, password_hash):
    """A well-formed spoke entry of ``minion``, as the spoke publishes it."""
    return {"username": f"bridge.{minion}", "clientid": f"{minion}.cluster", "password_hash": password_hash}
