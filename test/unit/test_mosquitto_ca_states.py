"""mosquitto_ca states with the real execution module behind __salt__.

The CA-minion path (ca_server) runs with a stand-in for publish.publish that
does what the master and the CA minion would: it parses the arguments the
way a minion does (salt.minion.load_args_and_kwargs) and calls the real
sign_csr/read_ca_cert in a separate directory tree, the "CA host". Fixtures
(salt_env, paths, ca_minion) are in conftest.py, stand-ins in test/support/ca.py.
"""
import grp
import os

import pytest

from test.support.ca import assert_no_secrets, camod, managed, snapshot, st

# --- ca_present ------------------------------------------------------------------


def test_ca_present_test_create_noop(salt_env, paths):
    salt_env.opts["test"] = True
    ret = st.ca_present(paths.ca_crt, paths.ca_key)
    assert ret["result"] is None and "would be created" in ret["comment"]
    assert ret["changes"]["new"]["common_name"] == "Mosquitto CA"
    assert not os.listdir(paths.root)

    salt_env.opts["test"] = False
    ret = st.ca_present(paths.ca_crt, paths.ca_key)
    assert ret["result"] is True and ret["comment"] == f"CA {paths.ca_crt} created"
    assert ret["changes"]["old"] == {}
    assert set(ret["changes"]["new"]) == {"serial", "not_after", "dns_names", "ip_addresses",
                                          "key_type", "key_size", "fingerprint"}
    assert_no_secrets(ret)

    before = snapshot(paths.ca_crt, paths.ca_key)
    for test in (False, True):
        salt_env.opts["test"] = test
        ret = st.ca_present(paths.ca_crt, paths.ca_key)
        assert ret["result"] is True and ret["changes"] == {}
        assert "valid for 3649 more days" in ret["comment"]
    assert snapshot(paths.ca_crt, paths.ca_key) == before


@pytest.mark.parametrize("keep", ["cert", "key"])
def test_ca_present_refuses_half_a_ca(salt_env, paths, keep):
    camod.create_ca(paths.ca_crt, paths.ca_key)
    os.unlink(paths.ca_key if keep == "cert" else paths.ca_crt)
    before = snapshot(paths.ca_crt, paths.ca_key)
    ret = st.ca_present(paths.ca_crt, paths.ca_key)
    assert ret["result"] is False and "CA is incomplete" in ret["comment"] and "does not" in ret["comment"]
    assert ret["changes"] == {}
    assert snapshot(paths.ca_crt, paths.ca_key) == before


def test_ca_present_refuses_mismatched_key(salt_env, paths, tmp_path):
    camod.create_ca(paths.ca_crt, paths.ca_key)
    camod.create_ca(str(tmp_path / "o.crt"), str(tmp_path / "o.key"))
    os.replace(tmp_path / "o.key", paths.ca_key)
    before = snapshot(paths.ca_crt, paths.ca_key)
    ret = st.ca_present(paths.ca_crt, paths.ca_key)
    assert ret["result"] is False and "does not belong" in ret["comment"]
    assert snapshot(paths.ca_crt, paths.ca_key) == before


def test_ca_present_warns_but_never_replaces(salt_env, paths, monkeypatch):
    camod.create_ca(paths.ca_crt, paths.ca_key, days_valid=60)
    before = snapshot(paths.ca_crt, paths.ca_key)
    ret = st.ca_present(paths.ca_crt, paths.ca_key, common_name="New Name")
    assert ret["result"] is True and ret["changes"] == {}
    assert "expires in 59 days: plan a rollover" in ret["comment"]
    assert len(ret["warnings"]) == 2 and "not 'New Name'" in ret["warnings"][0]

    later = camod._now() + camod.datetime.timedelta(days=61)
    monkeypatch.setattr(camod, "_now", lambda: later)
    ret = st.ca_present(paths.ca_crt, paths.ca_key)
    assert ret["result"] is False and "expired" in ret["comment"] and "never replaced" in ret["comment"]
    assert snapshot(paths.ca_crt, paths.ca_key) == before


