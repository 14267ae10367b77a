"""mosquitto_ca execution module: real keys and certs, checked by cryptography and openssl."""
import datetime
import grp
import ipaddress
import os
import subprocess
import types

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from salt.exceptions import CommandExecutionError

from test.support.ca import camod as ca

# Loader globals (__salt__ with the map's defaults, __opts__, ...) for every
# test, through monkeypatch (conftest.py).
pytestmark = pytest.mark.usefixtures("ca_loader")


def cert_of(path):
    return x509.load_pem_x509_certificate(open(path, "rb").read())


def key_of(path):
    return serialization.load_pem_private_key(open(path, "rb").read(), None)


def openssl_verify(ca_path, cert_path, purpose="sslserver"):
    proc = subprocess.run(
        ["openssl", "verify", "-purpose", purpose, "-CAfile", str(ca_path), str(cert_path)],
        capture_output=True, text=True, check=False,
    )
    return proc.returncode, proc.stdout + proc.stderr


def mode_owner(path):
    st = os.stat(path)
    return f"{st.st_mode & 0o7777:04o}", st.st_uid, grp.getgrgid(st.st_gid).gr_name


@pytest.fixture
def pki(tmp_path):
    p = types.SimpleNamespace(
        dir=tmp_path,
        ca_crt=str(tmp_path / "ca.crt"),
        ca_key=str(tmp_path / "ca.key"),
        crt=str(tmp_path / "server.crt"),
        key=str(tmp_path / "server.key"),
    )
    ca.create_ca(p.ca_crt, p.ca_key)
    return p


def issue(p, **kwargs):
    args = {"common_name": "localhost", "dns_names": ["localhost"], "ip_addresses": ["127.0.0.1"]}
    args.update(kwargs)
    return ca.issue_cert(p.crt, p.key, ca_cert_path=p.ca_crt, ca_key_path=p.ca_key, **args)


def reissue(p, **kwargs):
    args = {"dns_names": ["localhost"], "ip_addresses": ["127.0.0.1"]}
    args.update(kwargs)
    return ca.needs_reissue(p.crt, p.key, ca_cert_path=p.ca_crt, **args)


def test_virtual_says_why_without_cryptography(monkeypatch):
    assert ca.__virtual__() == "mosquitto_ca"
    monkeypatch.setattr(ca, "HAS_CRYPTOGRAPHY", False)
    ok, why = ca.__virtual__()
    assert ok is False and "cryptography" in why


# --- the CA ------------------------------------------------------------------


def test_create_ca_is_a_proper_ca(pki):
    cert = cert_of(pki.ca_crt)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign and not ku.value.digital_signature
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    cert.verify_directly_issued_by(cert)  # self-signed
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Mosquitto CA"
    # The broker never reads the CA key: root only.
    assert mode_owner(pki.ca_key) == ("0600", 0, "root")
    assert mode_owner(pki.ca_crt)[0] == "0644"
    assert openssl_verify(pki.ca_crt, pki.ca_crt, purpose="any")[0] == 0
    assert not [f for f in os.listdir(pki.dir) if f.startswith(".")]  # no temp files left


def test_create_ca_rsa(tmp_path):
    info = ca.create_ca(str(tmp_path / "c.crt"), str(tmp_path / "c.key"), common_name="Other CA", days_valid=365,
                        key_type="rsa", key_size=3072)
    assert (info["key_type"], info["key_size"], info["subject_cn"], info["is_ca"]) == ("rsa", 3072, "Other CA", True)
    assert 363 <= info["days_remaining"] <= 365


@pytest.mark.parametrize("existing", ["cert", "key", "both"])
def test_create_ca_never_replaces(tmp_path, existing):
    crt, key = tmp_path / "ca.crt", tmp_path / "ca.key"
    if existing in ("cert", "both"):
        crt.write_text("trusted by clients")
    if existing in ("key", "both"):
        key.write_text("the one key")
    before = {p: p.read_text() for p in (crt, key) if p.exists()}
    with pytest.raises(CommandExecutionError, match="never replaced"):
        ca.create_ca(str(crt), str(key))
    assert {p: p.read_text() for p in (crt, key) if p.exists()} == before


def test_create_ca_missing_directory_is_clear(tmp_path):
    with pytest.raises(CommandExecutionError, match="does not exist"):
        ca.create_ca(str(tmp_path / "nope" / "ca.crt"), str(tmp_path / "nope" / "ca.key"))


# --- server certificates -----------------------------------------------------


