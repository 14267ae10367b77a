"""The broker's log is rotated on both families: Debian by the file its
mosquitto package ships (the formula installs logrotate, which a minimal
host lacks), Rocky/EPEL by the formula's own file (EPEL ships none). The
rotation itself runs for real in test/functional/test_log_rotation.py."""
import subprocess

from test.support.render import DEBIAN12_SYSTEMD, PILLAR, ROCKY9, args, local, render

LOG = "/var/log/mosquitto/mosquitto.log"


def test_rocky9_gets_the_formulas_logrotate_file(tmp_path):
    _, hs = render(tmp_path, ROCKY9)
    assert args(hs["mosquitto-configure-logrotate-pkg-installed"])["name"] == "logrotate"
    rotate = args(hs["mosquitto-configure-logrotate-file-managed"])
    assert rotate["name"] == "/etc/logrotate.d/mosquitto"
    assert rotate["source"] == "salt://mosquitto/files/default/logrotate.jinja"
    assert rotate["context"] == {"log_file": LOG, "user": "mosquitto", "group": "mosquitto"}
    assert (rotate["user"], rotate["group"], rotate["mode"]) == ("root", "root", "0644")


def test_debian12_installs_logrotate_and_keeps_the_packages_file(tmp_path):
    _, hs = render(tmp_path, DEBIAN12_SYSTEMD)
    assert args(hs["mosquitto-configure-logrotate-pkg-installed"])["name"] == "logrotate"
    assert "mosquitto-configure-logrotate-file-managed" not in hs


def test_debians_own_file_rotates_the_formulas_log_path():
    # The file this machine's mosquitto .deb installed, read by logrotate
    # itself (-d: a dry run that changes nothing, state file included).
    out = subprocess.run(["logrotate", "-d", "/etc/logrotate.d/mosquitto"], capture_output=True,
                         text=True, check=False)
    text = out.stdout + out.stderr
    assert f"considering log {LOG}" in text, text
    assert "postrotate" in open("/etc/logrotate.d/mosquitto").read()  # the broker reopens on reload


def test_a_log_path_logrotate_would_split_fails_naming_the_key(tmp_path):
    pillar = {"mosquitto": dict(PILLAR["mosquitto"], lookup={"paths": {"log_file": "/var/log/a b.log"}})}
    salt = local(tmp_path, ROCKY9, pillar)
    # This SLS alone: the unit's drop-in would refuse the path as well.
    rc, out, err = salt.call("state.show_sls", "mosquitto.configure.logrotate")
    assert rc != 0 and "mosquitto:lookup:paths:log_file" in str(out) + err, (out, err)
