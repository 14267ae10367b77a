"""The CA minion signs only what its policy allows (mosquitto_ca.sign_csr).

Requests reach sign_csr the way Salt delivers a peer publish: the caller's
argument list goes through the minion's own ``load_args_and_kwargs`` with the
publish data, whose ``id`` (the master sets it from the caller's
authenticated minion id) becomes ``__pub_id``. Keys, CSRs and certificates
are real; the record is read back from the file the CA minion writes. The
answer is data: {"certificate": pem} or {"error": why}.
"""
import copy
import json
import logging
import os
import subprocess

import pytest
import salt.minion
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from salt.exceptions import SaltInvocationError

from test.support.ca import ca_loader
from test.support.ca import camod as ca


@pytest.fixture
def ca_host(tmp_path, monkeypatch):
    """A CA minion 'ca1': its CA under tmp_path, its pillar on the master in
    .pillar (edit it). The minion's in-memory pillar is a copy taken now:
    what the CA signs by must come from the master's, compiled anew."""
    cert, key = str(tmp_path / "ca.crt"), str(tmp_path / "ca.key")
    pillar = {"mosquitto": {"tls": {"ca_cert": cert, "ca_key": key}}}
    loader = ca_loader(monkeypatch, pillar=copy.deepcopy(pillar), fresh_pillar=pillar)
    ca.create_ca(cert, key)

    class Host:
        pass

    h = Host()
    h.dir, h.ca_crt, h.ca_key, h.pillar = tmp_path, cert, key, pillar
    h.tls = pillar["mosquitto"]["tls"]
    h.record = tmp_path / "issued.json"
    h.context = loader.context
    return h


def csr_for(tmp_path, name="x", key_type="ec"):
    key_path = str(tmp_path / f"{name}.key")
    ca.ensure_key(key_path, key_type=key_type, user=os.geteuid(), group=os.getegid())
    return ca.create_csr(key_path, "ignored.example.com"), key_path


def peer_call(fun, requester, *args, **kwargs):
    """Call fun as Salt does for a peer publish from minion ``requester``."""
    func = getattr(ca, fun.split(".")[1])
    arg = list(args) + ([{"__kwarg__": True, **kwargs}] if kwargs else [])
    data = {"fun": fun, "arg": arg, "tgt": "ca1", "jid": "20260101000000000000", "ret": "",
            "id": requester, "user": "root", "tgt_type": "glob"}
    a, kw = salt.minion.load_args_and_kwargs(func, arg, data)
    return func(*a, **kw)


def sign(tmp_path, requester, **kwargs):
    csr, _ = csr_for(tmp_path)
    answer = peer_call("mosquitto_ca.sign_csr", requester, csr_pem=csr, **kwargs)
    assert set(answer) == {"certificate"}, answer
    return x509.load_pem_x509_certificate(answer["certificate"].encode())


def refusal(answer, context):
    """The reason of a refused request: {"error": why} and a failed job, nothing else."""
    assert set(answer) == {"error"} and isinstance(answer["error"], str), answer
    assert context.pop("retcode") == 1
    return answer["error"]


def refused(tmp_path, requester, **kwargs):
    csr, _ = csr_for(tmp_path)
    return refusal(peer_call("mosquitto_ca.sign_csr", requester, csr_pem=csr, **kwargs), ca.__context__)


def sans(cert):
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName), [str(i) for i in san.get_values_for_type(x509.IPAddress)]


def records(h):
    return json.loads(h.record.read_text()) if h.record.exists() else []


# --- the default policy: the requester's own id (and <id>.<fleet domain>) ----------


@pytest.mark.parametrize("name", ["h1", "H1", "h1."])
def test_default_allows_the_id_itself(ca_host, tmp_path, name):
    cert = sign(tmp_path, "h1", dns_names=[name])
    assert sans(cert) == (["h1"], [])


# The policy's text changed by design (#20): the default is no longer
# "h1, h1.*" (any suffix) but the id itself, plus <id>.<fleet domain>.
@pytest.mark.parametrize("name", ["h10.example.com", "h1x", "xh1", "a.h1", "h1-b.example.com", "h2.example.com",
                                  "h1.example.com", "h1.evil.org", "h1.a.b.example.com"])
