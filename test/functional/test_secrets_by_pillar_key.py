"""Passwords given as pillar keys, through Salt's real loaders.

The pillar is wrapped the way Salt 3008 wraps it (salt.utils.secret.hide:
values print as ``**********``, and ``pillar.get`` outside a template
returns that placeholder). The states must still write the real values,
and never return them.
"""
import copy
import os
import stat

import pytest
import salt.utils.secret
from saltfactories.utils.functional import Loaders

ALICE = "alice:" + "s3cret-" * 3
BRIDGE_PW = "bridge pw " + "x" * 12
HASH = ("$6$njERlZMi/7DzNB9E$iiavfuXvUm8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHG"
        "k+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw==")
PILLAR = {"mosquitto": {
    "users": {"alice": {"password": ALICE}, "test": {"password_hash": HASH}},
    "bridges": {"site-b": {"remote_password": BRIDGE_PW}},
}}
BRIDGE = {
    "address": ["127.0.0.1:18883"], "topics": ["sensors/# out 1"], "tls": True,
    "cleansession": False, "notifications": True, "keepalive_interval": 60,
    "options": {"remote_clientid": "a.site-b"}, "remote_username": "bridge-a",
}


@pytest.fixture(scope="module")
def masked(minion_opts):
    opts = copy.deepcopy(minion_opts)
    opts["pillar"] = salt.utils.secret.hide(copy.deepcopy(PILLAR))
    loaders = Loaders(opts)
    yield loaders
    loaders.reset_state()


def test_pillar_get_masks_here_as_in_a_state_run(masked):
    # Why the states read __pillar__ themselves.
    assert masked.modules.pillar.get("mosquitto:users:alice:password") == "**********"


def test_user_passwords_by_pillar_key(masked, tmp_path):
    path = str(tmp_path / "passwd")
    users = {"alice": {"password_pillar": "mosquitto:users:alice:password"},
             "test": {"password_hash_pillar": "mosquitto:users:test:password_hash"}}
    ret = masked.states.mosquitto_passwd.managed(name=path, users=users, group="root")
    assert ret.result is True, ret.comment
    assert ret.changes["added"] == ["alice", "test"]
    entries = masked.modules.mosquitto_passwd.read_file(path)
    assert masked.modules.mosquitto_passwd.verify_password(ALICE, entries["alice"])
    assert entries["test"] == HASH
    for value in (ALICE, HASH):
        assert value not in str(ret.full_return)
    again = masked.states.mosquitto_passwd.managed(name=path, users=users, group="root")
    assert again.result is True and again.changes == {}


def test_a_missing_pillar_key_fails_naming_the_key(masked, tmp_path):
    path = tmp_path / "passwd"
    ret = masked.states.mosquitto_passwd.managed(
        name=str(path), users={"bob": {"password_pillar": "mosquitto:users:bob:password"}}, group="root")
    assert ret.result is False
    assert "mosquitto:users:bob:password is missing" in ret.comment
    assert not path.exists()


def test_bridge_password_by_pillar_key_and_from_a_file(masked, tmp_path):
    bridges_dir = tmp_path / "bridges.d"
    bridges_dir.mkdir()
    secret = tmp_path / "bridge-c.secret"
    secret.write_text("from-a-file-" + "y" * 10 + "\n")
    os.chmod(secret, 0o600)
    bridges = {
        "site-b": dict(BRIDGE, remote_password_pillar="mosquitto:bridges:site-b:remote_password"),
        "site-c": dict(BRIDGE, tls=False, remote_password_file=str(secret)),
    }
    args = dict(name=str(bridges_dir), bridges=bridges, ca_cert="/etc/ca.crt", group="root")

    dry = masked.states.mosquitto_bridge.managed(test=True, **args)
    assert dry.result is None and dry.changes == {"bridges": {"added": ["site-b", "site-c"]}}
    assert list(bridges_dir.iterdir()) == []

    ret = masked.states.mosquitto_bridge.managed(**args)
    assert ret.result is True and ret.changes == {"bridges": {"added": ["site-b", "site-c"]}}
    b = (bridges_dir / "site-b.conf").read_text()
    assert f"remote_password {BRIDGE_PW}\n" in b and "bridge_cafile /etc/ca.crt\n" in b
    c = (bridges_dir / "site-c.conf").read_text()
    assert "remote_password from-a-file-yyyyyyyyyy\n" in c and "bridge_cafile" not in c
    assert stat.S_IMODE((bridges_dir / "site-b.conf").stat().st_mode) == 0o640
    for out in (dry, ret):
        assert BRIDGE_PW not in str(out.full_return) and "from-a-file" not in str(out.full_return)

    assert masked.states.mosquitto_bridge.managed(**args).changes == {}

    # A new password: "updated", by name only; a bridge gone: its file removed.
    secret.write_text("another-" + "z" * 12)
    del bridges["site-b"]
    ret = masked.states.mosquitto_bridge.managed(**args)
    assert ret.changes == {"bridges": {"updated": ["site-c"], "removed": ["site-b"]}}
    assert "another-" not in str(ret.full_return)
    assert sorted(p.name for p in bridges_dir.iterdir()) == ["site-c.conf"]
