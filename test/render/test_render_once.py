"""One state run reads map.jinja (and the parameter files it builds from)
once, not once per SLS file: every SLS file takes the dict that the run's
first import stored (mosquitto_mapdata), so Salt does not fetch and compile
map.jinja again for each of the ~24 SLS files (a master round trip each)."""
from scripts.saltlocal import SaltLocal

PILLAR = {"mosquitto": {"domain": "mqtt.example.com", "users": {"alice": {"password": "pw"}},
                        "firewall": {"enabled": True}}}
GRAINS = {"os": "Debian", "os_family": "Debian", "osfinger": "Debian-12", "osmajorrelease": 12,
          "init": "systemd", "kernel": "Linux"}


def fetches(stderr, name):
    """Templates Salt's Jinja loader asked the fileserver for, by path."""
    return sum(1 for line in stderr.splitlines()
               if f"looking at rel_path 'mosquitto/{name}' to resolve" in line)


def test_map_jinja_is_read_once_per_run(tmp_path):
    salt = SaltLocal(tmp_path / "salt").setup(PILLAR, extra_opts={"grains": GRAINS})
    salt.sync()
    rc, highstate, err = salt.call("-l", "debug", "state.show_sls", "mosquitto")
    assert rc == 0 and isinstance(highstate, dict), (highstate, err)
    sls_files = {v["__sls__"] for v in highstate.values() if isinstance(v, dict) and "__sls__" in v}
    # the run really renders many SLS files that all need the dict ...
    assert len(sls_files) >= 15, sls_files
    assert "mosquitto-configure-firewall-zone-present" in highstate
    # ... and map.jinja, mapbuild.jinja and the defaults are read once
    assert fetches(err, "map.jinja") == 1, fetches(err, "map.jinja")
    assert fetches(err, "mapbuild.jinja") == 1
    assert fetches(err, "parameters/defaults.yaml") == 1


def test_tofs_lists_the_fileserver_once_and_imports_no_macro(tmp_path):
    """TOFS (mosquitto_tofs) asks for one listing per run; no SLS file imports
    a template library (a fetch and a compile per SLS file)."""
    salt = SaltLocal(tmp_path / "salt").setup(PILLAR, extra_opts={"grains": GRAINS})
    salt.sync()
    rc, highstate, err = salt.call("-l", "debug", "state.show_sls", "mosquitto")
    assert rc == 0 and isinstance(highstate, dict), (highstate, err)
    sources = [v for v in highstate.values() if isinstance(v, dict) and "file" in v
               and any(isinstance(a, dict) and "source" in a for a in v["file"])]
    assert len(sources) >= 4, sources  # several file states took a TOFS source ...
    assert err.count("TOFS: listing salt://mosquitto/files/") == 1  # ... from one listing
    fetched = {line.split("looking at rel_path '")[1].split("'")[0]
               for line in err.splitlines() if "looking at rel_path 'mosquitto/" in line}
    others = {f for f in fetched if not f.endswith(".sls") and not f.startswith("mosquitto/parameters/")}
    assert others == {"mosquitto/map.jinja", "mosquitto/mapbuild.jinja"}, others
