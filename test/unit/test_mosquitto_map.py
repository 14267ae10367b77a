"""mosquitto_map: the formula's one dict, merged from the parameter files
and pillar in order, validated, built once per state run (per pillar and
grains) and shared as copies; one fileserver listing with mosquitto_tofs.
(The real fileserver and SLS files: test/render/.)"""
import pytest
import salt.utils.secret
from salt.exceptions import CommandExecutionError

from test.support.modules import ROOT, load

mapmod = load("_modules", "mosquitto_map")
tofs = load("_modules", "mosquitto_tofs")

GRAINS = {"id": "m1", "os_family": "Debian", "osfinger": "Debian-12", "init": "systemd"}


@pytest.fixture
def run(monkeypatch, tmp_path):
    """One state run: its own __context__, pillar and grains, a fileserver
    holding the repository's mosquitto/ plus `extra` files, and a validate
    that records its calls."""
    env = {"pillar": {"mosquitto": {"domain": "a.example"}}, "grains": dict(GRAINS),
           "extra": {}, "listings": [], "fetched": [], "validated": []}

    def fileserver():
        files = {str(p.relative_to(ROOT)): p for p in (ROOT / "mosquitto").rglob("*") if p.is_file()}
        for path, text in env["extra"].items():
            local = tmp_path / path.replace("/", "_")
            local.write_text(text)
            files[path] = local
        return files

    def list_master(saltenv=None, prefix=""):
        env["listings"].append((saltenv, prefix))
        return sorted(f for f in fileserver() if f.startswith(prefix))

    def cache_file(url, saltenv=None):
        env["fetched"].append(url)
        return str(fileserver().get(url[len("salt://"):], ""))

    def validate(data, nofile_hard_limit=None, **kwargs):
        env["validated"].append(dict(kwargs, nofile_hard_limit=nofile_hard_limit))
        return dict(data, validated=True)

    funcs = {"cp.list_master": list_master, "cp.cache_file": cache_file,
             "grains.get": lambda k, d="": env["grains"].get(k, d),
             "pillar.get": lambda k, d=None: d,
             "mosquitto_config.nofile_hard": lambda init=None: 4096,
             "mosquitto_config.broker_version": lambda data: None,
             "mosquitto_config.validate": validate}
    context = {}  # one per run, shared by the run's modules
    for module in (mapmod, tofs):
        monkeypatch.setattr(module, "__context__", context, raising=False)
        monkeypatch.setattr(module, "__salt__", funcs, raising=False)
        monkeypatch.setattr(module, "__pillar__", env["pillar"], raising=False)
        monkeypatch.setattr(module, "__grains__", env["grains"], raising=False)
        monkeypatch.setattr(module, "__opts__", {"id": "m1", "saltenv": None}, raising=False)
    env["salt"] = funcs
    return env


@pytest.fixture
def rendering():
    """As inside a template render, where Salt hands out plain values."""
    token = salt.utils.secret.mask_pillar.set(False)
    yield
    salt.utils.secret.mask_pillar.reset(token)


def test_layers_merge_in_order(run, rendering):
    run["extra"]["mosquitto/parameters/osfinger/Debian-12.yaml"] = (
        "values:\n  paths: {log_file: /srv/finger.log}\n  pkg: {exporter_deps: [one]}\n")
    run["pillar"]["mosquitto"].update(
        lookup={"paths": {"passwd": "/srv/passwd", "log_file": "/srv/lookup.log"}},
        paths={"log_file": "/srv/pillar.log"})
    data = mapmod.data()
    assert data["validated"] is True
    assert data["domain"] == "a.example"                                   # pillar
    assert data["paths"]["include_dir"] == "/etc/mosquitto/conf.d"         # os_family
    assert data["pkg"]["exporter_deps"] == ["one"]                         # osfinger: lists replace
    assert data["paths"]["passwd"] == "/srv/passwd"                        # lookup
    assert data["paths"]["log_file"] == "/srv/pillar.log"                  # pillar over all
    assert data["ports"]["mqtts"] == 8883                                  # defaults
    assert "lookup" not in data


def test_a_missing_osfinger_layer_is_not_fetched(run, rendering):
    mapmod.data()
    assert run["fetched"] == ["salt://mosquitto/parameters/defaults.yaml",
                              "salt://mosquitto/parameters/os_family/Debian.yaml"]


