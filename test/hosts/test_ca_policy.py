"""The fleet's CA minion signs only what its policy allows, through real peer publish.

Two systemd hosts under the session's salt-master: ca.pol.test keeps the
CA; b1.pol.test has its certificate signed there (tls:ca_server). The
master's `peer` allows only mosquitto_ca.sign_csr (fleet.master_overrides),
so the CA certificate reaches b1 through the Salt mine.

Tests run in file order on one module-scoped fleet: a refused request
changes nothing on b1 and is logged on the CA host; a caller that sends its
own CA paths (or a forged requester) through publish.publish gets nothing
signed; neither does one asking for its id under a foreign domain or for a
wildcard name a glob policy covers; a widened policy signs; the CA's record
lists every certificate; a fleet domain gives b1 <id>.<that domain>.

By default (no tls:fleet_domains) b1 gets only its own id, b1.pol.test,
the name its `domain: {{ grains['id'] }}` asks for. The rate limits
(two signatures and a handful of requests for b1 here) stay far below
mosquitto_ca's REQUEST_LIMIT and SIGN_LIMITS.
"""
import json
import secrets
import subprocess

import pytest
from cryptography import x509

pytestmark = pytest.mark.hosts

CA_HOST = "ca.pol.test"
BROKER = "b1.pol.test"
CERT = "/etc/mosquitto/certs/server.crt"
KEY = "/etc/mosquitto/certs/server.key"
CA = "/etc/mosquitto/certs/ca.crt"
CERT_STATE = "mosquitto-configure-tls-server-cert-managed"
PASSWORD = "pol-" + secrets.token_urlsafe(12)
WIDENED = "mqtt.pol.example"
FLEET_DOMAIN = "fleet.pol.example"


def pillar_sls(broker_tls=None, policies=None, fleet_domains=None):
    """Per-minion pillar: the CA host's policies and fleet domains, the broker's extra tls keys."""
    return "\n".join([
        "mosquitto:",
        "  domain: {{ grains['id'] }}",
        f"  users: {{alice: {{password: {json.dumps(PASSWORD)}}}}}",
        "  firewall: {enabled: false}",
        "  exporter: {enabled: false}",
        "  tls:",
        f"{{% if grains['id'] == '{CA_HOST}' %}}",
        "    ca_server: ''",
        f"    signing_policies: {json.dumps(policies or [])}",
        f"    fleet_domains: {json.dumps(fleet_domains or [])}",
        "{% else %}",
        f"    ca_server: {CA_HOST}",
        *[f"    {k}: {json.dumps(v)}" for k, v in (broker_tls or {}).items()],
        "{% endif %}",
    ]) + "\n"


