"""Rendered migration states (#21): an adopted CA (made with the openssl
CLI, encrypted key) and the handover appear in order, the passphrase and
the old hashes appear nowhere in what Salt shows, old users get their ACL
lines, and a key of another CA fails the render naming the key. The real
run is test/hosts/test_migration.py."""
import json
import os
import subprocess

from test.support.render import DEBIAN12_SYSTEMD, args, local, render

PASSPHRASE = "render pass " + "x" * 8
PLAYBOOK_CONF = "allow_anonymous false\nlistener 1883 127.0.0.1\nlistener 8883 0.0.0.0\n"


def playbook_files(tmp_path):
    env = {**os.environ, "CAPASS": PASSPHRASE}
    run = dict(cwd=tmp_path, check=True, capture_output=True, env=env)
    subprocess.run(["openssl", "req", "-new", "-x509", "-days", "30", "-extensions", "v3_ca", "-keyout", "ca.key",
                    "-out", "ca.crt", "-passout", "env:CAPASS", "-subj", "/O=Playbook/CN=old-ca"], **run)
    subprocess.run(["openssl", "genrsa", "-out", "other.key", "2048"], **run)
    (tmp_path / "passwd").touch()
    subprocess.run(["mosquitto_passwd", "-b", "passwd", "johnpaulkj", "sensorberg2024"], **run)
    (tmp_path / "mosquitto.conf").write_text(PLAYBOOK_CONF)


def pillar(tmp_path, key="ca.key"):
    return {"mosquitto": {
        "domain": "mosquittodemo.sensorberg.com", "users": {"alice": {"password": "pw"}},
        "keep_existing_users": True,
        # This machine's own CA (the integration host's) stays out of it.
        "tls": {"ca_cert": str(tmp_path / "ca.crt"), "ca_key": str(tmp_path / "formula" / "ca.key"),
                "adopt_ca": {"cert": str(tmp_path / "ca.crt"), "key": str(tmp_path / key),
                             "key_passphrase": PASSPHRASE}},
        "lookup": {"paths": {"passwd": str(tmp_path / "passwd"), "conf": str(tmp_path / "mosquitto.conf")}},
    }}


def test_adoption_and_handover_render_in_order_without_secrets(tmp_path):
    playbook_files(tmp_path)
    _, hs = render(tmp_path, DEBIAN12_SYSTEMD, pillar(tmp_path))
    text = json.dumps(hs)
    assert PASSPHRASE not in text and "sensorberg2024" not in text
    assert (tmp_path / "passwd").read_text().split(":", 1)[1].strip() not in text
    adopted = args(hs["mosquitto-configure-tls-ca-adopted"])
    assert adopted["source_key"] == str(tmp_path / "ca.key") and adopted["name"] == str(tmp_path / "ca.crt")
    assert {"mosquitto_ca": "mosquitto-configure-tls-ca-present"} in adopted["require_in"]
    assert args(hs["mosquitto-configure-tls-ca-present"])["common_name"] == "old-ca"
    handover = args(hs["mosquitto-configure-broker-persistence-handed-over"])
    assert handover["conf"] == str(tmp_path / "mosquitto.conf") and handover["location"] == "/var/lib/mosquitto/"
    assert {"file": "mosquitto-configure-broker-config-file-managed"} in handover["require_in"]
    assert args(hs["mosquitto-configure-users-passwd-managed"])["prune"] is False
    acl = args(hs["mosquitto-configure-acl-file-managed"])["context"]["acl_users"]
    assert acl["johnpaulkj"] == ["readwrite #"] and "alice" in acl


def test_formula_config_already_in_place_renders_no_handover(tmp_path):
    playbook_files(tmp_path)
    (tmp_path / "mosquitto.conf").write_text("persistence true\npersistence_location /var/lib/mosquitto/\n")
    _, hs = render(tmp_path, DEBIAN12_SYSTEMD, pillar(tmp_path))
    assert "mosquitto-configure-broker-persistence-handed-over" not in hs


def test_key_of_another_ca_fails_the_render_naming_the_key(tmp_path):
    playbook_files(tmp_path)
    salt = local(tmp_path, DEBIAN12_SYSTEMD, pillar(tmp_path, key="other.key"))
    rc, out, err = salt.call("state.show_sls", "mosquitto")
    text = json.dumps(out) + err
    assert rc != 0 and "mosquitto:tls:adopt_ca:key: " in text and "does not belong" in text, text[-2000:]
    assert PASSPHRASE not in text
