"""Bring your own certificate: mosquitto_own_cert.installed through Salt's
real loaders, with a real broker on loopback serving the installed copy.

A foreign CA (made here with cryptography, with an intermediate, as ACME
and corporate PKIs issue) signs the server certificate; a client trusting
only that CA connects by name; a swapped certificate is installed, the
broker reloaded (SIGHUP: what runtime.certificate's watch sends, see
test/render/test_shared_zone_and_own_cert.py) and the new one is served;
a wrong key, a wrong chain and an uncovered name are each refused naming
the pillar key, with nothing changed and the old certificate still served.
"""
import importlib.util
import pathlib
import socket
import ssl
import time

import pytest
from cryptography import x509

from test.support.broker import Broker
from test.support.foreign_pki import issue, key_pem, pem

NAME = "mqtt.byo.test"
EXPORTER = pathlib.Path(__file__).resolve().parents[2] / "mosquitto/files/default/mosquitto_exporter.py"


@pytest.fixture
def site(tmp_path):
    """A foreign PKI's files on the host, and the formula's copies' paths."""
    root = issue("Corp Root CA", ca=True)
    inter = issue("Corp Issuing CA", root, ca=True)
    own, certs = tmp_path / "pki", tmp_path / "certs"
    own.mkdir()
    certs.mkdir()
    s = {"root": root, "inter": inter, "ca_cert": own / "corp-root.pem", "src_cert": own / "mqtt.pem",
         "src_key": own / "mqtt.key", "cert": certs / "server.crt", "key": certs / "server.key"}
    s["ca_cert"].write_bytes(pem(root[0]))
    return s


def place(s, cert, key, *chain):
    s["src_cert"].write_bytes(pem(cert, *chain))
    s["src_key"].write_bytes(key_pem(key))


def installed(states, s, **kwargs):
    args = {"name": str(s["cert"]), "key_path": str(s["key"]), "source_cert": str(s["src_cert"]),
            "source_key": str(s["src_key"]), "ca_cert": str(s["ca_cert"]), "common_name": NAME,
            "dns_names": [NAME], "user": "root", "group": "root"}
    return states.mosquitto_own_cert.installed(**{**args, **kwargs})


def served(port, cafile):
    """The serial of the certificate the broker serves, to a client that
    trusts only ``cafile`` and checks the name NAME; then an MQTT CONNECT
    over that connection, answered by a CONNACK that accepts it."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), 5) as raw, \
            ctx.wrap_socket(raw, server_hostname=NAME) as tls:
        serial = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number
        tls.sendall(b"\x10\x11\x00\x04MQTT\x04\x02\x00\x3c\x00\x05byo-1")
        assert tls.recv(4) == b"\x20\x02\x00\x00"
    return serial


def served_after_reload(broker, cafile, want):
    """SIGHUP, then the serial served once the broker has re-read its files."""
    broker.reload()
    for _ in range(100):
        serial = served(broker.port, cafile)
        if serial == want:
            return serial
        time.sleep(0.1)
    return serial


def snapshot(*paths):
    return {p: p.read_bytes() for p in paths}


def exporter_not_after(path):
    spec = importlib.util.spec_from_file_location("exporter_under_test", EXPORTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cert_not_after(str(path))


def test_a_foreign_certificate_is_checked_installed_served_and_swapped(states, site):
    s = site
    first = issue(NAME, s["inter"], names=[NAME])
    place(s, *first, s["inter"][0])  # leaf + intermediate, as fullchain.pem

    dry = installed(states, s, test=True)
    assert dry.result is None and not s["cert"].exists() and not s["key"].exists()
    ret = installed(states, s)
    assert ret.result is True, ret.comment
    assert ret.changes["new"]["serial"] == format(first[0].serial_number, "X")
    assert ret.changes["key"] == {"old": None, "new": f"from {s['src_key']}"}
    assert oct(s["key"].stat().st_mode & 0o777) == "0o640"
    assert installed(states, s).changes == {}  # settled

    # The installed copies, as mosquitto.conf names tls:cert and tls:key.
    with Broker(extra=f"certfile {s['cert']}\nkeyfile {s['key']}\nallow_anonymous true\n") as broker:
        # The client trusts only the foreign root and checks the name.
        assert served(broker.port, s["ca_cert"]) == first[0].serial_number
        # The expiry metric reads the very file the broker serves.
        assert exporter_not_after(s["cert"]) == first[0].not_valid_after_utc.timestamp()

        # The other PKI renews: a new key and certificate at the same paths.
        second = issue(NAME, s["inter"], names=[NAME, "mqtt2.byo.test"], days=30)
        place(s, *second, s["inter"][0])
        ret = installed(states, s)
        assert ret.result is True and ret.changes["old"]["serial"] == format(first[0].serial_number, "X")
        assert ret.changes["new"]["serial"] == format(second[0].serial_number, "X")
        assert served_after_reload(broker, s["ca_cert"], second[0].serial_number) == second[0].serial_number
        assert exporter_not_after(s["cert"]) == second[0].not_valid_after_utc.timestamp()

        good = snapshot(s["cert"], s["key"])
        other_ca = issue("Some Other CA", ca=True)
        refusals = {
            "key": ("mosquitto:tls:own_key: the key in",
                    lambda: place(s, second[0], issue(NAME, s["inter"], names=[NAME])[1], s["inter"][0])),
            "chain": ("mosquitto:tls:own_cert: " + str(s["src_cert"]) + " is not issued by the CA in "
                      "mosquitto:tls:ca_cert",
                      lambda: place(s, *issue(NAME, other_ca, names=[NAME]))),
            "name": ("mosquitto:tls:own_cert: " + str(s["src_cert"]) + f" does not cover {NAME}",
                     lambda: place(s, *issue("other.byo.test", s["inter"], names=["other.byo.test"]),
                                   s["inter"][0])),
        }
        for what, (message, make) in refusals.items():
            make()
            for test in (True, False):
                ret = installed(states, s, test=test)
                assert ret.result is False, what
                assert message in ret.comment and "nothing changed" in ret.comment, (what, ret.comment)
                assert ret.changes == {}
                assert snapshot(s["cert"], s["key"]) == good, what
            assert served_after_reload(broker, s["ca_cert"], second[0].serial_number) == second[0].serial_number


def test_a_missing_ca_or_key_is_refused_naming_the_key(states, site):
    s = site
    place(s, *issue(NAME, s["inter"], names=[NAME]), s["inter"][0])
    ret = installed(states, s, ca_cert=str(s["ca_cert"]) + ".missing")
    assert ret.result is False and "mosquitto:tls:ca_cert: cannot read CA certificate" in ret.comment
    s["src_key"].unlink()
    ret = installed(states, s)
    assert ret.result is False and ret.comment.startswith(
        "own certificate refused, nothing changed: mosquitto:tls:own_key: cannot read")
    assert not s["cert"].exists() and not s["key"].exists()
    assert states.mosquitto_own_cert.ca_trusted(name=str(s["src_cert"])).comment.endswith(
        "is not a CA certificate")
    assert states.mosquitto_own_cert.ca_trusted(name=str(s["ca_cert"])).result is True
