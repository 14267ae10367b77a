"""mosquitto_adopt (migration from the Ansible playbook, #21): a CA made
with the openssl CLI (passphrase-protected key, as mosquitto-tls(7) does)
adopted or refused naming the pillar key; the password file's user names;
a running broker's sessions handed over to the formula's persistence
before a restart (a real broker here; the end-to-end run is
test/hosts/test_migration.py)."""
import os
import subprocess
import types

import pytest

from test.support.broker import Broker
from test.support.modules import load

adopt = load("_modules", "mosquitto_adopt")
st = load("_states", "mosquitto_adopt")
passwd = load("_modules", "mosquitto_passwd")

PASSPHRASE = "ca pass: phrase"
SUBJECT = "/C=DE/O=Sensorberg GmBH/CN=mosquittodemo.sensorberg.com"


def openssl(*args, cwd, env=None):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "CAPASS": PASSPHRASE, **(env or {})})


@pytest.fixture
def playbook_ca(tmp_path):
    """ca.crt and an encrypted ca.key as the playbook's roles hold them, and another CA's key."""
    openssl("req", "-new", "-x509", "-days", "30", "-extensions", "v3_ca", "-keyout", "ca.key", "-out", "ca.crt",
            "-passout", "env:CAPASS", "-subj", SUBJECT, cwd=tmp_path)
    openssl("genrsa", "-out", "other.key", "2048", cwd=tmp_path)
    return types.SimpleNamespace(dir=tmp_path, cert=str(tmp_path / "ca.crt"), key=str(tmp_path / "ca.key"),
                                 other_key=str(tmp_path / "other.key"), ca_cert=str(tmp_path / "ca.crt"),
                                 ca_key=str(tmp_path / "formula" / "ca.key"))


@pytest.fixture
def loader(monkeypatch):
    pillar = {"mosquitto": {"tls": {"adopt_ca": {"key_passphrase": PASSPHRASE}}}}
    opts = {"test": False}
    funcs = {"mosquitto_adopt.open_ca": adopt.open_ca}
    monkeypatch.setattr(adopt, "__pillar__", pillar, raising=False)
    monkeypatch.setattr(st, "__salt__", funcs, raising=False)
    monkeypatch.setattr(st, "__opts__", opts, raising=False)
    return types.SimpleNamespace(pillar=pillar, opts=opts, salt=funcs)


def refusal(call):
    with pytest.raises(Exception) as exc:
        call()
    text = str(exc.value)
    assert "nothing was changed" in text and PASSPHRASE not in text
    return text


def test_the_playbooks_ca_is_checked_and_named_by_its_cn(playbook_ca, loader):
    info = adopt.ca_check(playbook_ca.cert, playbook_ca.key, playbook_ca.ca_cert, playbook_ca.ca_key)
    assert info["subject_cn"] == "mosquittodemo.sensorberg.com"


@pytest.mark.parametrize("change, key", [
    ({"key": "other_key"}, "mosquitto:tls:adopt_ca:key: "),
    ({"cert": None}, "mosquitto:tls:adopt_ca:cert: no CA certificate at"),
    ({"key": None}, "mosquitto:tls:adopt_ca:key: no CA key at"),
    ({"passphrase": "wrong"}, "mosquitto:tls:adopt_ca:key_passphrase: does not open"),
    ({"passphrase": ""}, "mosquitto:tls:adopt_ca:key_passphrase: the key"),
])
def test_bad_input_is_refused_naming_the_key(playbook_ca, loader, change, key):
    cert, ca_key = playbook_ca.cert, playbook_ca.key
    if "key" in change:
        ca_key = playbook_ca.other_key if change["key"] else str(playbook_ca.dir / "missing.key")
    if "cert" in change:
        cert = str(playbook_ca.dir / "missing.crt")
    if "passphrase" in change:
        loader.pillar["mosquitto"]["tls"]["adopt_ca"]["key_passphrase"] = change["passphrase"]
    text = refusal(lambda: adopt.ca_check(cert, ca_key, playbook_ca.ca_cert, playbook_ca.ca_key))
    assert key in text


def test_another_ca_at_the_formulas_path_is_never_replaced(playbook_ca, loader, tmp_path):
    openssl("req", "-new", "-x509", "-nodes", "-days", "2", "-keyout", "mine.key", "-out", "mine.crt",
            "-subj", "/CN=Mosquitto CA", cwd=tmp_path)
    text = refusal(lambda: adopt.ca_check(playbook_ca.cert, playbook_ca.key, str(tmp_path / "mine.crt"),
                                          playbook_ca.ca_key))
    assert "mosquitto:tls:adopt_ca:cert: tls:ca_cert" in text


