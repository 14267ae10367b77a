"""certificate_managed against a CA minion that refuses: nothing changes here.

Same stand-ins as test_mosquitto_ca_states.py (the real execution module on
both sides, arguments parsed as a minion parses a peer publish): fixtures
salt_env and ca_minion from conftest.py, helpers from test/support/ca.py.
"""
import os

import pytest

from test.support.ca import BROKER_ID, camod, managed, snapshot, st
from test.support.config import cfg as config  # noqa: F401
from test.support.config import configure_loader_modules as configure_loader_modules  # a fixture
from test.support.config import error_of, settings


def listing(p):
    return sorted(os.listdir(p.local))


def test_a_refused_first_request_writes_no_key_and_no_cert(salt_env, ca_minion):
    p = ca_minion
    ret = managed(p, ca_server="ca1", dns_names=["bank.example.net"])
    assert ret["result"] is False
    assert (f"CA minion ca1 refused mosquitto_ca.sign_csr: minion {BROKER_ID} may not have a certificate "
            "with DNS name bank.example.net: not allowed by the policy for minion broker1 "
            "(default + signing_policies[0] (minions 'broker1'))") in ret["comment"]
    assert listing(p) == []  # no key, no certificate, no CA certificate, no leftover new key
    assert camod.issued(ca_key_path=str(p.remote / "ca.key")) == []


def test_a_refused_reissue_keeps_key_cert_and_ca_cert(salt_env, ca_minion):
    p = ca_minion
    assert managed(p, ca_server="ca1", dns_names=["mqtt.example.com"])["result"] is True
    before = snapshot(p.crt, p.key, p.ca_crt)
    # A new key type needs a new key: it waits beside the old one and is dropped on refusal.
    ret = managed(p, ca_server="ca1", dns_names=["mqtt.example.com", "other.example.org"], key_type="rsa")
    assert ret["result"] is False and "DNS name other.example.org" in ret["comment"]
    assert snapshot(p.crt, p.key, p.ca_crt) == before
    assert listing(p) == ["ca.crt", "server.crt", "server.key"]
    assert [r["requester"] for r in camod.issued(ca_key_path=str(p.remote / "ca.key"))] == [BROKER_ID]


def test_a_new_key_replaces_the_old_only_with_its_signed_certificate(salt_env, ca_minion):
    p = ca_minion
    managed(p, ca_server="ca1")
    old_key = open(p.key, "rb").read()
    ret = managed(p, ca_server="ca1", key_type="rsa", key_size=2048)
    assert ret["result"] is True and ret["changes"]["new"]["key_type"] == "rsa"
    assert open(p.key, "rb").read() != old_key and camod.key_fits(p.key, cert_path=p.crt)
    assert listing(p) == ["ca.crt", "server.crt", "server.key"]
    assert os.stat(p.key).st_mode & 0o777 == 0o640


def test_only_the_request_travels(salt_env, ca_minion, monkeypatch):
    p = ca_minion
    sent = []
    publish = salt_env.salt["publish.publish"]

    def spy(tgt, fun, arg=None, **kwargs):
        sent.append((fun, sorted(k for k in arg[0] if k != "__kwarg__")))
        return publish(tgt, fun, arg=arg, **kwargs)

    salt_env.salt["publish.publish"] = spy
    assert managed(p, ca_server="ca1")["result"] is True
    assert sent == [("mosquitto_ca.read_ca_cert", []),
                    ("mosquitto_ca.sign_csr", ["common_name", "csr_pem", "days_valid", "dns_names", "ip_addresses"])]


