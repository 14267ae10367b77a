"""Render firewall:mode shared and tls:own_cert: which states they make and
how the requisites tie a changed own certificate to the broker's reload.
The states themselves run in test/unit, test/functional and test/hosts."""

from test.support.render import DEBIAN12_SYSTEMD, PILLAR, args, local, render

OWN = {"own_cert": "/etc/pki/issued/mqtt.pem", "own_key": "/etc/pki/issued/mqtt.key",
       "ca_cert": "/etc/pki/corp-root.pem"}


def test_shared_mode_reaches_both_firewall_states_and_clean(tmp_path):
    pillar = {"mosquitto": dict(PILLAR["mosquitto"], firewall={"enabled": True, "mode": "shared"})}
    _, hs = render(tmp_path, DEBIAN12_SYSTEMD, pillar)
    zone = args(hs["mosquitto-configure-firewall-zone-present"])
    assert zone["mode"] == "shared" and zone["record"] == "/var/lib/mosquitto-formula/firewall.json"
    assert args(hs["mosquitto-runtime-firewall-reloaded"])["mode"] == "shared"


def test_own_cert_is_checked_and_copied_and_its_change_reloads_the_broker(tmp_path):
    pillar = {"mosquitto": dict(PILLAR["mosquitto"], tls=OWN)}
    _, hs = render(tmp_path, DEBIAN12_SYSTEMD, pillar)
    installed = args(hs["mosquitto-configure-tls-server-cert-managed"])
    assert installed["_function"] == "mosquitto_own_cert.installed"
    assert (installed["source_cert"], installed["source_key"]) == (OWN["own_cert"], OWN["own_key"])
    assert (installed["name"], installed["key_path"]) == ("/etc/mosquitto/certs/server.crt",
                                                          "/etc/mosquitto/certs/server.key")
    assert installed["common_name"] == "mqtt.example.com" and installed["ca_cert"] == OWN["ca_cert"]
    assert args(hs["mosquitto-configure-tls-ca-present"])["_function"] == "mosquitto_own_cert.ca_trusted"
    # No CA made, no CA directory, nothing issued; the CA's directory is not the formula's.
    assert "mosquitto-configure-tls-ca-dir-managed" not in hs
    assert "/etc/pki" not in args(hs["mosquitto-configure-tls-certs-dir-managed"])["names"]
    reload_ = args(hs["mosquitto-runtime-certificate-service-reloaded"])
    assert {"mosquitto_own_cert": "mosquitto-configure-tls-server-cert-managed"} in reload_["watch"]
    restart = args(hs["mosquitto-runtime-service-running"])
    assert {"mosquitto_own_cert": "mosquitto-configure-tls-ca-present"} in restart["watch"]
    # The exporter's expiry metric reads the copy the broker serves.
    env = args(hs["mosquitto-configure-exporter-env-file-managed"])
    assert "/etc/mosquitto/certs/server.crt" in str(env)


def test_bad_own_cert_pillar_is_refused_naming_the_key(tmp_path):
    for tls, message in (
            ({"own_cert": "/etc/pki/mqtt.pem"},
             "mosquitto:tls:own_key: is needed with tls:own_cert and tls:own_key both set"),
            (dict(OWN, ca_server="ca1"), "mosquitto:tls:own_cert: and tls:ca_server exclude each other"),
            (dict(OWN, own_key="mqtt.key"), "mosquitto:tls:own_key: must be an absolute path"),
            (dict(OWN, adopt_ca={"cert": "/etc/mosquitto/certs/ca.crt", "key": "/etc/mosquitto/certs/ca.key"}),
             "mosquitto:tls:adopt_ca:cert: cannot be used with tls:own_cert"),
            ({"mode": "both"}, None)):
        key = "firewall" if message is None else "tls"
        pillar = {"mosquitto": dict(PILLAR["mosquitto"], **{key: tls})}
        salt = local(tmp_path / str(len(message or "")), DEBIAN12_SYSTEMD, pillar)
        rc, out, _ = salt.call("state.show_sls", "mosquitto")
        assert rc != 0
        assert (message or "mosquitto:firewall:mode: must be one of") in str(out)
