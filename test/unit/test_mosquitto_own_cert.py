"""_utils/mosquitto_own_cert: which names a certificate covers and whether
its chain reaches the CA, on certificates made here (test/support/foreign_pki)."""
import datetime

from test.support import foreign_pki as pki
from test.support.modules import load_util, utils

own = load_util("mosquitto_own_cert")
PKI = {f: utils()[f"mosquitto_pki.{f}"] for f in ("key_matches", "issued_by", "is_ca", "cert_sans", "in_time")}
PATHS = {"cert": "/x/mqtt.pem", "key": "/x/mqtt.key", "ca_cert": "/x/root.pem"}


def test_a_wildcard_covers_exactly_one_label():
    names = ["*.example.com", "mqtt.other.org"]
    assert own.covers(names, "mqtt.example.com") and own.covers(names, "MQTT.other.org.")
    assert not own.covers(names, "example.com") and not own.covers(names, "a.b.example.com")
    assert not own.covers(names, "other.org")


def test_the_chain_reaches_the_root_through_the_intermediates_in_order():
    root = pki.issue("Root", ca=True)
    inter = pki.issue("Issuing", root, ca=True)
    leaf = pki.issue("mqtt.example.com", inter, names=["mqtt.example.com"])
    direct = pki.issue("mqtt.example.com", root, names=["mqtt.example.com"])
    assert own.chain_reaches([leaf[0], inter[0]], root[0], PKI["issued_by"])
    assert own.chain_reaches([direct[0]], root[0], PKI["issued_by"])
    assert not own.chain_reaches([leaf[0]], root[0], PKI["issued_by"])  # intermediate missing
    assert not own.chain_reaches([leaf[0], inter[0]], pki.issue("Other", ca=True)[0], PKI["issued_by"])


def test_every_problem_is_named_by_its_pillar_key():
    root = pki.issue("Root", ca=True)
    cert, _ = pki.issue("other.example.com", pki.issue("Elsewhere", ca=True), names=["other.example.com"], days=1)
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=3)
    found = own.problems([cert], pki.issue("x")[1], root[0], paths=PATHS, dns=["mqtt.example.com"],
                         ips=["192.0.2.1"], now=later, pki=PKI)
    assert [p.split(":", 3)[:3] for p in found] == [["mosquitto", "tls", "own_key"]] + \
        [["mosquitto", "tls", "own_cert"]] * 3
    assert "does not cover mqtt.example.com, 192.0.2.1" in found[2] and "it has: other.example.com" in found[2]
    assert own.problems([cert], pki.issue("x")[1], cert, paths=PATHS, dns=[], ips=[],
                        now=later, pki=PKI)[1] == "mosquitto:tls:ca_cert: /x/root.pem is not a CA certificate"