def test_default_refuses_other_names_with_a_clear_reason(ca_host, tmp_path, name):
    msg = refused(tmp_path, "h1", dns_names=[name])
    assert f"minion h1 may not have a certificate with DNS name {name}" in msg
    assert "policy for minion h1 (default): DNS names h1; IP addresses in none; at most 825 days" in msg
    assert "mosquitto:tls:signing_policies" in msg and "Nothing was signed" in msg
    assert "mosquitto:tls:fleet_domains gives every minion <id>.<domain> (now none set)" in msg
    assert records(ca_host) == []


@pytest.mark.parametrize("name", ["h1.example.com", "H1.Example.COM", "h1.lan"])
def test_fleet_domains_allow_the_id_under_each_of_them(ca_host, tmp_path, name):
    ca_host.tls["fleet_domains"] = ["Example.com", "lan"]
    assert sans(sign(tmp_path, "h1", dns_names=[name])) == ([name.lower()], [])


@pytest.mark.parametrize("name", ["h1.evil.org", "h1.example.com.evil.org", "h1.a.example.com", "h10.example.com",
                                  "x.h1.example.com", "example.com", "*.h1.example.com", "*.example.com"])
def test_fleet_domains_are_never_a_suffix(ca_host, tmp_path, name):
    """<id>.<fleet domain> exactly: not <id>.<anything>, not a deeper name,
    not a wildcard (the foreign-domain and short-id findings of #20)."""
    ca_host.tls["fleet_domains"] = ["example.com"]
    msg = refused(tmp_path, "h1", dns_names=[name])
    assert f"DNS name {name}" in msg
    assert "policy for minion h1 (default): DNS names h1, h1.example.com;" in msg
    assert "(now example.com)" in msg
    assert records(ca_host) == []


def test_a_short_minion_id_gets_no_shared_names(ca_host, tmp_path):
    """Minion 'mqtt' once had every mqtt.<anything>: the fleet's shared name too."""
    ca_host.tls["fleet_domains"] = ["example.com"]
    for name in ("mqtt.example.org", "mqtt.prod.example.com"):
        assert f"DNS name {name}" in refused(tmp_path, "mqtt", dns_names=[name])
    assert sans(sign(tmp_path, "mqtt", dns_names=["mqtt.example.com"]))[0] == ["mqtt.example.com"]


def test_the_requester_id_is_compared_without_case(ca_host, tmp_path):
    assert sans(sign(tmp_path, "MQTT2.Example.com", dns_names=["mqtt2.example.com"]))[0] == ["mqtt2.example.com"]
    assert records(ca_host)[0]["requester"] == "mqtt2.example.com"


def test_default_refuses_ip_addresses_and_names_every_refused_one(ca_host, tmp_path):
    msg = refused(tmp_path, "h1", dns_names=["h1", "h2"], ip_addresses=["192.0.2.1"], common_name="h1")
    assert "DNS name h2, IP address 192.0.2.1:" in msg
    # An IP address as the common name is an IP SAN too.
    assert "IP address 192.0.2.9" in refused(tmp_path, "h1", common_name="192.0.2.9")


def test_validity_at_most_the_cas_days_valid(ca_host, tmp_path):
    assert "validity 826 days" in refused(tmp_path, "h1", dns_names=["h1"], days_valid=826)
    cert = sign(tmp_path, "h1", dns_names=["h1"], days_valid=825)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 825
    ca_host.tls["days_valid"] = 90  # the CA's own tls:days_valid sets the default and the limit
    assert "at most 90 days" in refused(tmp_path, "h1", dns_names=["h1"], days_valid=91)
    cert = sign(tmp_path, "h1", dns_names=["h1"])
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 90


# --- signing_policies widen it per minion glob ---------------------------------------


def test_policy_dns_globs_for_matching_minions_only(ca_host, tmp_path):
    ca_host.tls["signing_policies"] = [{"minions": "edge-*", "dns_names": ["*.edge.example.com", "mqtt.example.com"]}]
    assert sans(sign(tmp_path, "edge-3", dns_names=["a.edge.example.com", "mqtt.example.com"]))[0] == [
        "a.edge.example.com", "mqtt.example.com"]
    assert sans(sign(tmp_path, "EDGE-4", dns_names=["B.Edge.Example.Com"]))[0] == ["b.edge.example.com"]
    # The pattern is the whole name: nothing may follow it.
    assert "DNS name a.edge.example.com.evil.net" in refused(tmp_path, "edge-3",
                                                             dns_names=["a.edge.example.com.evil.net"])
    assert "DNS name edge.example.com" in refused(tmp_path, "edge-3", dns_names=["edge.example.com"])
    # Another minion does not get what edge-* may have.
    msg = refused(tmp_path, "core1", dns_names=["a.edge.example.com"])
    assert "policy for minion core1 (default)" in msg
    # The policy's text changed by design (#20): no "edge-3.*" any more.
    msg = refused(tmp_path, "edge-3", dns_names=["core1"])
    assert ("policy for minion edge-3 (default + signing_policies[0] (minions 'edge-*')): DNS names edge-3, "
            "*.edge.example.com, mqtt.example.com;") in msg