def test_ca_present_fixes_key_mode(salt_env, paths):
    camod.create_ca(paths.ca_crt, paths.ca_key)
    os.chmod(paths.ca_key, 0o644)
    salt_env.opts["test"] = True
    ret = st.ca_present(paths.ca_crt, paths.ca_key)
    assert ret["result"] is None and ret["changes"] == {"key_permissions": {"mode": ["0644", "0600"]}}
    assert os.stat(paths.ca_key).st_mode & 0o777 == 0o644
    salt_env.opts["test"] = False
    ret = st.ca_present(paths.ca_crt, paths.ca_key)
    assert ret["result"] is True and ret["changes"] == {"key_permissions": {"mode": ["0644", "0600"]}}
    assert os.stat(paths.ca_key).st_mode & 0o777 == 0o600


# --- certificate_managed, local CA ---------------------------------------------------


@pytest.fixture
def with_ca(salt_env, paths):
    camod.create_ca(paths.ca_crt, paths.ca_key)
    return paths


def test_certificate_test_issue_noop(salt_env, with_ca):
    p = with_ca
    salt_env.opts["test"] = True
    ret = managed(p)
    assert ret["result"] is None and ret["comment"] == f"certificate {p.crt} would be issued: certificate missing"
    assert ret["changes"]["old"] == {}
    assert not os.path.exists(p.crt) and not os.path.exists(p.key)

    salt_env.opts["test"] = False
    ret = managed(p)
    assert ret["result"] is True and ret["comment"] == f"certificate {p.crt} issued: certificate missing"
    new = ret["changes"]["new"]
    assert new["dns_names"] == ["localhost"] and new["ip_addresses"] == ["127.0.0.1"] and new["key_type"] == "ec"
    assert camod.verify_chain(p.crt, p.ca_crt)
    s = os.stat(p.key)
    assert (s.st_mode & 0o7777, s.st_uid, grp.getgrgid(s.st_gid).gr_name) == (0o640, 0, "mosquitto")

    before = snapshot(p.crt, p.key, p.ca_crt, p.ca_key)
    for test in (False, True):
        salt_env.opts["test"] = test
        ret = managed(p)
        assert ret["result"] is True and ret["changes"] == {}, ret
        assert "up to date (824 days remaining)" in ret["comment"]
    assert snapshot(p.crt, p.key, p.ca_crt, p.ca_key) == before


def test_certificate_reissued_when_sans_change(salt_env, with_ca):
    p = with_ca
    first = managed(p)["changes"]["new"]
    key_before = snapshot(p.key)
    ret = managed(p, dns_names=["mqtt2.example.com"])
    assert ret["result"] is True
    assert ret["comment"] == f"certificate {p.crt} reissued: SANs changed (added mqtt2.example.com)"
    assert ret["changes"]["old"] == first
    assert ret["changes"]["new"]["dns_names"] == ["localhost", "mqtt2.example.com"]
    assert ret["changes"]["new"]["serial"] != first["serial"]
    assert snapshot(p.key) == key_before  # the key is kept across reissues
    assert managed(p, dns_names=["mqtt2.example.com"])["changes"] == {}


def test_certificate_reissued_with_new_key_type(salt_env, with_ca):
    p = with_ca
    managed(p)
    key_before = snapshot(p.key)
    ret = managed(p, key_type="rsa")
    assert "key type changed (ec 256 -> rsa 2048)" in ret["comment"]
    assert ret["changes"]["new"]["key_type"] == "rsa"
    assert snapshot(p.key) != key_before


def test_certificate_renewed_near_expiry(salt_env, with_ca):
    p = with_ca
    managed(p, days_valid=20)
    ret = managed(p, days_valid=20)
    assert ret["result"] is True and "expires in 19 days (renew_days 30)" in ret["comment"]
    assert managed(p)["comment"].endswith("expires in 19 days (renew_days 30)")  # days_valid 825 again
    assert managed(p)["changes"] == {}


def test_certificate_unknown_group_fails_without_writing(salt_env, with_ca):
    p = with_ca
    for test in (True, False):
        salt_env.opts["test"] = test
        ret = managed(p, group="no-such-group")
        assert ret["result"] is False and "group 'no-such-group' does not exist" in ret["comment"]
    assert not os.path.exists(p.crt) and not os.path.exists(p.key)


def test_certificate_fixes_key_permissions_without_reissue(salt_env, with_ca):
    p = with_ca
    managed(p)
    os.chmod(p.key, 0o644)
    serial = camod.cert_info(p.crt)["serial"]
    ret = managed(p)
    assert ret["result"] is True and ret["changes"] == {"key_permissions": {"mode": ["0644", "0640"]}}
    assert camod.cert_info(p.crt)["serial"] == serial


