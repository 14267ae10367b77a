"""TLS to the broker: verified against our CA with --cafile, Go-style without."""
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from test.exporter.helpers import ANON, SYS_FAST, broker_series
from test.support.broker import Broker, free_port, wait_port


def write_key(key, path):
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


def issue(path, name, issuer_key=None, issuer_name=None, *, ca=False, sans=(), usage=None):
    """Write <path>.key and <path>.pem; self-signed when no issuer is given."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(subject)
               .issuer_name(issuer_name or subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    write_key(key, path.with_suffix(".key"))
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, subject


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Our CA with a server cert for 'localhost' only, a client cert, and a stranger CA."""
    d = tmp_path_factory.mktemp("pki")
    ca_key, ca_name = issue(d / "ca", "test CA", ca=True)
    issue(d / "server", "localhost", ca_key, ca_name, sans=["localhost"],
          usage=ExtendedKeyUsageOID.SERVER_AUTH)
    issue(d / "client", "mosquitto-exporter", ca_key, ca_name,
          usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    issue(d / "other-ca", "some other CA", ca=True)
    return d


@pytest.fixture
def tls_broker(pki):
    """A broker with a TLS listener; yields (broker, tls_port)."""
    def start(extra_tls=""):
        tls_port = free_port()
        broker = Broker(extra=ANON + SYS_FAST + (
            f"listener {tls_port} 127.0.0.1\n"
            f"cafile {pki / 'ca.pem'}\ncertfile {pki / 'server.pem'}\nkeyfile {pki / 'server.key'}\n"
            + extra_tls)).start()
        started.append(broker)
        wait_port(tls_port)
        return tls_port

    started = []
    yield start
    for broker in started:
        broker.stop()


def test_verified_against_our_ca(exporter_factory, tls_broker, pki):
    port = tls_broker()
    exporter = exporter_factory("--endpoint", f"ssl://localhost:{port}",
                                "--cafile", str(pki / "ca.pem"))
    exporter.wait_connected()
    assert "NOT verified" not in exporter.log()


def wait_verify_failure(exporter):
    """Values scraped once the exporter has logged a failed TLS verification."""
    _, values = exporter.wait_for(lambda t, v: "certificate verify failed" in exporter.log(),
                                  "the verification error in the log")
    return values


def test_unknown_ca_is_refused(exporter_factory, tls_broker, pki):
    port = tls_broker()
    exporter = exporter_factory("--endpoint", f"tls://localhost:{port}",
                                "--cafile", str(pki / "other-ca.pem"))
    values = wait_verify_failure(exporter)
    assert values["mosquitto_exporter_connected"] == 0
    assert broker_series(values) == []


def test_name_is_checked_too(exporter_factory, tls_broker, pki):
    port = tls_broker()
    # Right CA, but the certificate names only "localhost".
    exporter = exporter_factory("--endpoint", f"ssl://127.0.0.1:{port}",
                                "--cafile", str(pki / "ca.pem"))
    values = wait_verify_failure(exporter)
    assert "127.0.0.1" in exporter.log().split("certificate verify failed")[1].splitlines()[0]
    assert values["mosquitto_exporter_connected"] == 0


def test_without_cafile_encrypts_but_trusts_anyone_like_go(exporter_factory, tls_broker):
    port = tls_broker()
    exporter = exporter_factory("--endpoint", f"ssl://127.0.0.1:{port}")
    exporter.wait_connected()
    assert "NOT verified" in exporter.log()


def test_client_certificate(exporter_factory, tls_broker, pki):
    port = tls_broker("require_certificate true\n")
    exporter = exporter_factory("--endpoint", f"ssl://localhost:{port}",
                                "--cafile", str(pki / "ca.pem"),
                                "--cert", str(pki / "client.pem"), "--key", str(pki / "client.key"))
    exporter.wait_connected()
