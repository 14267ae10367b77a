"""Certificates from mosquitto_ca in a real mosquitto TLS listener, checked by real clients.

One throw-away broker carries three TLS listeners (TLS settings are per
listener in mosquitto): an EC cert for localhost + 127.0.0.1, an EC cert for
mqtt.example.com only, and an RSA cert for localhost.
"""
import shutil
import socket
import ssl
import subprocess

import pytest

from test.support.broker import Broker, free_port, wait_port
from test.support.ca import ca_loader
from test.support.ca import camod as ca

# `make test` installs mosquitto-clients; without it these tests fail, they
# are not skipped (a skipped handshake test proves nothing).
assert shutil.which("mosquitto_sub"), "mosquitto-clients not installed: run `make setup-test`"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    ca.create_ca(str(d / "ca.crt"), str(d / "ca.key"))
    ca.create_ca(str(d / "other-ca.crt"), str(d / "other-ca.key"), common_name="Mosquitto CA")
    certs = {
        "local": dict(common_name="localhost", ip_addresses=["127.0.0.1"]),
        "named": dict(common_name="mqtt.example.com"),
        "rsa": dict(common_name="localhost", key_type="rsa", key_size=2048),
    }
    ports, extra = {}, ["allow_anonymous true"]
    for name, kwargs in certs.items():
        with pytest.MonkeyPatch.context() as mp:  # the loader's globals, for these calls only
            ca_loader(mp)
            ca.issue_cert(str(d / f"{name}.crt"), str(d / f"{name}.key"), ca_cert_path=str(d / "ca.crt"),
                          ca_key_path=str(d / "ca.key"), **kwargs)
        ports[name] = free_port()
        extra += [
            f"listener {ports[name]} 127.0.0.1",
            f"cafile {d / 'ca.crt'}",
            f"certfile {d / f'{name}.crt'}",
            f"keyfile {d / f'{name}.key'}",
            "tls_version tlsv1.2",
        ]
    with Broker(extra="\n".join(extra)) as broker:
        for port in ports.values():
            wait_port(port)
        yield d, ports, broker


def handshake(cafile, port, server_hostname):
    """A TLS handshake as any careful client does it: CA + hostname checked."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname=server_hostname) as tls_sock:
            return tls_sock.getpeercert()


def mosquitto_sub(cafile, port, host="localhost"):
    proc = subprocess.run(
        ["mosquitto_sub", "--cafile", str(cafile), "-h", host, "-p", str(port), "-t", "test/#", "-E", "-W", "5"],
        capture_output=True, text=True, timeout=20, check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_python_ssl_right_ca_and_names(tls):
    d, ports, _ = tls
    subject = handshake(d / "ca.crt", ports["local"], "localhost")["subject"]
    assert dict(x[0] for x in subject) == {"commonName": "localhost"}
    handshake(d / "ca.crt", ports["local"], "127.0.0.1")  # IP SAN
    handshake(d / "ca.crt", ports["named"], "mqtt.example.com")
    handshake(d / "ca.crt", ports["rsa"], "localhost")


def test_python_ssl_wrong_name_fails(tls):
    d, ports, _ = tls
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake(d / "ca.crt", ports["local"], "mqtt.example.com")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(d / "ca.crt", ports["named"], "localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(d / "ca.crt", ports["rsa"], "127.0.0.1")  # no IP SAN in that one


def test_python_ssl_wrong_ca_fails(tls):
    d, ports, _ = tls
    for port in ports.values():
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            handshake(d / "other-ca.crt", port, "localhost")


def test_mosquitto_sub_right_ca_and_name(tls):
    d, ports, _ = tls
    assert mosquitto_sub(d / "ca.crt", ports["local"]) == (0, "")
    assert mosquitto_sub(d / "ca.crt", ports["local"], host="127.0.0.1") == (0, "")  # IP SAN
    assert mosquitto_sub(d / "ca.crt", ports["rsa"]) == (0, "")


def test_mosquitto_sub_wrong_ca_fails(tls):
    d, ports, _ = tls
    rc, out = mosquitto_sub(d / "other-ca.crt", ports["local"])
    assert rc != 0 and "TLS error" in out, out


def test_mosquitto_sub_wrong_name_fails(tls):
    d, ports, _ = tls
    rc, out = mosquitto_sub(d / "ca.crt", ports["named"])  # cert is for mqtt.example.com, we dial localhost
    assert rc != 0 and "TLS error" in out, out
    rc, out = mosquitto_sub(d / "ca.crt", ports["rsa"], host="127.0.0.1")  # no IP SAN in that one
    assert rc != 0 and "TLS error" in out, out