def test_certificate_needs_ca_key_and_name(salt_env, with_ca):
    assert "ca_key is required" in managed(with_ca, ca_key=None)["comment"]
    assert "common_name is required" in managed(with_ca, common_name=None)["comment"]


# --- certificate_managed and ca_cert_present through a CA minion ----------------------


def test_remote_signing(salt_env, ca_minion):
    p = ca_minion
    salt_env.opts["test"] = True
    ret = managed(p, ca_server="ca1", dns_names=["mqtt.example.com"])
    assert ret["result"] is None
    assert "would be issued" in ret["comment"] and "would be updated from ca1" in ret["comment"]
    assert os.listdir(p.local) == []
    assert "mosquitto_ca.sign_csr" not in p.calls

    salt_env.opts["test"] = False
    ret = managed(p, ca_server="ca1", dns_names=["mqtt.example.com"])
    assert ret["result"] is True, ret["comment"]
    assert ret["comment"] == (
        f"certificate {p.crt} issued: certificate missing; CA certificate {p.ca_crt} updated from ca1"
    )
    assert ret["changes"]["new"]["dns_names"] == ["localhost", "mqtt.example.com"]
    assert ret["changes"]["ca_cert"]["old"] == {}
    # The CA key stayed on the CA host; ours holds its cert and our own key.
    assert sorted(os.listdir(p.local)) == ["ca.crt", "server.crt", "server.key"]
    assert open(p.ca_crt).read() == open(p.remote / "ca.crt").read()
    assert camod.verify_chain(p.crt, p.ca_crt) and camod.key_fits(p.key, cert_path=p.crt)

    before = snapshot(p.crt, p.key, p.ca_crt)
    ret = managed(p, ca_server="ca1", dns_names=["mqtt.example.com"])
    assert ret["result"] is True and ret["changes"] == {}, ret
    assert snapshot(p.crt, p.key, p.ca_crt) == before


def test_remote_ca_rollover_is_followed(salt_env, ca_minion):
    p = ca_minion
    managed(p, ca_server="ca1")
    # An operator rolled the CA over on the CA host.
    for f in ("ca.crt", "ca.key"):
        os.unlink(p.remote / f)
    camod.create_ca(str(p.remote / "ca.crt"), str(p.remote / "ca.key"))
    ret = managed(p, ca_server="ca1")
    assert ret["result"] is True
    assert "reissued: issued by a different CA" in ret["comment"] and "updated from ca1" in ret["comment"]
    assert camod.verify_chain(p.crt, str(p.remote / "ca.crt"))


def test_remote_ca_silent(salt_env, ca_minion):
    ret = managed(ca_minion, ca_server="ca-gone")
    assert ret["result"] is False
    assert "CA minion ca-gone did not answer mosquitto_ca.read_ca_cert: check peer config" in ret["comment"]
    assert os.listdir(ca_minion.local) == []


def test_remote_ca_error_is_reported(salt_env, ca_minion):
    os.unlink(ca_minion.remote / "ca.key")  # the CA host lost its key
    ret = managed(ca_minion, ca_server="ca1")
    assert ret["result"] is False
    assert "CA minion ca1 refused mosquitto_ca.sign_csr: cannot read CA key" in ret["comment"]
    assert sorted(os.listdir(ca_minion.local)) == []  # no key, no cert, no CA cert left behind


def test_remote_without_publish(salt_env, ca_minion):
    del salt_env.salt["publish.publish"]
    ret = managed(ca_minion, ca_server="ca1")
    assert ret["result"] is False and "needs publish.publish" in ret["comment"]


def test_ca_cert_present(salt_env, ca_minion):
    p = ca_minion
    salt_env.opts["test"] = True
    ret = st.ca_cert_present(p.ca_crt, "ca1")
    assert ret["result"] is None and ret["changes"]["old"] == {} and "fingerprint" in ret["changes"]["new"]
    assert not os.path.exists(p.ca_crt)

    salt_env.opts["test"] = False
    ret = st.ca_cert_present(p.ca_crt, "ca1")
    assert ret["result"] is True and ret["comment"] == f"CA certificate {p.ca_crt} fetched from ca1"
    assert open(p.ca_crt).read() == open(p.remote / "ca.crt").read()
    assert os.stat(p.ca_crt).st_mode & 0o777 == 0o644

    before = snapshot(p.ca_crt)
    ret = st.ca_cert_present(p.ca_crt, "ca1")
    assert ret["result"] is True and ret["changes"] == {} and "matches" in ret["comment"]
    assert snapshot(p.ca_crt) == before

    ret = st.ca_cert_present(p.ca_crt, "nobody")
    assert ret["result"] is False and "did not answer" in ret["comment"]


