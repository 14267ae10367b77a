"""Certificates in operation, on this host after `state.apply mosquitto`:
a reissue reloads the broker (TLS clients stay, the next handshake gets the
new certificate), a CA change restarts it, the exporter serves both
certificates' expiry, and the installed renewal job renews a near-expiry
certificate on its own.

Runs after test_apply.py on the same applied host; every test puts the
pillar back.
"""
import datetime
import json
import os
import pathlib
import shlex
import socket
import ssl
import subprocess
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from scripts.saltlocal import changed, failed
from test.support.integration import CA, DOMAIN, base_pillar, broker_pid
from test.support.localhost import wait_for
from test.support.mqtt import Client

pytestmark = pytest.mark.integration

CERT = "/etc/mosquitto/certs/server.crt"
KEY = "/etc/mosquitto/certs/server.key"
CA_KEY = "/etc/mosquitto/ca/ca.key"
CRON = "/etc/cron.d/mosquitto-tls-renew"
NEW_SAN = "reissued.integration.test"


def load(path):
    return x509.load_pem_x509_certificate(pathlib.Path(path).read_bytes())


def sans(cert):
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
        .get_values_for_type(x509.DNSName)


def presented():
    """The certificate a fresh TLS connection to 8883 gets (chain verified)."""
    ctx = ssl.create_default_context(cafile=CA)
    with socket.create_connection(("127.0.0.1", 8883), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname=DOMAIN) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def apply_ok(salt_local, pillar=None, test=False):
    if pillar is not None:
        salt_local.write_pillar(pillar)
    rc, states, err = salt_local.apply(test=test)
    assert rc == 0 and not failed(states), (failed(states), err)
    return changed(states)


@pytest.fixture
def tls_subscriber(applied, passwords):
    """A TLS client (verifying our CA) subscribed to live/#."""
    client = Client(8883, "bob", passwords["bob"], cafile=CA, host="127.0.0.1")
    # Connected by address: the certificate has 127.0.0.1 as an IP SAN.
    assert client.connect()
    client.subscribe("live/#")
    yield client
    client.close()


def still_delivers(client, passwords, payload):
    publisher = Client(1883, "bob", passwords["bob"])
    assert publisher.connect()
    publisher.publish("live/cert", payload)
    publisher.close()
    assert client.get(timeout=10) == ("live/cert", payload, 1)
    assert not client.disconnected.is_set()


def test_san_change_reloads_keeps_tls_clients_and_serves_the_new_name(
        salt_local, applied, passwords, tls_subscriber):
    pid, before = broker_pid(), load(CERT)
    pillar = base_pillar(passwords)
    pillar["mosquitto"]["tls"]["dns_names"].append(NEW_SAN)
    try:
        # test=True: the reissue and the reload are planned, nothing happens.
        planned = apply_ok(salt_local, pillar, test=True)
        assert {"mosquitto-configure-tls-server-cert-managed",
                "mosquitto-runtime-certificate-service-reloaded"} <= set(planned)
        assert load(CERT).serial_number == before.serial_number

        done = apply_ok(salt_local)
        # A reload, not a restart: only the certificate and its reload changed.
        assert set(done) == {"mosquitto-configure-tls-server-cert-managed",
                             "mosquitto-runtime-certificate-service-reloaded"}, done
        after = load(CERT)
        assert NEW_SAN in sans(after) and NEW_SAN not in sans(before)
        assert broker_pid() == pid
        # The next handshake gets the new certificate; the old session stays.
        assert wait_for(lambda: presented().serial_number == after.serial_number)
        assert NEW_SAN in sans(presented())
        still_delivers(tls_subscriber, passwords, b"after reissue")
    finally:
        apply_ok(salt_local, base_pillar(passwords))
    assert NEW_SAN not in sans(presented())
    assert broker_pid() == pid
    still_delivers(tls_subscriber, passwords, b"after the name went away again")


def scrape():
    with urllib.request.urlopen("http://127.0.0.1:9234/metrics", timeout=5) as resp:
        return resp.read().decode()


def expiry_series(role, path):
    return f'mosquitto_certificate_expiry_timestamp_seconds{{path="{path}",role="{role}"}}'


