"""Certificate expiry: the exporter serves the notAfter of the broker's
server and CA certificates, read from the files at every scrape, on both
Debian's and PyPI's libraries (the `python` fixture)."""
import datetime
import os

from cryptography.hazmat.primitives.asymmetric import rsa

from test.exporter.helpers import write_cert

EXPIRY = "mosquitto_certificate_expiry_timestamp_seconds"
READ_OK = "mosquitto_certificate_read_ok"


def series(role, path):
    return f'{{path="{path}",role="{role}"}}'


def at(*fields):
    return datetime.datetime(*fields, tzinfo=datetime.timezone.utc)


def test_expiry_of_server_and_ca_matches_their_not_after(exporter_factory, tmp_path):
    # UTCTime before 2050, GeneralizedTime from 2050 on (RFC 5280), RSA too.
    server, ca = tmp_path / "server.crt", tmp_path / "ca.crt"
    server_cert = write_cert(server, at(2031, 7, 4, 12, 30, 59))
    ca_cert = write_cert(ca, at(2061, 2, 3, 4, 5, 6),
                         key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    exporter = exporter_factory("--endpoint", "tcp://127.0.0.1:9", "--server-cert", str(server),
                                "--ca-cert", str(ca))
    types, values = exporter.metrics()
    assert types[EXPIRY] == "gauge"
    assert values[EXPIRY + series("server", server)] == server_cert.not_valid_after_utc.timestamp()
    assert values[EXPIRY + series("ca", ca)] == ca_cert.not_valid_after_utc.timestamp()
    assert ca_cert.not_valid_after_utc == at(2061, 2, 3, 4, 5, 6)
    assert values[READ_OK + series("server", server)] == 1
    assert values[READ_OK + series("ca", ca)] == 1


def test_a_renewed_certificate_shows_at_the_next_scrape(exporter_factory, tmp_path):
    server = tmp_path / "server.crt"
    write_cert(server, at(2027, 1, 1))
    # The formula's env file passes the paths; the flags default to them.
    exporter = exporter_factory("--endpoint", "tcp://127.0.0.1:9",
                                env={"SERVER_CERT_FILE": str(server)})
    assert exporter.metrics()[1][EXPIRY + series("server", server)] == at(2027, 1, 1).timestamp()
    renewed = tmp_path / "renewed.crt"
    write_cert(renewed, at(2029, 3, 1))
    os.replace(renewed, server)  # the way mosquitto_ca writes it: atomically
    assert exporter.metrics()[1][EXPIRY + series("server", server)] == at(2029, 3, 1).timestamp()


def test_unreadable_certificate_serves_read_ok_0_and_no_expiry(exporter_factory, tmp_path):
    missing, garbage = tmp_path / "missing.crt", tmp_path / "garbage.crt"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    exporter = exporter_factory("--endpoint", "tcp://127.0.0.1:9", "--server-cert", str(missing),
                                "--ca-cert", str(garbage))
    _, values = exporter.metrics()
    assert values[READ_OK + series("server", missing)] == 0
    assert values[READ_OK + series("ca", garbage)] == 0
    assert not [s for s in values if s.startswith(EXPIRY)]
    assert "cannot read the server certificate" in exporter.log()
    # The exporter keeps serving: the next scrape works the same.
    assert exporter.metrics()[1][READ_OK + series("server", missing)] == 0


def test_no_certificate_flags_serve_no_certificate_series(exporter_factory):
    _, values = exporter_factory("--endpoint", "tcp://127.0.0.1:9").metrics()
    assert not [s for s in values if s.startswith("mosquitto_certificate_")]
