"""One state run builds the formula's dict once, not once per SLS file:
every SLS file asks mosquitto_map.data, whose first call reads the
parameter files and validates, and whose later calls answer from the run's
copy. mosquitto_map.stats, rendered by a probe SLS file after the formula's
own in the same run, reports what the run cost; the minion's file cache
shows what the run fetched."""
from scripts.saltlocal import REPO, SaltLocal

PILLAR = {"mosquitto": {"domain": "mqtt.example.com", "users": {"alice": {"password": "pw"}},
                        "firewall": {"enabled": True}}}
GRAINS = {"os": "Debian", "os_family": "Debian", "osfinger": "Debian-12", "osmajorrelease": 12,
          "init": "systemd", "kernel": "Linux"}
PROBE = """\
mosquitto-map-stats:
  test.nop:
    - stats: {{ salt['mosquitto_map.stats']() | json }}
"""


def show_with_probe(tmp_path):
    """show_sls of the formula, then of a probe file in a second file root
    (rendered last, in the same run): (highstate, the run's map stats, salt)."""
    probe_root = tmp_path / "probe"
    probe_root.mkdir()
    (probe_root / "mapprobe.sls").write_text(PROBE)
    salt = SaltLocal(tmp_path / "salt", file_roots=[REPO, probe_root]).setup(
        PILLAR, extra_opts={"grains": GRAINS})
    salt.sync()
    rc, highstate, err = salt.call("state.show_sls", "mosquitto,mapprobe")
    assert rc == 0 and isinstance(highstate, dict), (highstate, err)
    stats = {}
    for arg in highstate.pop("mosquitto-map-stats")["test"]:
        if isinstance(arg, dict) and "stats" in arg:
            stats = arg["stats"]
    return highstate, stats, salt


def fetched(salt):
    """Files the run fetched from the fileserver, from the minion's file cache."""
    return {str(p).split("/files/base/", 1)[1] for p in (salt.dir / "root").rglob("files/base/mosquitto/**/*")
            if p.is_file()}


def test_the_map_is_built_once_per_run(tmp_path):
    highstate, stats, _ = show_with_probe(tmp_path)
    sls_files = {v["__sls__"] for v in highstate.values() if isinstance(v, dict) and "__sls__" in v}
    # the run really renders several SLS files that all need the dict ...
    assert len(sls_files) > 1, sls_files
    assert "mosquitto-configure-firewall-zone-present" in highstate
    # ... and it was built once, from two parameter files (no osfinger file
    # for Debian-12): init.sls and every SLS file with states asked for it,
    # one call built it and every other took the run's copy
    assert stats["builds"] == 1, stats
    assert stats["hits"] >= len(sls_files), stats
    assert stats["files"] == ["mosquitto/parameters/defaults.yaml",
                              "mosquitto/parameters/os_family/Debian.yaml"], stats


def test_one_listing_serves_tofs_and_the_map_and_no_template_is_imported(tmp_path):
    """TOFS (mosquitto_tofs) and the map share one fileserver listing per
    run; no SLS file imports a Jinja file (a fetch and a compile per SLS
    file): the run fetched SLS and parameter files only."""
    highstate, stats, salt = show_with_probe(tmp_path)
    sources = [v for v in highstate.values() if isinstance(v, dict) and "file" in v
               and any(isinstance(a, dict) and "source" in a for a in v["file"])]
    assert len(sources) >= 4, sources  # several file states took a TOFS source ...
    assert stats["listings"] == [["base", "mosquitto"]], stats  # ... from the run's one listing
    others = {f for f in fetched(salt) if not f.endswith(".sls")}
    assert others == {"mosquitto/parameters/defaults.yaml", "mosquitto/parameters/os_family/Debian.yaml"}, others
