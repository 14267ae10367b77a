"""mosquitto_mapdata: map.jinja's dict kept for one state run, per pillar and grains."""
import pytest

from test.support.modules import load

md = load("_modules", "mosquitto_mapdata")


@pytest.fixture
def run(monkeypatch):
    """One state run: its own __context__, a pillar and grains."""
    env = {"pillar": {"mosquitto": {"domain": "a.example"}},
           "grains": {"id": "m1", "os_family": "Debian", "osfinger": "Debian-12", "init": "systemd"}}
    monkeypatch.setattr(md, "__context__", {}, raising=False)
    monkeypatch.setattr(md, "__pillar__", env["pillar"], raising=False)
    monkeypatch.setattr(md, "__grains__", env["grains"], raising=False)
    return env


def test_nothing_before_the_first_import(run):
    assert md.cached() is None


def test_later_imports_get_an_equal_copy(run):
    data = {"domain": "a.example", "users": {"alice": {"acl": ["readwrite #"]}}}
    md.store(data)
    first = md.cached()
    assert first == data
    first["users"]["alice"]["acl"].append("read x")  # an SLS file changing its dict
    assert md.cached() == data
    data["domain"] = "changed after store"
    assert md.cached()["domain"] == "a.example"


def test_other_pillar_or_grains_build_anew(run):
    md.store({"domain": "a.example"})
    run["pillar"]["mosquitto"]["domain"] = "b.example"  # e.g. state.apply pillar=...
    assert md.cached() is None
    run["pillar"]["mosquitto"]["domain"] = "a.example"
    assert md.cached() == {"domain": "a.example"}
    run["grains"]["init"] = "sysvinit"
    assert md.cached() is None