@pytest.mark.parametrize("name", ["a.b.edge.example.com", "x.y.z.edge.example.com"])
def test_a_glob_star_is_one_label_never_a_dot(ca_host, tmp_path, name):
    ca_host.tls["signing_policies"] = [{"minions": "edge-*", "dns_names": ["*.edge.example.com"]}]
    assert f"DNS name {name}" in refused(tmp_path, "edge-3", dns_names=[name])


def test_globs_within_a_label(ca_host, tmp_path):
    ca_host.tls["signing_policies"] = [
        {"minions": "edge-*", "dns_names": ["mqtt-*.example.com", "node?.[ab]-site.example.com"]}]
    assert sans(sign(tmp_path, "edge-1", dns_names=["mqtt-7.example.com", "node1.b-site.example.com"]))[0] == [
        "mqtt-7.example.com", "node1.b-site.example.com"]
    for name in ("mqtt-7.x.example.com", "node12.a-site.example.com", "node1.c-site.example.com",
                 "x.mqtt-1.example.com"):
        assert f"DNS name {name}" in refused(tmp_path, "edge-1", dns_names=[name])


def test_a_glob_never_yields_a_wildcard_certificate(ca_host, tmp_path):
    """'*' once matched a literal '*' too: a glob policy signed *.edge.example.com."""
    ca_host.tls["signing_policies"] = [{"minions": "edge-*", "dns_names": ["*.edge.example.com", "mqtt-*.example.com"]}]
    for name in ("*.edge.example.com", "*.example.com"):
        msg = refused(tmp_path, "edge-3", dns_names=[name])
        assert f"may not have a certificate with DNS name {name}:" in msg
        assert "only when a matching policy lists it exactly under wildcard_dns_names" in msg
    assert records(ca_host) == []


def test_a_wildcard_name_only_where_a_policy_lists_it(ca_host, tmp_path):
    ca_host.tls["signing_policies"] = [{"minions": "edge-*", "wildcard_dns_names": ["*.Edge.example.com"]}]
    cert = sign(tmp_path, "edge-3", dns_names=["*.edge.example.com"])
    assert sans(cert) == (["*.edge.example.com"], [])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "*.edge.example.com"
    # Exactly that name: neither a deeper wildcard nor another minion.
    assert "DNS name *.a.edge.example.com" in refused(tmp_path, "edge-3", dns_names=["*.a.edge.example.com"])
    assert "DNS name *.edge.example.com" in refused(tmp_path, "core1", dns_names=["*.edge.example.com"])
    msg = refused(tmp_path, "edge-3", dns_names=["x.edge.example.com"])
    assert "wildcard names *.edge.example.com;" in msg


def test_minion_globs_are_salt_globs(ca_host, tmp_path):
    """`minions` keeps fnmatch (Salt's glob targeting): '*' spans dots there."""
    ca_host.tls["signing_policies"] = [{"minions": "b1.*", "dns_names": ["mqtt.example.com"]}]
    assert sign(tmp_path, "b1.pol.test", dns_names=["mqtt.example.com"])
    assert "DNS name mqtt.example.com" in refused(tmp_path, "b10.pol.test", dns_names=["mqtt.example.com"])


def test_policy_ip_networks(ca_host, tmp_path):
    ca_host.tls["signing_policies"] = [
        {"minions": "h1", "ip_networks": ["192.0.2.0/24", "2001:db8::/32"]},
    ]
    cert = sign(tmp_path, "h1", dns_names=["h1"], ip_addresses=["192.0.2.7", "2001:db8::1"])
    assert sans(cert) == (["h1"], ["192.0.2.7", "2001:db8::1"])
    assert "IP address 198.51.100.1" in refused(tmp_path, "h1", dns_names=["h1"], ip_addresses=["198.51.100.1"])
    assert "IP address 192.0.2.7" in refused(tmp_path, "h2", dns_names=["h2"], ip_addresses=["192.0.2.7"])