# --- the CA certificate through the Salt mine ------------------------------------------


@pytest.fixture
def mine(salt_env):
    """A stand-in for the master's mine cache: {minion: {mine name: data}}.

    mine.send runs the real function on the sending minion, like Salt's."""
    store = {}
    salt_env.opts["id"] = "ca1"

    def send(name, mine_function=None, **kwargs):
        store.setdefault(salt_env.opts["id"], {})[name] = salt_env.salt[mine_function or name](**kwargs)
        return True

    def get(tgt, fun, **kwargs):
        return {tgt: store[tgt][fun]} if fun in store.get(tgt, {}) else {}

    salt_env.salt["mine.send"] = send
    salt_env.salt["mine.get"] = get
    return store


def mine_gets(salt_env):
    """The targets of every mine.get from here on (each a master round trip)."""
    gets = []
    real_get = salt_env.salt["mine.get"]
    salt_env.salt["mine.get"] = lambda tgt, fun, **kw: gets.append(tgt) or real_get(tgt, fun, **kw)
    return gets


def test_ca_cert_published_once_and_follows_a_rollover(salt_env, mine, paths):
    salt_env.opts["test"] = True
    ret = st.ca_cert_published(paths.ca_crt)
    assert ret["result"] is None and "once it exists" in ret["comment"] and mine == {}

    salt_env.opts["test"] = False
    camod.create_ca(paths.ca_crt, paths.ca_key)
    fingerprint = camod.cert_info(paths.ca_crt)["fingerprint"]
    salt_env.opts["test"] = True
    ret = st.ca_cert_published(paths.ca_crt)
    assert ret["result"] is None and ret["changes"] == {"mine": {"old": None, "new": fingerprint}}
    assert mine == {}

    salt_env.opts["test"] = False
    ret = st.ca_cert_published(paths.ca_crt)
    assert ret["result"] is True and ret["changes"] == {"mine": {"old": None, "new": fingerprint}}
    assert mine["ca1"][st.MINE_NAME] == open(paths.ca_crt).read()
    ret = st.ca_cert_published(paths.ca_crt)
    assert ret["result"] is True and ret["changes"] == {} and "is in the mine" in ret["comment"]

    for f in (paths.ca_crt, paths.ca_key):  # rolled over by hand
        os.unlink(f)
    camod.create_ca(paths.ca_crt, paths.ca_key)
    ret = st.ca_cert_published(paths.ca_crt)
    assert ret["changes"]["mine"]["old"] == fingerprint
    assert ret["changes"]["mine"]["new"] == camod.cert_info(paths.ca_crt)["fingerprint"]


def test_ca_cert_published_fails_clearly_without_a_ca(salt_env, mine, paths):
    ret = st.ca_cert_published(paths.ca_crt)
    assert ret["result"] is False and "not put in the mine" in ret["comment"] and mine == {}


def test_brokers_read_the_mined_ca_cert_and_ask_the_ca_minion_only_to_sign(salt_env, ca_minion, mine):
    p = ca_minion
    mine["ca1"] = {st.MINE_NAME: open(p.remote / "ca.crt").read()}
    assert st.ca_cert_present(p.ca_crt, "ca1")["result"] is True
    ret = managed(p, ca_server="ca1", dns_names=["mqtt.example.com"])
    assert ret["result"] is True and ret["changes"]["new"]["dns_names"] == ["localhost", "mqtt.example.com"]
    assert camod.verify_chain(p.crt, p.ca_crt)
    assert p.calls == ["mosquitto_ca.sign_csr"]  # the CA cert came from the mine

    # A run with nothing to do needs no answer from the CA minion at all.
    before = snapshot(p.crt, p.key, p.ca_crt)
    assert st.ca_cert_present(p.ca_crt, "ca1")["changes"] == {}
    assert managed(p, ca_server="ca1", dns_names=["mqtt.example.com"])["changes"] == {}
    assert p.calls == ["mosquitto_ca.sign_csr"]
    assert snapshot(p.crt, p.key, p.ca_crt) == before