def test_no_answer_is_asked_again_a_refusal_is_not(salt_env, ca_minion, monkeypatch):
    p = ca_minion
    monkeypatch.setattr(st.time, "sleep", lambda s: None)
    publish = salt_env.salt["publish.publish"]
    silent = {"left": 2}

    def flaky(tgt, fun, arg=None, **kwargs):
        if fun == "mosquitto_ca.sign_csr" and silent["left"]:
            silent["left"] -= 1
            p.calls.append(fun)
            return {}  # the CA minion missed the job
        return publish(tgt, fun, arg=arg, **kwargs)

    salt_env.salt["publish.publish"] = flaky
    assert managed(p, ca_server="ca1", publish_retries=3)["result"] is True
    assert p.calls.count("mosquitto_ca.sign_csr") == 3

    p.calls.clear()
    ret = managed(p, ca_server="ca1", dns_names=["bank.example.net"], publish_retries=3)
    assert ret["result"] is False and p.calls.count("mosquitto_ca.sign_csr") == 1

    silent["left"] = 10
    ret = managed(p, ca_server="ca1", dns_names=["x.example.com"], publish_retries=2)
    assert ret["result"] is False and "did not answer mosquitto_ca.sign_csr" in ret["comment"]


@pytest.mark.parametrize("policy,message", [
    ([{"dns_names": ["a.example.com"]}], "mosquitto:tls:signing_policies:0:minions: must be a string, got NoneType"),
    ([{"minions": "x", "names": []}], "mosquitto:tls:signing_policies:0:names: unknown key"),
    ([{"minions": "x", "dns_names": ["*.*"]}],
     "mosquitto:tls:signing_policies:0:dns_names:0: '*.*' matches every name"),
    ([{"minions": "x", "dns_names": ["a b"]}], "mosquitto:tls:signing_policies:0:dns_names:0: must be a DNS name glob"),
    ([{"minions": "x", "ip_networks": ["192.0.2.1/24"]}],
     "mosquitto:tls:signing_policies:0:ip_networks:0: must be a network such as 192.0.2.0/24"),
    # The bound moved from 36500 to the CA's absolute cap (mosquitto_ca.MAX_LEAF_DAYS, #20).
    ([{"minions": "x", "max_days": 0}], "mosquitto:tls:signing_policies:0:max_days: must be between 1 and 3650"),
    ([{"minions": "x", "max_days": 3651}], "mosquitto:tls:signing_policies:0:max_days: must be between 1 and 3650"),
    ({"minions": "x"}, "mosquitto:tls:signing_policies: must be a list"),
    ([{"minions": "x", "dns_names": ["*"]}], "mosquitto:tls:signing_policies:0:dns_names:0: '*' matches every name"),
    ([{"minions": "x", "dns_names": ["mqtt.*"]}], "dns_names:0: 'mqtt.*': its last label must be literal"),
    ([{"minions": "x", "dns_names": ["a.c?m"]}], "dns_names:0: 'a.c?m': its last label must be literal"),
    ([{"minions": "x", "dns_names": ["[!a].example.com"]}], "dns_names:0: must be a DNS name glob"),
    ([{"minions": "x", "dns_names": ["a[.]b.example.com"]}], "dns_names:0: must be a DNS name glob"),
    ([{"minions": "x", "dns_names": ["a_b.example.com"]}], "dns_names:0: must be a DNS name glob"),
    ([{"minions": "x", "dns_names": ["a" * 64 + ".example.com"]}], "dns_names:0: must be a DNS name glob"),
    ([{"minions": "x", "wildcard_dns_names": ["edge.example.com"]}],
     "mosquitto:tls:signing_policies:0:wildcard_dns_names:0: must be a wildcard DNS name such as '*.edge.example.com'"),
    ([{"minions": "x", "wildcard_dns_names": ["*.lan"]}], "wildcard_dns_names:0: must be a wildcard DNS name"),
    ([{"minions": "x", "wildcard_dns_names": ["*.*.example.com"]}],
     "wildcard_dns_names:0: must be a wildcard DNS name"),
])
def test_bad_signing_policies_name_the_key(policy, message):
    assert message in error_of(tls={"signing_policies": policy})


def test_good_signing_policies_are_normalised():
    out = config.validate(settings(tls={"signing_policies": [
        {"minions": "Edge-*", "dns_names": ["*.Edge.example.com", "mqtt-?.[ab]-site.example.com"],
         "wildcard_dns_names": ["*.Edge.example.com."], "ip_networks": ["2001:DB8::/32"], "max_days": 90}]}))
    assert out["tls"]["signing_policies"] == [
        {"minions": "edge-*", "dns_names": ["*.edge.example.com", "mqtt-?.[ab]-site.example.com"],
         "wildcard_dns_names": ["*.edge.example.com"], "ip_networks": ["2001:db8::/32"], "max_days": 90}]