def test_ca_adopted_plans_writes_then_changes_nothing(playbook_ca, loader, tmp_path):
    os.mkdir(tmp_path / "formula", 0o700)
    target_cert = str(tmp_path / "formula" / "ca.crt")
    args = (target_cert, playbook_ca.ca_key, playbook_ca.cert, playbook_ca.key)
    loader.opts["test"] = True
    ret = st.ca_adopted(*args)
    assert ret["result"] is None and set(ret["changes"]) == {"ca_cert", "ca_key"}
    assert not os.path.exists(playbook_ca.ca_key)
    loader.opts["test"] = False
    ret = st.ca_adopted(*args)
    assert ret["result"] is True and set(ret["changes"]) == {"ca_cert", "ca_key"}, ret
    assert PASSPHRASE not in str(ret) and "PRIVATE" not in str(ret)
    assert oct(os.stat(playbook_ca.ca_key).st_mode & 0o777) == "0o600"
    key_text = open(playbook_ca.ca_key).read()
    assert "ENCRYPTED" not in key_text
    mod = ["-noout", "-modulus"]
    assert (subprocess.run(["openssl", "rsa", *mod, "-in", playbook_ca.ca_key], capture_output=True).stdout
            == subprocess.run(["openssl", "x509", *mod, "-in", target_cert], capture_output=True).stdout)
    for test in (True, False):
        loader.opts["test"] = test
        ret = st.ca_adopted(*args)
        assert ret["result"] is True and ret["changes"] == {}, ret


def test_existing_users_reads_names_only(tmp_path, monkeypatch):
    path = tmp_path / "passwd"
    subprocess.run(["touch", str(path)], check=True)
    for user in ("johnpaulkj", "sensor-7"):
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, "pw: " + user], check=True)
    with open(path, "a") as fh:
        fh.write("# comment\nwith space:$7$x\n")
    cfg = load("_modules", "mosquitto_config")
    monkeypatch.setattr(adopt, "__salt__", {"mosquitto_passwd.read_file": passwd.read_file,
                                            "mosquitto_config.check_username": cfg.check_username}, raising=False)
    monkeypatch.setattr(cfg, "__salt__", {"mosquitto_passwd.check_username": passwd.check_username},
                        raising=False)
    assert adopt.existing_users(str(path)) == ["johnpaulkj", "sensor-7"]
    assert adopt.existing_users(str(tmp_path / "none")) == []


@pytest.mark.parametrize("text, want", [
    ("listener 8883 0.0.0.0\ncafile /x\n", {"enabled": False, "location": ""}),
    ("persistence true\npersistence_location /var/lib/mosquitto\n",
     {"enabled": True, "location": "/var/lib/mosquitto/"}),
    ("persistence true\npersistence false\n", {"enabled": False, "location": ""}),
])
def test_conf_persistence(tmp_path, text, want):
    (tmp_path / "m.conf").write_text(text)
    assert adopt.conf_persistence(str(tmp_path / "m.conf")) == want
    assert adopt.conf_persistence(str(tmp_path / "none.conf")) is None


def queue_for_offline_client(broker):
    sub = ["mosquitto_sub", "-p", str(broker.port), "-q", "1", "-i", "durable", "-t", "d/#"]
    subprocess.run([*sub, "-c", "-E"], check=True, timeout=20)
    subprocess.run(["mosquitto_pub", "-p", str(broker.port), "-q", "1", "-t", "d/x", "-m", "queued"],
                   check=True, timeout=20)
    return [*sub, "-c", "-C", "1", "-W", "5"]


@pytest.mark.parametrize("handover", [True, False], ids=["handed-over", "control-without"])
def test_sessions_in_memory_survive_the_restart_only_when_handed_over(tmp_path, monkeypatch, handover):
    """The playbook's broker (no persistence) with a queued message; the
    handover, then the formula's config and a restart."""
    store = tmp_path / "store"
    store.mkdir()
    (tmp_path / "b").mkdir()
    with Broker(extra="allow_anonymous true", workdir=tmp_path / "b") as broker:
        resubscribe = queue_for_offline_client(broker)
        pid = broker.proc.pid
        monkeypatch.setattr(st, "__grains__", {"init": "systemd"}, raising=False)
        monkeypatch.setattr(st, "__opts__", {"test": False}, raising=False)
        monkeypatch.setattr(st, "__salt__", {"cmd.run_all": lambda *a, **k: {"retcode": 0, "stdout": str(pid)}},
                            raising=False)
        if handover:
            ret = st.persistence_handed_over("mosquitto", str(broker.conf), f"{store}/", timeout=20)
            assert ret["result"] is True and ret["changes"] == {"store": f"{store}/mosquitto.db"}, ret
            # Its own file, listener as it was, with persistence added: reloaded without an error.
            conf = broker.conf.read_text()
            assert f"listener {broker.port} 127.0.0.1" in conf and f"persistence_location {store}/" in conf
            assert "Error" not in broker.logtext()
        # The formula's own file (another listener line) and the restart.
        broker.extra += f"\npersistence true\npersistence_location {store}/\nautosave_interval 1800"
        broker.restart()
        got = subprocess.run(resubscribe, capture_output=True, text=True, timeout=30)
    assert (got.stdout.strip() == "queued") is handover, (got.stdout, got.stderr)