def test_issue_cert_ec(pki):
    info = issue(pki, common_name="mqtt.example.com", dns_names=["mqtt2.example.com", "localhost"])
    cert, ca_cert = cert_of(pki.crt), cert_of(pki.ca_crt)
    assert openssl_verify(pki.ca_crt, pki.crt) == (0, f"{pki.crt}: OK\n")
    cert.verify_directly_issued_by(ca_cert)

    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mqtt.example.com", "mqtt2.example.com", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_encipherment and not ku.key_cert_sign
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)

    # The broker reads its key after dropping to user mosquitto.
    assert mode_owner(pki.key) == ("0640", 0, "mosquitto")
    assert mode_owner(pki.crt)[0] == "0644"
    assert ca.key_fits(pki.key, cert_path=pki.crt)

    assert info == ca.cert_info(pki.crt)
    assert info["subject_cn"] == "mqtt.example.com" and info["issuer_cn"] == "Mosquitto CA"
    assert info["serial"] == f"{cert.serial_number:X}"
    assert info["fingerprint"] == cert.fingerprint(hashes.SHA256()).hex(":").upper()
    assert (info["key_type"], info["key_size"], info["is_ca"]) == ("ec", 256, False)
    assert info["ip_addresses"] == ["127.0.0.1"]
    assert 823 <= info["days_remaining"] <= 825
    datetime.datetime.fromisoformat(info["not_after"])
    assert ca.verify_chain(pki.crt, pki.ca_crt) is True


def test_issue_cert_rsa(pki):
    info = issue(pki, key_type="rsa", key_size=2048)
    assert (info["key_type"], info["key_size"]) == ("rsa", 2048)
    assert isinstance(key_of(pki.key), rsa.RSAPrivateKey)
    ku = cert_of(pki.crt).extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment
    assert openssl_verify(pki.ca_crt, pki.crt)[0] == 0


def test_issue_cert_keeps_a_fitting_key(pki):
    issue(pki)
    key_bytes = open(pki.key, "rb").read()
    serial = ca.cert_info(pki.crt)["serial"]
    issue(pki, dns_names=["localhost", "mqtt2.example.com"])
    assert open(pki.key, "rb").read() == key_bytes
    assert ca.cert_info(pki.crt)["serial"] != serial
    issue(pki, reuse_key=False)
    assert open(pki.key, "rb").read() != key_bytes
    key_bytes = open(pki.key, "rb").read()
    issue(pki, key_type="rsa")  # a key of the wrong type is replaced
    assert open(pki.key, "rb").read() != key_bytes
    assert ca.key_fits(pki.key, cert_path=pki.crt)


def test_issue_cert_unknown_group_writes_nothing(pki):
    with pytest.raises(CommandExecutionError, match="group 'no-such-group' does not exist"):
        issue(pki, key_group="no-such-group")
    assert not os.path.exists(pki.key) and not os.path.exists(pki.crt)


def test_issue_cert_with_foreign_ca_key_fails(pki, tmp_path):
    ca.create_ca(str(tmp_path / "o.crt"), str(tmp_path / "o.key"))
    with pytest.raises(CommandExecutionError, match="does not belong"):
        ca.issue_cert(pki.crt, pki.key, ca_cert_path=pki.ca_crt, ca_key_path=str(tmp_path / "o.key"),
                      common_name="localhost")
    assert not os.path.exists(pki.crt)


def test_other_ca_does_not_verify(pki, tmp_path):
    issue(pki)
    other = str(tmp_path / "other.crt")
    ca.create_ca(other, str(tmp_path / "other.key"))
    rc, out = openssl_verify(other, pki.crt)
    assert rc != 0 and "unable to get local issuer certificate" in out
    assert ca.verify_chain(pki.crt, other) is False


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"ip_addresses": ["300.1.1.1"]}, "invalid IP address"),
        ({"dns_names": ["bad name.example.com"]}, "invalid DNS name"),
        ({"key_type": "rsa", "key_size": 1024}, "too small"),
        ({"key_type": "rsa", "key_size": 8192}, r"not signed \(allowed: 2048, 3072, 4096\)"),
        ({"key_type": "ec", "key_size": 521}, "P-521"),
        ({"common_name": "a" * 60 + ".example.com"}, r"has 72 characters, a certificate's holds at most 64"),
        ({"key_type": "dsa"}, "key_type must be"),
        ({"dns_names": {"a": 1}}, "must be a list"),
    ],
)
def test_issue_cert_rejects_bad_input(pki, kwargs, match):
    with pytest.raises(CommandExecutionError, match=match):
        issue(pki, **kwargs)
    assert not os.path.exists(pki.key)


