"""TOFS overrides resolved at render time: every file state gets the one
source the fileserver has (the first TOFS candidate found), so file.managed
needs no master file listing on a no-op. An override in a second file root
(as an operator would add one) wins over the formula's own file."""
from scripts.saltlocal import REPO, SaltLocal
from test.support.render import DEBIAN12_SYSTEMD, PILLAR, args

FILE_STATES = {
    "mosquitto-configure-acl-file-managed": "acl.jinja",
    "mosquitto-configure-broker-config-file-managed": "mosquitto.conf.jinja",
    "mosquitto-configure-exporter-unit-file-managed": "mosquitto-exporter.service.jinja",
    "mosquitto-build-exporter-program-file-managed": "mosquitto_exporter.py",
}


def show(tmp_path, pillar=PILLAR):
    overrides = tmp_path / "overrides"
    (overrides / "mosquitto/files/Debian").mkdir(parents=True)
    (overrides / "mosquitto/files/Debian/acl.jinja").write_text("# site ACL\n")
    (overrides / "mosquitto/files/tofs-test-minion").mkdir(parents=True)
    (overrides / "mosquitto/files/tofs-test-minion/site.conf.jinja").write_text("# site conf\n")
    salt = SaltLocal(tmp_path / "salt", file_roots=[overrides, REPO]).setup(
        pillar, extra_opts={"grains": DEBIAN12_SYSTEMD, "id": "tofs-test-minion"})
    salt.sync()
    rc, hs, err = salt.call("state.show_sls", "mosquitto")
    assert rc == 0 and isinstance(hs, dict), (hs, err)
    return {sid: args(hs[sid])["source"] for sid in FILE_STATES}


def test_each_file_state_gets_one_source_and_overrides_win(tmp_path):
    pillar = {"mosquitto": dict(PILLAR["mosquitto"], tofs={"source_files": {
        "mosquitto-configure-broker-config-file-managed": ["site.conf.jinja"]}})}
    sources = show(tmp_path, pillar)
    # os_family directory beats files/default/
    assert sources["mosquitto-configure-acl-file-managed"] == "salt://mosquitto/files/Debian/acl.jinja"
    # a pillar-named file in the minion-id directory beats everything
    assert sources["mosquitto-configure-broker-config-file-managed"] == \
        "salt://mosquitto/files/tofs-test-minion/site.conf.jinja"
    # no override: the formula's own file, as a single string
    for sid in ("mosquitto-configure-exporter-unit-file-managed", "mosquitto-build-exporter-program-file-managed"):
        assert sources[sid] == f"salt://mosquitto/files/default/{FILE_STATES[sid]}", sid