def test_policy_max_days_the_largest_of_the_matching(ca_host, tmp_path):
    ca_host.tls["signing_policies"] = [
        {"minions": "*", "max_days": 30},
        {"minions": "long-*", "max_days": 3650},
    ]
    assert "validity 31 days" in refused(tmp_path, "h1", dns_names=["h1"], days_valid=31)
    assert sign(tmp_path, "h1", dns_names=["h1"], days_valid=30)
    cert = sign(tmp_path, "long-1", dns_names=["long-1"], days_valid=3650)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 3650


def test_a_policy_change_counts_at_once(ca_host, tmp_path):
    """The CA minion reads its pillar fresh from the master (pillar.items),
    not the copy in its memory (ca_host's __pillar__)."""
    refused(tmp_path, "h1", dns_names=["mqtt.example.com"])
    ca_host.tls["signing_policies"] = [{"minions": "h1", "dns_names": ["mqtt.example.com"]}]
    assert sign(tmp_path, "h1", dns_names=["mqtt.example.com"])


def test_a_bad_policy_on_the_ca_minion_signs_nothing(ca_host, tmp_path):
    ca_host.tls["signing_policies"] = [{"minions": "h1", "dns_names": ["*"]}]
    msg = refused(tmp_path, "h1", dns_names=["h1"])
    assert "mosquitto:tls:signing_policies:0:dns_names:0: '*' matches every name" in msg
    assert records(ca_host) == []


def test_check_request_explains_without_signing(ca_host):
    ca_host.tls["fleet_domains"] = ["example.com"]
    out = ca.check_request("h1", dns_names=["h1.example.com", "h10.example.com"])
    assert out["allowed"] is False and out["problems"] == ["DNS name h10.example.com"]
    assert out["policy"].startswith("policy for minion h1 (default)")
    assert ca.check_request("h1", dns_names=["h1.example.com"])["allowed"] is True
    assert records(ca_host) == [] and not (ca_host.dir / "sign_rate.json").exists()


# --- nothing the caller sends chooses the CA, the key or the extensions --------------


def test_a_caller_sending_ca_paths_gets_nothing_signed(ca_host, tmp_path, caplog):
    # The caller's own CA, on the CA host where it could put files.
    evil = tmp_path / "evil"
    evil.mkdir()
    ca.create_ca(str(evil / "ca.crt"), str(evil / "ca.key"))
    csr, _ = csr_for(tmp_path)
    caplog.set_level(logging.WARNING)
    for extra in ({"ca_cert_path": str(evil / "ca.crt"), "ca_key_path": str(evil / "ca.key")},
                  {"extensions": {"basicConstraints": "CA:TRUE"}},
                  {"is_ca": True}):
        msg = refusal(peer_call("mosquitto_ca.sign_csr", "h1", csr_pem=csr, dns_names=["h1"], **extra), ca_host.context)
        assert f"sign_csr refuses argument(s) {', '.join(sorted(extra))}" in msg and "Nothing was signed" in msg
    assert "refused a request from h1 with argument(s) ca_cert_path, ca_key_path" in caplog.text
    assert records(ca_host) == [] and not (evil / "issued.json").exists()


def test_the_old_positional_call_is_refused(ca_host, tmp_path):
    """sign_csr(csr, ca_cert_path, ca_key_path, names) as the formula used to send it."""
    csr, _ = csr_for(tmp_path)
    with pytest.raises((TypeError, SaltInvocationError)):
        peer_call("mosquitto_ca.sign_csr", "h1", csr, ca_host.ca_crt, ca_host.ca_key, ["h1"])
    assert records(ca_host) == []


def test_a_forged_requester_argument_is_overridden_by_salts(ca_host, tmp_path):
    """__pub_id in the caller's arguments loses to the id in the publish data."""
    msg = refused(tmp_path, "h2", dns_names=["h1"], __pub_id="h1")
    assert "minion h2 may not have a certificate with DNS name h1" in msg
    sign(tmp_path, "h2", dns_names=["h2"], __pub_id="h1")
    assert [r["requester"] for r in records(ca_host)] == ["h2"]


