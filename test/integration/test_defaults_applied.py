"""pillar.example's keys left at their documented defaults by the base
pillar: each default, read from mosquitto/parameters/defaults.yaml, has its
effect on the applied host (config lines, certificates, users, sockets)."""
import datetime
import pathlib
import pwd
import subprocess

import pytest
import yaml
from cryptography import x509

from test.support.integration import CA

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((ROOT / "mosquitto/parameters/defaults.yaml").read_text())["values"]


def conf_lines():
    return pathlib.Path("/etc/mosquitto/mosquitto.conf").read_text().splitlines()


def test_queue_persistence_and_keepalive_defaults_reach_the_config(applied):
    lines = conf_lines()
    q, p = DEFAULTS["queue"], DEFAULTS["persistence"]
    for line in (f"max_queued_messages {q['max_queued_messages']}",
                 f"persistent_client_expiration {q['persistent_client_expiration']}",
                 "persistence true", f"persistence_location {p['location']}",
                 f"autosave_interval {p['autosave_interval']}",
                 f"max_keepalive {DEFAULTS['max_keepalive']}",
                 f"tls_version {DEFAULTS['listeners']['mqtts']['tls_version']}"):
        assert line in lines, line
    # The broker writes its store where persistence:location says.
    assert pathlib.Path(p["location"], "mosquitto.db").exists() or _saves_on_restart(p["location"])


def _saves_on_restart(location):
    subprocess.run(["service", "mosquitto", "restart"], check=True, capture_output=True, timeout=60)
    return pathlib.Path(location, "mosquitto.db").exists()


def test_certificates_follow_the_tls_defaults(applied):
    tls = DEFAULTS["tls"]
    ca = x509.load_pem_x509_certificate(pathlib.Path(tls["ca_cert"]).read_bytes())
    server = x509.load_pem_x509_certificate(pathlib.Path(tls["cert"]).read_bytes())
    assert ca.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == tls["ca_common_name"]
    assert tls["ca_cert"] == CA and pathlib.Path(tls["ca_key"]).exists() and pathlib.Path(tls["key"]).exists()

    def days(cert):
        return (cert.not_valid_after_utc - cert.not_valid_before_utc) / datetime.timedelta(days=1)
    assert round(days(ca)) == tls["ca_days_valid"]
    assert round(days(server)) == tls["days_valid"]
    # renew_days: the certificate is far from renewal, so it was kept (not
    # reissued) by the second run; test_apply checks zero changes.
    assert days(server) > tls["renew_days"]


def test_tls_listener_default_is_every_address(applied):
    assert DEFAULTS["listeners"]["mqtts"]["bind_address"] == ""
    port = DEFAULTS["ports"]["mqtts"]
    assert f"listener {port}" in conf_lines()
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
    assert f"0.0.0.0:{port}" in listening and f"[::]:{port}" in listening, listening


def test_exporter_defaults_user_and_bind(applied):
    ex = DEFAULTS["exporter"]
    assert ex["enabled"] is True
    assert subprocess.run(["service", "mosquitto-exporter", "status"], capture_output=True).returncode == 0
    pwd.getpwnam(ex["user"])
    assert f"{ex['user']}:$7$" in pathlib.Path("/etc/mosquitto/passwd").read_text()
    env = pathlib.Path("/etc/default/mosquitto-exporter").read_text()
    assert f"BIND_ADDRESS='{ex['bind_address']}:{DEFAULTS['ports']['exporter']}'" in env
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{DEFAULTS['ports']['exporter']}"],
                               capture_output=True, text=True).stdout
    assert f"{ex['bind_address']}:{DEFAULTS['ports']['exporter']}" in listening
