"""mosquitto_tofs: the TOFS candidates in template-formula's order, one
fileserver listing per run, and a clear error for a malformed tofs pillar.
(The real fileserver and overrides in a second file root: test/render/test_tofs.py.)"""
import pytest
from salt.exceptions import CommandExecutionError

from test.support.modules import load

tofs = load("_modules", "mosquitto_tofs")

GRAINS = {"id": "mqtt1.example", "os_family": "Debian"}


@pytest.fixture
def run(monkeypatch):
    """One state run: its own __context__, a pillar, grains and the files the fileserver has."""
    env = {"pillar": {}, "files": set(), "listings": []}

    def pillar_get(key, default=None):
        node = env["pillar"]
        for part in key.split(":"):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def list_master(saltenv=None, prefix=""):
        env["listings"].append((saltenv, prefix))
        return sorted(f for f in env["files"] if f.startswith(prefix))

    monkeypatch.setattr(tofs, "__context__", {}, raising=False)
    monkeypatch.setattr(tofs, "__opts__", {"saltenv": None}, raising=False)
    monkeypatch.setattr(tofs, "__salt__", {
        "pillar.get": pillar_get, "grains.get": lambda k, d="": GRAINS.get(k, d),
        "cp.list_master": list_master}, raising=False)
    return env


def test_candidates_in_template_formula_order(run):
    run["pillar"] = {"mosquitto": {"tofs": {"source_files": {"sid": ["site.conf"]}}}}
    assert tofs.candidates(["mosquitto.conf"], lookup="sid") == [
        "mosquitto/files/mqtt1.example/site.conf", "mosquitto/files/mqtt1.example/mosquitto.conf",
        "mosquitto/files/Debian/site.conf", "mosquitto/files/Debian/mosquitto.conf",
        "mosquitto/files/default/site.conf", "mosquitto/files/default/mosquitto.conf"]


def test_first_file_found_wins_else_the_formulas_own(run):
    assert tofs.files_switch(["acl.jinja"], lookup="x") == "salt://mosquitto/files/default/acl.jinja"
    run["files"] |= {"mosquitto/files/Debian/acl.jinja", "mosquitto/files/mqtt1.example/other"}
    tofs.__context__.clear()  # a new run
    assert tofs.files_switch(["acl.jinja"], lookup="x") == "salt://mosquitto/files/Debian/acl.jinja"
    run["files"].add("mosquitto/files/mqtt1.example/acl.jinja")
    tofs.__context__.clear()
    assert tofs.files_switch("acl.jinja") == "salt://mosquitto/files/mqtt1.example/acl.jinja"


def test_one_listing_per_run_and_saltenv(run):
    for name in ("acl.jinja", "mosquitto.conf.jinja", "unit.jinja"):
        tofs.files_switch([name], lookup=name)
    tofs.files_switch(["acl.jinja"], saltenv="prod")
    assert run["listings"] == [("base", "mosquitto/"), ("prod", "mosquitto/")]  # shared with mosquitto_map


def test_path_prefix_and_files_switch_from_pillar(run):
    run["pillar"] = {"mqtt": {"tofs": {"path_prefix": "site/mqtt/", "files_switch": ["os_family"]}}}
    run["files"] |= {"site/mqtt/files/mqtt1.example/acl.jinja"}  # id is not switched on
    assert tofs.files_switch(["acl.jinja"], tplroot="mqtt") == "salt://site/mqtt/files/default/acl.jinja"
    assert run["listings"] == [("base", "site/mqtt/")]


@pytest.mark.parametrize("bad, key", [
    ("yes", "mosquitto:tofs"),
    ({"path_prefix": ""}, "mosquitto:tofs:path_prefix"),
    ({"path_prefix": 3}, "mosquitto:tofs:path_prefix"),
    ({"files_switch": "id"}, "mosquitto:tofs:files_switch"),
    ({"files_switch": ["id", None]}, "mosquitto:tofs:files_switch"),
    ({"source_files": ["a"]}, "mosquitto:tofs:source_files"),
    ({"source_files": {"sid": "a.jinja"}}, "mosquitto:tofs:source_files:sid"),
])
def test_malformed_tofs_pillar_is_named(run, bad, key):
    run["pillar"] = {"mosquitto": {"tofs": bad}}
    with pytest.raises(CommandExecutionError, match=f"^{key}: "):
        tofs.files_switch(["acl.jinja"], lookup="sid")
    assert run["listings"] == []