@pytest.fixture(scope="module")
def fleet(fleet_factory, fleet_pillar_dir):
    (fleet_pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
    (fleet_pillar_dir / "mosquitto.sls").write_text(pillar_sls())
    return fleet_factory([CA_HOST, BROKER])


@pytest.fixture
def pillar(fleet_pillar_dir):
    def write(**kwargs):
        (fleet_pillar_dir / "mosquitto.sls").write_text(pillar_sls(**kwargs))
    yield write
    write()


def state(ret, sid):
    found = [v for k, v in ret.items() if k.split("_|-")[1] == sid]
    assert found, sorted(ret)
    return found[0]


def snapshot(h, *paths):
    """Bytes, inode and mtime of each path inside h (None when missing)."""
    out = {}
    for p in paths:
        f = h.path(p)
        out[p] = (f.read_bytes(), f.stat().st_ino, f.stat().st_mtime_ns) if f.exists() else None
    return out


def serial_of(h, path=CERT):
    return f"{x509.load_pem_x509_certificate(h.path(path).read_bytes()).serial_number:X}"


def issued(fleet):
    return fleet.salt("mosquitto_ca.issued", tgt=CA_HOST, check=True)[CA_HOST]


def first_apply(records, applied):
    """The record's first two entries, checked as a set.

    The fleet's first apply runs on both hosts at once: the CA host's own
    certificate and the broker's are issued in whichever order the two runs
    reach the CA, and nothing promises one. Later issues are appended after
    them (the record is append-only), so only this pair is order-free.
    """
    head = sorted((r["requester"], r["how"], r["serial"]) for r in records[:2])
    assert head == sorted([(CA_HOST, "local", applied["ca_serial"]),
                           (BROKER, "peer", applied["broker_serial"])]), records
    return records[2:]


@pytest.fixture(scope="module")
def applied(fleet):
    fleet.salt("state.apply", "mosquitto", "sync_mods=all", timeout=900, check=True)
    return {"broker_serial": serial_of(fleet[BROKER]), "ca_serial": serial_of(fleet[CA_HOST])}


def test_default_policy_signs_the_brokers_own_name(fleet, applied, tmp_path):
    b = fleet[BROKER]
    (tmp_path / "ca.crt").write_bytes(fleet[CA_HOST].path(CA).read_bytes())
    (tmp_path / "b.crt").write_bytes(b.path(CERT).read_bytes())
    verify = subprocess.run(["openssl", "verify", "-purpose", "sslserver", "-CAfile", str(tmp_path / "ca.crt"),
                             "-verify_hostname", BROKER, str(tmp_path / "b.crt")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert first_apply(issued(fleet), applied) == []


def test_a_foreign_name_is_refused_and_nothing_changes_on_the_broker(fleet, applied, pillar):
    b, ca = fleet[BROKER], fleet[CA_HOST]
    before = snapshot(b, CERT, KEY, CA, KEY + ".new")
    # Another host's name, and a new key type (a new key would be needed).
    pillar(broker_tls={"dns_names": [CA_HOST], "key_type": "rsa"})
    ret = fleet.salt("state.apply", "mosquitto", tgt=BROKER, timeout=600)[BROKER]
    cert_state = state(ret, CERT_STATE)
    assert cert_state["result"] is False
    comment = cert_state["comment"]
    assert f"CA minion {CA_HOST} refused mosquitto_ca.sign_csr" in comment
    assert f"minion {BROKER} may not have a certificate with DNS name {CA_HOST}" in comment
    # By design (#20) the default is the id itself, no longer "<id>, <id>.*".
    assert f"policy for minion {BROKER} (default): DNS names {BROKER};" in comment
    assert "mosquitto:tls:signing_policies" in comment
    assert snapshot(b, CERT, KEY, CA, KEY + ".new") == before
    assert first_apply(issued(fleet), applied) == []
    log = ca.run(["grep", "-F", f"sign_csr refused: minion {BROKER}", "/var/log/salt/minion"], check=False).stdout
    assert "[WARNING" in log and f"DNS name {CA_HOST}" in log and "policy for minion" in log, log


def _publish_from_broker(fleet, kwargs, *positional):
    """publish.publish <CA> mosquitto_ca.sign_csr from b1, as any peer could.

    The CA minion answers with data: {"certificate": pem} or {"error": why};
    Salt's own answer to a call it could not make is its string."""
    arg = list(positional) + [{"__kwarg__": True, **kwargs}]
    ret = fleet[BROKER].salt_call("publish.publish", CA_HOST, "mosquitto_ca.sign_csr",
                                  f"arg={json.dumps(arg)}", "timeout=30")
    assert isinstance(ret, dict) and CA_HOST in ret, ret
    return ret[CA_HOST]


def test_a_caller_with_its_own_ca_paths_or_requester_gets_nothing_signed(fleet, applied):
    b, ca = fleet[BROKER], fleet[CA_HOST]
    # Another CA on the CA host (what a caller would point the CA minion at).
    ca.run(["mkdir", "-p", "-m", "0700", "/root/other-ca"])
    ca.salt_call("mosquitto_ca.create_ca", "/root/other-ca/ca.crt", "/root/other-ca/ca.key", "common_name=Other CA")
    csr = b.salt_call("mosquitto_ca.create_csr", KEY, CA_HOST)
    answer = _publish_from_broker(fleet, {"csr_pem": csr, "dns_names": [BROKER],
                                          "ca_cert_path": "/root/other-ca/ca.crt",
                                          "ca_key_path": "/root/other-ca/ca.key"})
    assert isinstance(answer, dict) and set(answer) == {"error"}, answer
    assert answer["error"].startswith("sign_csr refuses argument(s) ca_cert_path, ca_key_path"), answer
    # The requester is the minion id the master gives the call, not an argument.
    answer = _publish_from_broker(fleet, {"csr_pem": csr, "dns_names": [CA_HOST], "__pub_id": CA_HOST})
    assert isinstance(answer, dict) and set(answer) == {"error"}, answer
    assert f"minion {BROKER} may not have a certificate with DNS name {CA_HOST}" in answer["error"], answer
    # The call the formula used to make (CSR, CA cert path, CA key path, names):
    # Salt refuses it before sign_csr runs, with its own string.
    answer = _publish_from_broker(fleet, {"dns_names": [BROKER]}, csr, "/root/other-ca/ca.crt", "/root/other-ca/ca.key")
    assert isinstance(answer, str) and answer.startswith("Passed invalid arguments to mosquitto_ca.sign_csr"), answer
    assert first_apply(issued(fleet), applied) == []
    assert not ca.path("/root/other-ca/issued.json").exists()
    # Nothing but sign_csr is open to peers: not even another mosquitto_ca function.
    other = b.salt_call("publish.publish", CA_HOST, "mosquitto_ca.issue_cert", "arg=[]")
    assert other == {}, other


def test_a_foreign_domain_and_a_literal_wildcard_are_refused_end_to_end(fleet, applied, pillar):
    """b1.pol.test.evil.org (<id>.<anything> was once signed) and *.pol.example
    (a '*' glob once matched the literal '*') are refused through real peer
    publish, naming the pillar keys that would widen the policy; nothing
    changes on the broker and nothing is recorded."""
    b = fleet[BROKER]
    before = snapshot(b, CERT, KEY, CA, KEY + ".new")
    foreign = f"{BROKER}.evil.org"
    # Through the formula's own run: the broker asks for its id under a foreign domain.
    pillar(broker_tls={"dns_names": [foreign]})
    ret = fleet.salt("state.apply", "mosquitto", tgt=BROKER, timeout=600)[BROKER]
    comment = state(ret, CERT_STATE)["comment"]
    assert state(ret, CERT_STATE)["result"] is False
    assert f"minion {BROKER} may not have a certificate with DNS name {foreign}" in comment, comment
    assert "mosquitto:tls:fleet_domains" in comment and "(now none set)" in comment
    assert snapshot(b, CERT, KEY, CA, KEY + ".new") == before
    # A glob policy covers *.pol.example's names, but never the wildcard itself.
    pillar(policies=[{"minions": "b1.*", "dns_names": ["*.pol.example"]}])
    csr = b.salt_call("mosquitto_ca.create_csr", KEY, BROKER)
    for name in ("*.pol.example", foreign):
        answer = _publish_from_broker(fleet, {"csr_pem": csr, "dns_names": [name]})
        assert isinstance(answer, dict) and set(answer) == {"error"}, answer
        assert f"minion {BROKER} may not have a certificate with DNS name {name}:" in answer["error"], answer
        assert "mosquitto:tls:signing_policies" in answer["error"]
        wildcard_hint = "only when a matching policy lists it exactly under wildcard_dns_names"
        assert (wildcard_hint in answer["error"]) is name.startswith("*."), answer
    assert snapshot(b, CERT, KEY, CA, KEY + ".new") == before
    assert first_apply(issued(fleet), applied) == []


def test_a_widened_policy_signs_the_name_it_allows(fleet, applied, pillar, tmp_path):
    b = fleet[BROKER]
    pillar(broker_tls={"dns_names": [WIDENED], "ip_addresses": [b.ip]},
           policies=[{"minions": "b1.*", "dns_names": ["*.pol.example"], "ip_networks": ["198.18.0.0/24"],
                      "max_days": 825}])
    ret = fleet.salt("state.apply", "mosquitto", tgt=BROKER, timeout=600, check=True)[BROKER]
    assert "reissued" in state(ret, CERT_STATE)["comment"]
    cert = x509.load_pem_x509_certificate(b.path(CERT).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [BROKER, WIDENED]
    assert [str(i) for i in san.get_values_for_type(x509.IPAddress)] == [b.ip]
    (tmp_path / "ca.crt").write_bytes(fleet[CA_HOST].path(CA).read_bytes())
    (tmp_path / "b.crt").write_bytes(b.path(CERT).read_bytes())
    verify = subprocess.run(["openssl", "verify", "-purpose", "sslserver", "-CAfile", str(tmp_path / "ca.crt"),
                             "-verify_hostname", WIDENED, str(tmp_path / "b.crt")], capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # The same pillar again: nothing to sign, nothing changes.
    again = fleet.salt("state.apply", "mosquitto", tgt=BROKER, timeout=600, check=True)[BROKER]
    assert {k: v["changes"] for k, v in again.items() if v["changes"]} == {}


def test_the_record_lists_every_certificate_with_its_requester(fleet, applied):
    b, ca = fleet[BROKER], fleet[CA_HOST]
    later = first_apply(issued(fleet), applied)
    assert [(r["requester"], r["how"], r["serial"]) for r in later] == [(BROKER, "peer", serial_of(b))]
    assert later[0]["dns_names"] == [BROKER, WIDENED] and later[0]["ip_addresses"] == [b.ip]
    cert = x509.load_pem_x509_certificate(b.path(CERT).read_bytes())
    assert later[0]["not_after"] == cert.not_valid_after_utc.isoformat()
    mode = ca.run(["stat", "-c", "%a %U %G", "/etc/mosquitto/ca/issued.json"]).stdout.split()
    assert mode == ["600", "root", "root"]
    assert not b.path("/etc/mosquitto/ca").exists()


def test_fleet_domains_give_the_id_under_each_domain(fleet, applied, pillar):
    """tls:fleet_domains on the CA minion: b1 may have b1.pol.test.<domain>
    (never another suffix). Requests from b1 in this file stay below
    mosquitto_ca's REQUEST_LIMIT (10 a minute) even if all came at once."""
    b = fleet[BROKER]
    name = f"{BROKER}.{FLEET_DOMAIN}"
    csr = b.salt_call("mosquitto_ca.create_csr", KEY, BROKER)
    before = snapshot(b, CERT, KEY, CA)
    pillar(fleet_domains=[FLEET_DOMAIN])
    answer = _publish_from_broker(fleet, {"csr_pem": csr, "dns_names": [name]})
    assert set(answer) == {"certificate"}, answer
    cert = x509.load_pem_x509_certificate(answer["certificate"].encode())
    assert cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == [name]
    answer = _publish_from_broker(fleet, {"csr_pem": csr, "dns_names": [f"{BROKER}.evil.org"]})
    assert set(answer) == {"error"} and f"DNS names {BROKER}, {name};" in answer["error"], answer
    # Signed through publish, not installed: the broker keeps its certificate.
    assert snapshot(b, CERT, KEY, CA) == before
    assert issued(fleet)[-1]["dns_names"] == [name] and issued(fleet)[-1]["requester"] == BROKER