def test_a_garbled_mine_entry_falls_back_to_asking_the_ca_minion(salt_env, ca_minion, mine):
    mine["ca1"] = {st.MINE_NAME: "ERROR: something"}
    ret = st.ca_cert_present(ca_minion.ca_crt, "ca1")
    assert ret["result"] is True and ca_minion.calls == ["mosquitto_ca.read_ca_cert"]


def test_one_run_asks_the_mine_once_and_the_next_run_asks_again(salt_env, ca_minion, mine, monkeypatch):
    """ca_cert_present and certificate_managed share the run's one mine.get
    (a master round trip each); a new run (new __context__) asks again."""
    p = ca_minion
    mine["ca1"] = {st.MINE_NAME: open(p.remote / "ca.crt").read()}
    gets = mine_gets(salt_env)
    assert st.ca_cert_present(p.ca_crt, "ca1")["result"] is True
    assert managed(p, ca_server="ca1", dns_names=["mqtt.example.com"])["result"] is True
    assert gets == ["ca1"]
    monkeypatch.setattr(st, "__context__", {})  # the next state run
    assert st.ca_cert_present(p.ca_crt, "ca1")["changes"] == {}
    assert gets == ["ca1", "ca1"]


def test_a_run_without_a_mine_entry_asks_again_within_the_run(salt_env, ca_minion, mine):
    """Only an answer is kept: a CA minion that publishes mid-run is seen."""
    p = ca_minion
    assert st._mined_ca_cert("ca1") is None
    mine["ca1"] = {st.MINE_NAME: open(p.remote / "ca.crt").read()}
    assert st._mined_ca_cert("ca1") == mine["ca1"][st.MINE_NAME]



def test_a_mine_behind_the_ca_minion_is_asked_again(salt_env, ca_minion, mine, tmp_path):
    """A CA minion made anew under a known id: the run's mine answer is its
    old CA certificate, and the CA minion publishes its new one while a new
    broker's run goes on. The certificate it signs does not verify against
    the run's answer; the broker asks the mine again, installs the
    certificate with the new CA and keeps that CA, in the same run."""
    p = ca_minion
    old = tmp_path / "old-ca"
    old.mkdir()
    camod.create_ca(str(old / "ca.crt"), str(old / "ca.key"))
    mine["ca1"] = {st.MINE_NAME: open(old / "ca.crt").read()}
    ret = st.ca_cert_present(p.ca_crt, "ca1")
    assert ret["result"] is True and open(p.ca_crt).read() == open(old / "ca.crt").read()
    mine["ca1"] = {st.MINE_NAME: open(p.remote / "ca.crt").read()}  # the CA minion's run publishes

    ret = managed(p, ca_server="ca1", dns_names=["mqtt.example.com"])
    assert ret["result"] is True, ret["comment"]
    assert p.calls == ["mosquitto_ca.sign_csr"]
    assert open(p.ca_crt).read() == open(p.remote / "ca.crt").read()
    assert camod.verify_chain(p.crt, p.ca_crt) and camod.key_fits(p.key, cert_path=p.crt)
    assert ret["changes"]["ca_cert"]["new"]["fingerprint"] == camod.cert_info(str(p.remote / "ca.crt"))["fingerprint"]
    assert "updated from ca1" in ret["comment"]


def test_a_certificate_no_mined_ca_verifies_is_refused(salt_env, ca_minion, mine, tmp_path):
    """Asked again publish_retries times; a signature that still verifies
    against no CA the mine names is refused and nothing is installed."""
    p = ca_minion
    other = tmp_path / "other-ca"
    other.mkdir()
    camod.create_ca(str(other / "ca.crt"), str(other / "ca.key"))
    mine["ca1"] = {st.MINE_NAME: open(other / "ca.crt").read()}
    gets = mine_gets(salt_env)
    ret = managed(p, ca_server="ca1", dns_names=["mqtt.example.com"], publish_retries=2, publish_interval=0)
    assert ret["result"] is False and "is not signed by CA" in ret["comment"], ret
    assert len(gets) == 1 + 3  # the run's answer, then asked again 1 + 2 times
    assert not os.path.exists(p.crt) and not os.path.exists(p.key + ".new")
    assert not os.path.exists(p.ca_crt)  # the CA file only follows an installed certificate