def test_the_common_name_is_issued_lower_case_and_stays_converged(pki):
    info = issue(pki, common_name="LocalHost.", dns_names=[])
    assert info["subject_cn"] == "localhost" and info["dns_names"] == ["localhost"]
    assert reissue(pki, common_name="LocalHost", dns_names=[]) == {"reissue": False, "reasons": []}


def test_names_from_the_cli_may_be_comma_separated(pki):
    info = issue(pki, dns_names="localhost, Mqtt2.Example.com", ip_addresses="127.0.0.1,::1")
    assert info["dns_names"] == ["localhost", "mqtt2.example.com"]
    assert info["ip_addresses"] == ["127.0.0.1", "::1"]


# --- needs_reissue: one test per reason -------------------------------------------


def test_no_reissue_when_all_fits(pki):
    issue(pki, dns_names=["localhost", "mqtt2.example.com"])
    # order and case do not matter; the CN is implied
    assert reissue(pki, dns_names=["MQTT2.example.com", "localhost"]) == {"reissue": False, "reasons": []}
    assert reissue(pki, dns_names=["mqtt2.example.com"], common_name="localhost")["reissue"] is False


def test_reissue_missing_files(pki):
    assert reissue(pki) == {"reissue": True, "reasons": ["certificate missing"]}
    issue(pki)
    os.unlink(pki.key)
    assert reissue(pki) == {"reissue": True, "reasons": ["key missing"]}


def test_reissue_key_mismatch(pki):
    issue(pki)
    os.unlink(pki.key)
    ca.ensure_key(pki.key)
    assert reissue(pki)["reasons"] == ["key does not match certificate"]


def test_reissue_sans_changed(pki):
    issue(pki)
    assert reissue(pki, dns_names=["localhost", "mqtt2.example.com"])["reasons"] == [
        "SANs changed (added mqtt2.example.com)"
    ]
    assert reissue(pki, ip_addresses=[])["reasons"] == ["SANs changed (removed 127.0.0.1)"]
    assert reissue(pki, dns_names=["localhost"], ip_addresses=["::1"])["reasons"] == [
        "SANs changed (added ::1; removed 127.0.0.1)"
    ]


def test_reissue_common_name(pki):
    issue(pki)
    assert reissue(pki, common_name="mqtt.example.com")["reasons"] == [
        "SANs changed (added mqtt.example.com)",
        "common name changed (localhost -> mqtt.example.com)",
    ]
    # A cert (made elsewhere) whose CN is not among its SANs.
    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert, ca_key = cert_of(pki.ca_crt), key_of(pki.ca_key)
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "elsewhere.example.com")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=100))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(ca_key, hashes.SHA256())
    )
    open(pki.crt, "wb").write(cert.public_bytes(serialization.Encoding.PEM))
    open(pki.key, "wb").write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
    assert reissue(pki)["reasons"] == ["common name elsewhere.example.com is not among the SANs"]


def test_reissue_key_type_changed(pki):
    issue(pki)
    assert reissue(pki, key_type="rsa")["reasons"] == ["key type changed (ec 256 -> rsa 2048)"]
    assert reissue(pki, key_type="ec", key_size=384)["reasons"] == ["key type changed (ec 256 -> ec 384)"]
    issue(pki, key_type="rsa", key_size=3072)
    assert reissue(pki, key_type="rsa", key_size=2048)["reasons"] == ["key type changed (rsa 3072 -> rsa 2048)"]
    assert reissue(pki, key_type="rsa", key_size=3072)["reissue"] is False


def test_reissue_other_ca(pki, tmp_path):
    issue(pki)
    other = str(tmp_path / "other.crt")
    ca.create_ca(other, str(tmp_path / "other.key"), common_name="Mosquitto CA")  # same name, other key
    assert ca.needs_reissue(pki.crt, pki.key, ca_cert_path=other, dns_names=["localhost"],
                            ip_addresses=["127.0.0.1"])["reasons"] == [
        "issued by a different CA"
    ]


def test_reissue_near_expiry_and_expired(pki, monkeypatch):
    issue(pki, days_valid=100)
    assert reissue(pki, renew_days=30)["reissue"] is False
    assert reissue(pki, renew_days=120)["reasons"] == ["expires in 99 days (renew_days 120)"]
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=101)
    monkeypatch.setattr(ca, "_now", lambda: later)
    (reason,) = reissue(pki)["reasons"]
    assert reason.startswith("expired on ")
    assert ca.verify_chain(pki.crt, pki.ca_crt) is False