def test_fleet_domains_are_plain_names_normalised():
    out = config.validate(settings(tls={"fleet_domains": ["Example.COM", "lan", "example.com."]}))
    assert out["tls"]["fleet_domains"] == ["example.com", "lan"]
    assert config.validate(settings())["tls"]["fleet_domains"] == []  # the default: only <id> itself


@pytest.mark.parametrize("value,message", [
    (["*.example.com"], "mosquitto:tls:fleet_domains:0: is not a valid DNS name"),
    (["a b"], "mosquitto:tls:fleet_domains:0: is not a valid DNS name"),
    ([""], "mosquitto:tls:fleet_domains:0: must be a DNS name"),
    ("example.com", "mosquitto:tls:fleet_domains: must be a list"),
])
def test_bad_fleet_domains_name_the_key(value, message):
    assert message in error_of(tls={"fleet_domains": value})


def test_a_domain_too_long_for_a_common_name_is_refused_at_render():
    long_name = "a" * 60 + ".example.com"
    assert ("mosquitto:domain: has 72 characters, but it is the certificate's common name, which holds at most 64"
            in error_of(domain=long_name))


def test_ec_p521_is_refused_at_render():
    assert "mosquitto:tls:key_size: EC P-521 is not signed" in error_of(tls={"key_type": "ec", "key_size": 521})
    assert config.validate(settings(tls={"key_type": "ec", "key_size": 384}))["tls"]["key_size"] == 384


@pytest.mark.parametrize("answer,shown", [
    ("-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----\n", "BEGIN CERTIFICATE"),  # an older CA minion
    ("Passed invalid arguments to mosquitto_ca.sign_csr: unexpected keyword", "Passed invalid arguments"),
    ("ERROR: something broke", "ERROR: something broke"),
    ({"certificate": None}, "{'certificate': None}"),
    (None, "None"),
])
def test_anything_but_a_structured_answer_is_no_certificate(salt_env, ca_minion, answer, shown):
    """Only {"certificate": pem} signs; every other answer fails the state
    with what came back, and leaves nothing behind."""
    p = ca_minion
    publish = salt_env.salt["publish.publish"]

    def odd(tgt, fun, arg=None, **kwargs):
        if fun == "mosquitto_ca.sign_csr":
            return {tgt: answer}
        return publish(tgt, fun, arg=arg, **kwargs)

    salt_env.salt["publish.publish"] = odd
    ret = managed(p, ca_server="ca1")
    assert ret["result"] is False
    assert "CA minion ca1 gave no certificate for mosquitto_ca.sign_csr" in ret["comment"] and shown in ret["comment"]
    assert listing(p) == []


def test_a_list_of_errors_is_a_refusal(salt_env, ca_minion):
    publish = salt_env.salt["publish.publish"]
    salt_env.salt["publish.publish"] = lambda tgt, fun, arg=None, **kw: (
        {tgt: {"errors": ["first reason", "second reason"]}} if fun == "mosquitto_ca.sign_csr"
        else publish(tgt, fun, arg=arg, **kw))
    ret = managed(ca_minion, ca_server="ca1")
    assert ret["result"] is False
    assert "CA minion ca1 refused mosquitto_ca.sign_csr: first reason; second reason" in ret["comment"]


def test_a_ca_minion_that_answers_read_ca_cert_with_no_ca_certificate(salt_env, ca_minion):
    publish = salt_env.salt["publish.publish"]
    salt_env.salt["publish.publish"] = lambda tgt, fun, arg=None, **kw: (
        {tgt: "ERROR: cannot read CA certificate"} if fun == "mosquitto_ca.read_ca_cert"
        else publish(tgt, fun, arg=arg, **kw))
    ret = st.ca_cert_present(ca_minion.ca_crt, "ca1")
    assert ret["result"] is False
    assert "CA minion ca1 gave no CA certificate for mosquitto_ca.read_ca_cert: ERROR: cannot read" in ret["comment"]
    assert not os.path.exists(ca_minion.ca_crt)