def served_expiry(role, path):
    for line in scrape().splitlines():
        if line.startswith(expiry_series(role, path) + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_exporter_serves_the_certificates_own_not_after(applied):
    # The env file names the certificates; the exporter reads them as its own user.
    env = pathlib.Path("/etc/default/mosquitto-exporter").read_text()
    assert f"SERVER_CERT_FILE='{CERT}'\n" in env and f"CA_CERT_FILE='{CA}'\n" in env
    assert wait_for(lambda: served_expiry("server", CERT), timeout=20)
    assert served_expiry("server", CERT) == load(CERT).not_valid_after_utc.timestamp()
    assert served_expiry("ca", CA) == load(CA).not_valid_after_utc.timestamp()
    assert f'mosquitto_certificate_read_ok{{path="{CERT}",role="server"}} 1.0' in scrape()


def near_expiry_certificate(days):
    """Replace the server certificate with one from our CA (same key, same
    names) that expires in `days` days, written as the formula writes it."""
    current = load(CERT)
    ca_cert = load(CA)
    ca_key = serialization.load_pem_private_key(pathlib.Path(CA_KEY).read_bytes(), None)
    key = serialization.load_pem_private_key(pathlib.Path(KEY).read_bytes(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(current.subject).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days)))
    for ext in current.extensions:
        if not isinstance(ext.value, x509.AuthorityKeyIdentifier):
            builder = builder.add_extension(ext.value, ext.critical)
    builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
    cert = builder.sign(ca_key, hashes.SHA256())
    tmp = pathlib.Path(CERT + ".test-tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    st = os.stat(CERT)
    os.chown(tmp, st.st_uid, st.st_gid)
    os.chmod(tmp, st.st_mode & 0o7777)
    os.replace(tmp, CERT)
    return cert


def cron_job():
    """(minute, hour, user, command) of the one job line in the cron file."""
    lines = [line for line in pathlib.Path(CRON).read_text().splitlines()
             if line and not line.startswith("#") and "=" not in line.split()[0]]
    assert len(lines) == 1, lines
    minute, hour, dom, month, dow, user, command = lines[0].split(None, 6)
    assert (dom, month, dow) == ("*", "*", "*")  # daily
    assert 0 <= int(minute) < 60 and 0 <= int(hour) < 24
    return user, command


def test_renewal_job_renews_a_near_expiry_certificate_with_a_reload(
        salt_local, applied, passwords, tls_subscriber):
    user, command = cron_job()
    assert user == "root"
    assert shlex.split(command)[-2:] == ["state.apply", "mosquitto.runtime.certificate"]
    assert f"--config-dir {salt_local.dir}" in command  # the config this host was applied with
    pid = broker_pid()
    stale = near_expiry_certificate(days=10)  # within tls:renew_days (30)
    subprocess.run(["service", "mosquitto", "reload"], check=True, capture_output=True, timeout=30)
    assert wait_for(lambda: presented().serial_number == stale.serial_number)
    assert wait_for(lambda: served_expiry("server", CERT) == stale.not_valid_after_utc.timestamp())

    # What cron runs: the command with cron's environment (the file's SHELL/PATH).
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
           "SHELL": "/bin/sh", "LOGNAME": "root"}
    run = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr

    renewed = load(CERT)
    assert renewed.serial_number != stale.serial_number
    days_left = (renewed.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)).days
    assert days_left > 800  # tls:days_valid 825
    assert broker_pid() == pid  # reloaded, not restarted
    assert wait_for(lambda: presented().serial_number == renewed.serial_number)
    still_delivers(tls_subscriber, passwords, b"after renewal")
    assert served_expiry("server", CERT) == renewed.not_valid_after_utc.timestamp()
    # Nothing left to do: the job and a full apply change nothing.
    run = subprocess.run(["/bin/sh", "-c", command.replace("--out=quiet", "--out=json")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert changed(json.loads(run.stdout)["local"]) == {}


def test_auto_renew_off_removes_the_job(salt_local, applied, passwords):
    pillar = base_pillar(passwords)
    pillar["mosquitto"]["tls"]["auto_renew"] = False
    try:
        assert set(apply_ok(salt_local, pillar)) == {"mosquitto-runtime-renewal-cron-absent"}
        assert not os.path.exists(CRON)
    finally:
        done = apply_ok(salt_local, base_pillar(passwords))
    assert "mosquitto-runtime-renewal-cron-file-managed" in done
    cron_job()


def test_ca_change_restarts_the_broker(salt_local, applied, passwords):
    """A new CA (here: the old one deleted, as an operator rolling it over
    would) restarts the broker; the new chain verifies."""
    pid, old_ca = broker_pid(), load(CA)
    for path in (CA, CA_KEY):
        os.unlink(path)
    done = apply_ok(salt_local)
    assert {"mosquitto-configure-tls-ca-present", "mosquitto-configure-tls-server-cert-managed",
            "mosquitto-runtime-service-running"} <= set(done), done
    assert wait_for(lambda: broker_pid() != pid)
    new_ca = load(CA)
    assert new_ca.fingerprint(hashes.SHA256()) != old_ca.fingerprint(hashes.SHA256())
    assert wait_for(lambda: _verifies())
    assert presented().issuer == new_ca.subject
    # The exporter follows: the new CA's notAfter, and its session (and $SYS
    # values) back after the restart, as the next tests expect.
    assert wait_for(lambda: served_expiry("ca", CA) == new_ca.not_valid_after_utc.timestamp(), timeout=20)
    assert wait_for(lambda: "\nbroker_uptime " in scrape(), timeout=60)


def _verifies():
    try:
        presented()
        return True
    except (OSError, ssl.SSLError):
        return False