def test_without_a_requester_nothing_is_signed(ca_host, tmp_path):
    csr, _ = csr_for(tmp_path)
    msg = refusal(ca.sign_csr(csr, dns_names=["h1"]), ca_host.context)  # salt-call on the CA host: no __pub_id
    assert "this call has none" in msg
    assert records(ca_host) == []


def test_the_result_is_a_leaf_with_only_the_csrs_public_key(ca_host, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sub CA")]))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("bank.example")]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    pem = peer_call("mosquitto_ca.sign_csr", "h1", csr_pem=csr, dns_names=["h1"])["certificate"]
    cert = x509.load_pem_x509_certificate(pem.encode())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert not ku.key_cert_sign and ku.key_encipherment  # RSA
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert sans(cert) == (["h1"], [])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "h1"
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    (ca_host.dir / "leaf.crt").write_text(pem)
    verify = subprocess.run(["openssl", "verify", "-purpose", "sslserver", "-CAfile", ca_host.ca_crt,
                             str(ca_host.dir / "leaf.crt")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_garbage_and_nameless_requests(ca_host, tmp_path):
    answer = peer_call("mosquitto_ca.sign_csr", "h1", csr_pem="hello", dns_names=["h1"])
    assert "not a PEM certificate signing request" in refusal(answer, ca_host.context)
    assert "at least one DNS name or IP" in refused(tmp_path, "h1")


def test_refusals_are_logged_on_the_ca_minion(ca_host, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    refused(tmp_path, "h1", dns_names=["h10.example.com"])
    assert any(r.levelno == logging.WARNING and "sign_csr refused: minion h1" in r.getMessage()
               and "h10.example.com" in r.getMessage() and "policy for minion h1" in r.getMessage()
               for r in caplog.records)


# --- the record of issued certificates --------------------------------------------------


def test_every_issued_certificate_is_recorded(ca_host, tmp_path):
    ca_host.tls["signing_policies"] = [{"minions": "h2", "ip_networks": ["192.0.2.0/24"]}]
    c1 = sign(tmp_path, "h1", dns_names=["h1"])
    refused(tmp_path, "h1", dns_names=["h2"])
    c2 = sign(tmp_path, "h2", dns_names=["h2"], ip_addresses=["192.0.2.2"], days_valid=10)
    got = ca.issued()
    assert [(r["serial"], r["requester"], r["how"]) for r in got] == [
        (f"{c1.serial_number:X}", "h1", "peer"), (f"{c2.serial_number:X}", "h2", "peer")]
    assert got[1]["dns_names"] == ["h2"] and got[1]["ip_addresses"] == ["192.0.2.2"]
    assert got[1]["not_after"] == c2.not_valid_after_utc.isoformat()
    assert got[1]["fingerprint"] == c2.fingerprint(hashes.SHA256()).hex(":").upper()
    assert got[0]["issued_at"] <= got[1]["issued_at"]
    assert ca.issued(requester="H2") == [got[1]]
    assert os.stat(ca_host.record).st_mode & 0o777 == 0o600
    # Nothing else left in the CA directory (temp files, locks) but the
    # rate limits' counts (sign_rate.json, new with #20), as private as the record.
    assert sorted(os.listdir(ca_host.dir)) == ["ca.crt", "ca.key", "issued.json", "sign_rate.json", "x.key"]
    assert os.stat(ca_host.dir / "sign_rate.json").st_mode & 0o777 == 0o600


def test_locally_issued_certificates_are_recorded_too(ca_host, tmp_path):
    info = ca.issue_cert(str(tmp_path / "server.crt"), str(tmp_path / "server.key"), ca_cert_path=ca_host.ca_crt,
                         ca_key_path=ca_host.ca_key, common_name="mqtt.example.com", key_user=os.geteuid(),
                         key_group=os.getegid())
    assert [(r["serial"], r["requester"], r["how"], r["dns_names"]) for r in ca.issued()] == [
        (info["serial"], "ca1", "local", ["mqtt.example.com"])]


def test_an_unreadable_record_is_never_overwritten(ca_host, tmp_path):
    ca_host.record.write_text("{not json")
    assert "issued.json is unreadable" in refused(tmp_path, "h1", dns_names=["h1"])
    assert ca_host.record.read_text() == "{not json"


# --- dependency floor ----------------------------------------------------------------------


@pytest.mark.parametrize("version,ok", [("41.0.7", False), ("40.0.2", False), ("3.4.8", False),
                                        ("42.0.0", True), ("42.0.8", True), ("44.0.0", True)])
def test_virtual_refuses_cryptography_older_than_42(monkeypatch, version, ok):
    monkeypatch.setattr(ca.cryptography, "__version__", version)
    if ok:
        assert ca.__virtual__() == "mosquitto_ca"
    else:
        loaded, why = ca.__virtual__()
        assert loaded is False
        assert "needs cryptography >= 42.0" in why and version in why


def test_pyproject_states_the_same_floor():
    import pathlib

    import tomllib
    root = pathlib.Path(__file__).resolve().parents[2]
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "cryptography>=42.0" in deps
    assert ca.MIN_CRYPTOGRAPHY == (42, 0)


def test_read_ca_cert_hands_peers_only_this_minions_ca(ca_host, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    ca.create_ca(str(other / "ca.crt"), str(other / "ca.key"))
    own = open(ca_host.ca_crt).read()
    assert peer_call("mosquitto_ca.read_ca_cert", "h1", ca_cert_path=str(other / "ca.crt")) == own
    assert peer_call("mosquitto_ca.read_ca_cert", "h1") == own
    # Locally (the mine's call) the path given counts.
    assert ca.read_ca_cert(str(other / "ca.crt")) == open(other / "ca.crt").read()


# --- the CA's settings come from the merged map -------------------------------------------


def test_lookup_values_reach_the_ca(ca_host, tmp_path):
    """A CA key path set under mosquitto:lookup (or by an os_family file) is
    where the CA minion signs from and records to."""
    moved = tmp_path / "moved"
    moved.mkdir()
    ca.create_ca(str(moved / "ca.crt"), str(moved / "ca.key"))
    for pillar in (ca_host.pillar, ca.__pillar__):
        tls = pillar["mosquitto"]["tls"]
        del tls["ca_cert"], tls["ca_key"]
        pillar["mosquitto"]["lookup"] = {"tls": {"ca_cert": str(moved / "ca.crt"), "ca_key": str(moved / "ca.key")}}
    cert = sign(tmp_path, "h1", dns_names=["h1"])
    assert cert.issuer == x509.load_pem_x509_certificate((moved / "ca.crt").read_bytes()).subject
    assert [r["serial"] for r in ca.issued()] == [f"{cert.serial_number:X}"]
    assert (moved / "issued.json").exists() and records(ca_host) == []
    assert peer_call("mosquitto_ca.read_ca_cert", "h1") == (moved / "ca.crt").read_text()


def test_without_the_map_module_the_ca_says_what_is_missing(ca_host, tmp_path, monkeypatch):
    monkeypatch.delitem(ca.__salt__, "mosquitto_map.data")
    msg = refused(tmp_path, "h1", dns_names=["h1"])
    assert "mosquitto_map.data" in msg and "saltutil.sync_modules" in msg
    assert records(ca_host) == []


def test_the_defaults_are_the_maps(ca_host):
    """With nothing in the pillar, the CA's paths and validity are the map's
    defaults (parameters/defaults.yaml), not constants of its own."""
    for pillar in (ca_host.pillar, ca.__pillar__):
        pillar["mosquitto"] = {}
    for fresh in (False, True):
        got = ca._settings(fresh=fresh)
        assert (got["ca_cert"], got["ca_key"], got["days_valid"], got["policies"]) == (
            "/etc/mosquitto/certs/ca.crt", "/etc/mosquitto/ca/ca.key", 825, [])
    assert not hasattr(ca, "DEFAULT_CA_KEY") and not hasattr(ca, "DEFAULT_DAYS_VALID")


# --- the common name follows the SAN rules; keys and sizes are bounded (#20) ---------


def cn_of(cert):
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_the_common_name_is_normalised_and_checked_like_a_san(ca_host, tmp_path):
    cert = sign(tmp_path, "h1", common_name="H1.")
    assert cn_of(cert) == "h1" and sans(cert) == (["h1"], [])
    msg = refused(tmp_path, "h1", dns_names=["h1"], common_name="bank.example")
    assert "minion h1 may not have a certificate with DNS name bank.example" in msg


def test_an_over_long_common_name_is_a_clear_refusal(ca_host, tmp_path):
    long_name = ("a" * 60) + ".example.com"  # 72 characters: a fine SAN, too long for a CN
    ca_host.tls["signing_policies"] = [{"minions": "h1", "dns_names": ["*.example.com"]}]
    msg = refused(tmp_path, "h1", dns_names=[long_name], common_name=long_name)
    assert "has 72 characters, a certificate's holds at most 64 (RFC 5280)" in msg
    # Without a common_name, the first name that fits is the CN; the long one stays a SAN.
    cert = sign(tmp_path, "h1", dns_names=[long_name, "h1"])
    assert cn_of(cert) == "h1" and sans(cert)[0] == [long_name, "h1"]
    assert "no name of this request fits a common name" in refused(tmp_path, "h1", dns_names=[long_name])
    assert [r["subject_cn"] for r in records(ca_host)] == ["h1"]


def csr_with(key, names=("h1",)):
    return (x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h1")]))
            .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM).decode())


@pytest.mark.parametrize("make,named", [
    (lambda: ec.generate_private_key(ec.SECP256K1()), "EC curve secp256k1 is not signed"),
    (lambda: ec.generate_private_key(ec.SECP521R1()), "EC curve secp521r1 is not signed"),
    (lambda: ec.generate_private_key(ec.SECP224R1()), "EC curve secp224r1 is not signed"),
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "RSA 1024-bit key is not signed"),
    (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2560), "RSA 2560-bit key is not signed"),
    (lambda: rsa.generate_private_key(public_exponent=3, key_size=2048), "RSA public exponent 3 is not signed"),
    (lambda: ed25519.Ed25519PrivateKey.generate(), "Ed25519PublicKey keys are not signed"),
])
def test_only_allowlisted_keys_are_signed(ca_host, make, named):
    msg = refusal(peer_call("mosquitto_ca.sign_csr", "h1", csr_pem=csr_with(make()), dns_names=["h1"]), ca_host.context)
    assert msg.startswith("minion h1 sent a CSR whose key is refused: " + named), msg
    assert ("allowed: " in msg and "P-256, P-384" in msg) or "(only 65537)" in msg
    assert records(ca_host) == []


@pytest.mark.parametrize("make", [lambda: ec.generate_private_key(ec.SECP384R1()),
                                  lambda: rsa.generate_private_key(public_exponent=65537, key_size=3072)])
def test_allowlisted_keys_are_signed(ca_host, make):
    answer = peer_call("mosquitto_ca.sign_csr", "h1", csr_pem=csr_with(make()), dns_names=["h1"])
    assert set(answer) == {"certificate"}, answer


@pytest.mark.parametrize("kwargs,why", [
    ({"dns_names": [f"n{i}.h1" for i in range(33)]}, "33 names asked for: a certificate gets at most 32"),
    ({"dns_names": ["a" * 64 + ".example.com"]}, "invalid DNS name"),
    ({"dns_names": [".".join(["a" * 63] * 4)]}, "invalid DNS name"),          # 255 characters
    # 254 characters with the '*.' (the name after it alone would fit 253)
    ({"dns_names": ["*." + ".".join(["a" * 63] * 4)[:252]]}, "invalid DNS name"),
    ({"dns_names": ["h1"], "days_valid": "many"}, "days_valid must be a number"),
    ({"dns_names": ["h1"], "days_valid": True}, "days_valid must be a number"),
    ({"dns_names": ["h1"], "days_valid": 0}, "days_valid must be at least 1"),
    ({"dns_names": ["h1"], "csr_pem": "x" * 20000}, "sent a CSR of 20000 characters (at most 16384)"),
])
def test_bounded_requests_are_clear_refusals(ca_host, tmp_path, kwargs, why):
    csr, _ = csr_for(tmp_path)
    answer = peer_call("mosquitto_ca.sign_csr", "h1", **{"csr_pem": csr, **kwargs})
    assert why in refusal(answer, ca_host.context)
    assert records(ca_host) == []


def test_validity_has_an_absolute_cap(ca_host, tmp_path):
    ca_host.tls["days_valid"] = 36500  # a CA minion's own certificates may be long-lived ...
    msg = refused(tmp_path, "h1", dns_names=["h1"])
    assert "validity 36500 days" in msg and f"at most {ca.MAX_LEAF_DAYS} days" in msg  # ... a peer's never
    cert = sign(tmp_path, "h1", dns_names=["h1"], days_valid=ca.MAX_LEAF_DAYS)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 3650


# --- sign_csr's rate limits per requesting minion (#20) ------------------------------


class Clock:
    """The module's clock, moved by hand."""

    def __init__(self, monkeypatch):
        import datetime
        self.now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
        monkeypatch.setattr(ca, "_now", lambda: self.now)

    def advance(self, seconds):
        import datetime
        self.now += datetime.timedelta(seconds=seconds)


def test_refusals_do_not_count_as_signatures_and_a_resign_passes(ca_host, tmp_path, monkeypatch):
    """What the hosts tests do within minutes: a first signature, refused
    requests, a widened policy's re-sign."""
    clock = Clock(monkeypatch)
    sign(tmp_path, "b1", dns_names=["b1"])
    for _ in range(4):
        clock.advance(5)
        refused(tmp_path, "b1", dns_names=["b1.evil.org"])
    clock.advance(30)
    sign(tmp_path, "b1", dns_names=["b1"])
    assert len(records(ca_host)) == 2


def test_a_burst_of_requests_is_throttled_saying_when_to_retry(ca_host, tmp_path, monkeypatch):
    clock = Clock(monkeypatch)
    limit, window = ca.REQUEST_LIMIT
    for _ in range(limit):
        refused(tmp_path, "h1", dns_names=["h2"])
        clock.advance(1)
    msg = refused(tmp_path, "h1", dns_names=["h1"])
    assert msg.startswith(f"minion h1 is rate limited: {limit} sign_csr requests (refused ones count) in the last "
                          f"minute, the CA minion allows {limit} per minute per minion. Nothing was signed; "
                          "retry after 2026-01-01T00:01:00+00:00 (in 50 s)."), msg
    # Another minion is not held up; a throttled request is not counted, so the time said holds.
    sign(tmp_path, "h2", dns_names=["h2"])
    clock.advance(50)
    sign(tmp_path, "h1", dns_names=["h1"])
    assert [r["requester"] for r in records(ca_host)] == ["h2", "h1"]


def test_signatures_per_hour_and_per_day(ca_host, tmp_path, monkeypatch):
    clock = Clock(monkeypatch)
    (hourly, hour), (daily, day) = ca.SIGN_LIMITS
    for _ in range(hourly):
        sign(tmp_path, "h1", dns_names=["h1"])
        clock.advance(60)
    msg = refused(tmp_path, "h1", dns_names=["h1"])
    assert f"minion h1 is rate limited: {hourly} certificates signed" in msg
    assert "in the last hour, the CA minion allows 5 per hour per minion. Nothing was signed; retry after " \
           "2026-01-01T01:00:00+00:00 (in 3300 s)." in msg
    assert len(records(ca_host)) == hourly
    signed = hourly
    while signed < daily:
        clock.advance(hour)
        for _ in range(min(hourly, daily - signed)):
            sign(tmp_path, "h1", dns_names=["h1"])
            signed += 1
    clock.advance(hour)
    assert "in the last day, the CA minion allows 20 per day per minion" in refused(tmp_path, "h1", dns_names=["h1"])
    clock.advance(day)
    sign(tmp_path, "h1", dns_names=["h1"])
    # The counts keep only what is inside a window: one request and one signature now.
    assert json.loads((ca_host.dir / "sign_rate.json").read_text())["h1"]["signed"] == [clock.now.timestamp()]


def test_an_unreadable_rate_file_only_resets_the_counts(ca_host, tmp_path, caplog):
    (ca_host.dir / "sign_rate.json").write_text("{not json")
    caplog.set_level(logging.WARNING)
    sign(tmp_path, "h1", dns_names=["h1"])
    assert "the sign_csr rate limits start over" in caplog.text
    assert set(json.loads((ca_host.dir / "sign_rate.json").read_text())) == {"h1"}


def test_local_issues_are_not_rate_limited(ca_host, tmp_path):
    for i in range(ca.SIGN_LIMITS[0][0] + 1):
        ca.issue_cert(str(tmp_path / "server.crt"), str(tmp_path / "server.key"), ca_cert_path=ca_host.ca_crt,
                      ca_key_path=ca_host.ca_key, common_name=f"n{i}.example.com", key_user=os.geteuid(),
                      key_group=os.getegid())
    assert len(records(ca_host)) == ca.SIGN_LIMITS[0][0] + 1