@pytest.mark.parametrize("init, provider", [
    ("systemd", []),
    ("sysvinit", [{"service": "debian_service"}, {"service": "mosquitto_service"}]),
])
def test_service_provider_follows_the_init_grain(run, rendering, init, provider):
    run["grains"]["init"] = init
    assert mapmod.data()["service"]["provider"] == provider


def test_built_once_per_run_and_handed_out_as_copies(run, rendering):
    first = mapmod.data()
    first["users"] = {"changed": "by one SLS file"}
    second = mapmod.data()
    assert "changed" not in second["users"]
    assert mapmod.data() == second
    assert len(run["validated"]) == 1 and len(run["listings"]) == 1
    stats = mapmod.stats()
    assert (stats["builds"], stats["hits"]) == (1, 2)
    assert stats["files"] == ["mosquitto/parameters/defaults.yaml", "mosquitto/parameters/os_family/Debian.yaml"]
    assert stats["listings"] == [["base", "mosquitto"]]


def test_other_pillar_or_grains_build_anew(run, rendering):
    mapmod.data()
    run["pillar"]["mosquitto"]["domain"] = "b.example"  # e.g. state.apply pillar=...
    assert mapmod.data()["domain"] == "b.example"
    run["grains"]["init"] = "sysvinit"
    assert mapmod.data()["service"]["provider"] != []
    assert mapmod.stats()["builds"] == 3
    assert len(run["listings"]) == 1  # the run's one listing still serves


def test_a_given_pillar_is_built_from_instead_of_the_minions(run, rendering):
    """mosquitto_ca's peer path: a pillar compiled anew counts, the
    in-memory one is left alone, and each is kept apart in the run."""
    assert mapmod.data()["domain"] == "a.example"
    fresh = {"mosquitto": dict(run["pillar"]["mosquitto"], domain="fresh.example")}
    assert mapmod.data(pillar=fresh)["domain"] == "fresh.example"
    assert mapmod.data()["domain"] == "a.example"
    assert mapmod.stats()["builds"] == 2


def test_tofs_and_the_map_share_one_listing(run, rendering):
    assert tofs.files_switch(["acl.jinja"]) == "salt://mosquitto/files/default/acl.jinja"
    mapmod.data()
    assert run["listings"] == [("base", "mosquitto/")]


def test_pillar_that_is_no_mapping_is_named(run, rendering):
    run["pillar"]["mosquitto"] = ["a"]
    with pytest.raises(CommandExecutionError, match="^pillar mosquitto: must be a mapping, got"):
        mapmod.data()


@pytest.mark.parametrize("lookup", ["x", ["paths"], 1])
def test_lookup_that_is_no_mapping_is_named(run, rendering, lookup):
    """Salt's merge raised a TypeError naming nothing (the property test found it)."""
    run["pillar"]["mosquitto"]["lookup"] = lookup
    with pytest.raises(CommandExecutionError, match=r"^invalid mosquitto pillar \(nothing was changed\):\n"
                       r"  - mosquitto:lookup: must be a mapping of parameter sections .* got "):
        mapmod.data()
    assert run["validated"] == []


def test_validate_gets_the_hard_limit_the_minion_id_and_the_broker_version(run, rendering):
    mapmod.data()
    assert run["validated"] == [{"nofile_hard_limit": 4096, "minion_id": "m1", "broker_version": None}]
    run["salt"]["mosquitto_config.broker_version"] = lambda data: {"version": "2.0.11", "where": "installed"}
    run["pillar"]["mosquitto"]["domain"] = "b.example"
    mapmod.data()
    assert run["validated"][1] == {"nofile_hard_limit": 4096, "minion_id": "m1",
                                   "broker_version": {"version": "2.0.11", "where": "installed"}}


def test_without_mosquitto_config_it_says_to_sync(run, rendering):
    del run["salt"]["mosquitto_config.validate"]
    with pytest.raises(CommandExecutionError, match=r'run "saltutil.sync_all"'):
        mapmod.data()


def test_outside_a_render_printing_masks_the_passwords(run):
    run["pillar"]["mosquitto"]["users"] = {"alice": {"password": "s3cret"}}
    data = mapmod.data()
    assert data["users"]["alice"]["password"] == "s3cret"  # reading gives the value ...
    assert "s3cret" not in repr(data) and "s3cret" not in str(salt.utils.secret.mask_output(data))