def test_reissue_garbage_files(pki):
    issue(pki)
    open(pki.key, "w").write("not a key")
    (reason,) = reissue(pki)["reasons"]
    assert reason.startswith("key unreadable")


# --- CSR signing for the fleet (CA minion): test_ca_policy.py -----------------------


def test_read_ca_cert_only_reads_ca_certs(pki):
    assert ca.read_ca_cert(pki.ca_crt) == open(pki.ca_crt).read()
    issue(pki)
    with pytest.raises(CommandExecutionError, match="not a CA certificate"):
        ca.read_ca_cert(pki.crt)
    # A peer asking for the key gets an error, never the key.
    with pytest.raises(CommandExecutionError) as err:
        ca.read_ca_cert(pki.ca_key)
    assert "PRIVATE" not in str(err.value)


def test_install_cert_checks_before_installing(pki, tmp_path):
    issue(pki)
    pem = open(pki.crt).read()
    target = str(tmp_path / "copy.crt")
    other_key = str(tmp_path / "other.key")
    ca.ensure_key(other_key)
    with pytest.raises(CommandExecutionError, match="does not match key"):
        ca.install_cert(target, pem, key_path=other_key)
    ca.create_ca(str(tmp_path / "o.crt"), str(tmp_path / "o.key"))
    with pytest.raises(CommandExecutionError, match="not signed by CA"):
        ca.install_cert(target, pem, ca_cert_path=str(tmp_path / "o.crt"))
    assert not os.path.exists(target)
    info = ca.install_cert(target, pem, key_path=pki.key, ca_cert_path=pki.ca_crt)
    assert info["fingerprint"] == ca.cert_info(pki.crt)["fingerprint"]
    assert mode_owner(target)[0] == "0644"


def test_ensure_permissions(pki):
    issue(pki)
    os.chmod(pki.key, 0o644)
    os.chown(pki.key, 0, 0)
    owner = {"user": "root", "group": "mosquitto", "mode": "0640"}
    diff = ca.ensure_permissions(pki.key, test=True, **owner)
    assert diff == {"group": ["root", "mosquitto"], "mode": ["0644", "0640"]}
    assert mode_owner(pki.key) == ("0644", 0, "root")
    assert ca.ensure_permissions(pki.key, **owner) == diff
    assert mode_owner(pki.key) == ("0640", 0, "mosquitto")
    assert ca.ensure_permissions(pki.key, **owner) == {}


def test_discard_new_key_removes_only_new_keys(pki):
    new = ca.__utils__["mosquitto_names.new_key_path"](pki.key)
    assert new == pki.key + ".new"
    ca.ensure_key(new)
    assert ca.discard_new_key(new) is True and not os.path.exists(new)
    assert ca.discard_new_key(new) is False
    ca.ensure_key(pki.key)
    with pytest.raises(CommandExecutionError, match="is not a new key"):
        ca.discard_new_key(pki.key)
    assert os.path.exists(pki.key)


def test_cert_info_and_verify_chain_take_a_path_or_pem(pki, tmp_path):
    issue(pki)
    pem, ca_pem = open(pki.crt).read(), open(pki.ca_crt).read()
    assert ca.cert_info(pem=pem) == ca.cert_info(pki.crt)
    with pytest.raises(CommandExecutionError, match="one of them"):
        ca.cert_info(pki.crt, pem=pem)
    assert ca.verify_chain(cert_pem=pem, ca_cert_pem=ca_pem) is True
    assert ca.verify_chain(pki.crt, ca_cert_pem=ca_pem) is True
    ca.create_ca(str(tmp_path / "o.crt"), str(tmp_path / "o.key"))
    assert ca.verify_chain(cert_pem=pem, ca_cert_path=str(tmp_path / "o.crt")) is False


def test_key_fits_type_and_certificate(pki, tmp_path):
    issue(pki)
    assert ca.key_fits(pki.key) and ca.key_fits(pki.key, cert_path=pki.crt)
    assert ca.key_fits(pki.key, key_type="ec") and not ca.key_fits(pki.key, key_type="rsa")
    assert not ca.key_fits(pki.key, cert_path=pki.ca_crt)
    assert not ca.key_fits(str(tmp_path / "missing.key"))
    open(tmp_path / "garbage.key", "w").write("not a key")
    assert not ca.key_fits(str(tmp_path / "garbage.key"))
