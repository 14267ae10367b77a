"""mosquitto_cluster: what a spoke publishes, what the hub takes from the
mine, and the spoke's login probe against a real TLS broker on loopback."""
import subprocess

import pytest
from salt.exceptions import CommandExecutionError

from test.support.broker import Broker, free_port, wait_port
from test.support.mapdata import built
from test.support.modules import load, load_util

cluster = load("_modules", "mosquitto_cluster")
passwd = load("_modules", "mosquitto_passwd")
MINE_NAMES = load_util("mosquitto_names").MINE_NAMES
MINE_HUB, MINE_SPOKE = MINE_NAMES["cluster_hub"], MINE_NAMES["cluster_spoke"]


@pytest.fixture
def mine(monkeypatch):
    """The Salt mine as the master hands it out: minion id -> entry. The
    loader globals are set for one test only (monkeypatch undoes them)."""
    entries = {}

    def get(tgt, fun, tgt_type="glob"):
        import fnmatch
        return {m: e[fun] for m, e in entries.items() if fnmatch.fnmatch(m, tgt) and fun in e}
    monkeypatch.setattr(cluster, "__salt__", {"mine.get": get, "mosquitto_passwd.hash_password": passwd.hash_password},
                        raising=False)
    monkeypatch.setattr(cluster, "__opts__", {"id": "spoke-a"}, raising=False)
    return entries


def test_identity_is_stable_verifies_and_holds_no_secret(mine, tmp_path):
    secret = tmp_path / "bridge.secret"
    secret.write_text("s3cret-" * 5 + "\n")
    one, two = cluster.spoke_identity(str(secret)), cluster.spoke_identity(str(secret))
    assert one == two  # the mine entry changes only when the secret does
    assert one["username"] == "bridge.spoke-a" and one["clientid"] == "spoke-a.cluster"
    assert passwd.verify_password("s3cret-" * 5, one["password_hash"])
    assert "s3cret" not in repr(one)
    secret.write_text("another-secret-value-of-32-chars")
    assert cluster.spoke_identity(str(secret))["password_hash"] != one["password_hash"]


def test_hub_takes_only_members_with_names_derived_from_their_id(mine):
    # A real $7$ hash: the hub takes no other shape (test_poisoned_spoke_entries_are_skipped).
    hashed = passwd.hash_password("b1-secret")
    good = {"username": "bridge.b1", "clientid": "b1.cluster", "password_hash": hashed}
    mine["b1"] = {MINE_SPOKE: good}
    # b2 claims b1's user: refused (the mine key is the authenticated id).
    mine["b2"] = {MINE_SPOKE: dict(good)}
    mine["x9"] = {MINE_SPOKE: {"username": "bridge.x9", "clientid": "x9.cluster",
                                       "password_hash": hashed}}
    mine["b3"] = {MINE_SPOKE: {"username": "bridge.b3", "clientid": "b3.cluster",
                                       "password_hash": "plain"}}
    assert cluster.spokes("b*") == {"b1": {"username": "bridge.b1", "clientid": "b1.cluster"}}
    assert cluster.spoke_hash("b1") == hashed and cluster.spoke_hash("b2") is None
    assert cluster.spokes("*", hub="b1") == {"x9": {"username": "bridge.x9", "clientid": "x9.cluster"}}


def test_hub_address_from_the_mine(mine):
    assert cluster.hub_of("hub") is None
    mine["hub"] = {MINE_HUB: cluster.hub_address("hub.example.com", "8883")}
    assert cluster.hub_of("hub") == {"domain": "hub.example.com", "port": 8883}


def hub_map(pillar):
    """mosquitto_map.data on the hub, from this pillar (merged, not validated);
    the mine fixture's __salt__ is this test's own dict."""
    cluster.__salt__["mosquitto_map.data"] = lambda: built(pillar)


def test_accept_refuses_without_a_requester_or_outside_members(mine, monkeypatch):
    monkeypatch.setattr(cluster, "__opts__", {"id": "hub"})
    hub_map({"cluster": {"hub": "hub", "members": "edge-*"}})
    assert cluster.accept().startswith("refused: no requester")
    assert cluster.accept(__pub_id="other").startswith("refused: other does not match")
    assert cluster.accept(__pub_id="edge-1").startswith("refused: no bridge identity")
    hub_map({"cluster": {"hub": "elsewhere"}})
    assert cluster.accept(__pub_id="edge-1").startswith("refused: hub is not the cluster hub")


def test_accept_reads_the_merged_map_so_lookup_and_defaults_count(mine, monkeypatch):
    monkeypatch.setattr(cluster, "__opts__", {"id": "hub"})
    hub_map({"lookup": {"cluster": {"members": "edge-*"}}, "cluster": {"hub": "hub"}})
    assert cluster.accept(__pub_id="other").startswith("refused: other does not match cluster members 'edge-*'")
    hub_map({"cluster": {"hub": "hub"}})  # members: '*' from defaults.yaml
    assert cluster.accept(__pub_id="edge-1").startswith("refused: no bridge identity")


@pytest.fixture(scope="module")
def tls_hub(tmp_path_factory):
    """A real broker with a TLS listener for 'localhost' and one bridge user."""
    work = tmp_path_factory.mktemp("hub")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(work / "ca.key"), "-out", str(work / "ca.crt"), "-days", "2", "-subj", "/CN=t CA")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(work / "s.key"), "-out", str(work / "s.csr"), "-subj", "/CN=localhost")
    (work / "ext").write_text("subjectAltName=DNS:localhost\n")
    run("openssl", "x509", "-req", "-in", str(work / "s.csr"), "-CA", str(work / "ca.crt"), "-CAkey",
        str(work / "ca.key"), "-CAcreateserial", "-out", str(work / "s.crt"), "-days", "2",
        "-extfile", str(work / "ext"))
    (work / "secret").write_text("right-secret-right-secret-right!!\n")
    (work / "passwd").write_text(f"bridge.spoke-a:{passwd.hash_password('right-secret-right-secret-right!!')}\n")
    port = free_port()
    broker = Broker(workdir=work, extra=(
        f"allow_anonymous false\npassword_file {work / 'passwd'}\n"
        f"listener {port} 127.0.0.1\ncafile {work / 'ca.crt'}\ncertfile {work / 's.crt'}\nkeyfile {work / 's.key'}\n"))
    with broker:
        wait_port(port)
        yield work, port


def test_probe_logs_in_with_the_right_secret(tls_hub):
    work, port = tls_hub
    assert cluster.probe("localhost", port, str(work / "ca.crt"), "bridge.spoke-a",
                         str(work / "secret"), "spoke-a.cluster.probe") == 0


def test_probe_sees_a_refused_login(tls_hub, tmp_path):
    work, port = tls_hub
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret")
    rc = cluster.probe("localhost", port, str(work / "ca.crt"), "bridge.spoke-a", str(wrong), "p1")
    assert rc in (4, 5)


def test_probe_refuses_a_name_the_certificate_does_not_hold(tls_hub):
    work, port = tls_hub
    with pytest.raises(CommandExecutionError, match="not verified"):
        cluster.probe("127.0.0.1", port, str(work / "ca.crt"), "bridge.spoke-a", str(work / "secret"), "p2")


def test_probe_reports_nothing_listening_as_a_connection_error(tls_hub):
    work, _ = tls_hub
    with pytest.raises(ConnectionError):
        cluster.probe("localhost", free_port(), str(work / "ca.crt"), "bridge.spoke-a", str(work / "secret"), "p3")
