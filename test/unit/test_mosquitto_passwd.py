"""Unit tests for the mosquitto_passwd execution and state modules.

Everything runs against real files in tmp_path; the state module gets the
real execution module through salt-factories' loader mock.
"""

import base64
import grp
import hashlib
import os
import stat
from unittest.mock import patch

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from test.support.modules import load, utils

passwd = load("_modules", "mosquitto_passwd")
passwd_state = load("_states", "mosquitto_passwd")

# Upstream's test vector (user test, password test).
V6 = (
    "$6$njERlZMi/7DzNB9E$iiavfuXvUm8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHG"
    "k+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw=="
)
MOSQUITTO_GID = grp.getgrnam("mosquitto").gr_gid


@pytest.fixture
def configure_loader_modules():
    funcs = ("plan", "manage", "read_secret", "ensure_secret")
    return {
        passwd: {"__opts__": {"test": False}, "__utils__": utils()},
        passwd_state: {
            "__opts__": {"test": False},
            "__utils__": utils(),
            "__salt__": {f"mosquitto_passwd.{f}": getattr(passwd, f) for f in funcs},
        },
    }


@pytest.fixture
def pwfile(tmp_path):
    return tmp_path / "passwd"


def fingerprint(path):
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_mode, st.st_uid, st.st_gid, path.read_bytes()


# ---------------------------------------------------------------- hashing


def test_hash_format_matches_pbkdf2_sha512():
    salt = bytes(range(12))
    hashed = passwd.hash_password("s3cret", iterations=101, salt=salt)
    _, kind, iterations, b64salt, b64hash = hashed.split("$")
    assert (kind, iterations) == ("7", "101")
    assert base64.b64decode(b64salt) == salt and len(b64salt) == 16
    expected = hashlib.pbkdf2_hmac("sha512", b"s3cret", salt, 101, 64)
    assert base64.b64decode(b64hash) == expected and len(b64hash) == 88
    assert passwd.check_hash(hashed)


def test_hash_salts_are_random():
    assert passwd.hash_password("x") != passwd.hash_password("x")


def test_verify_roundtrip_and_other_iterations():
    hashed = passwd.hash_password("pä ss:word", iterations=1000)
    assert passwd.verify_password("pä ss:word", hashed)
    assert not passwd.verify_password("pä ss:wordX", hashed)


def test_sha512_test_vector():
    assert passwd.verify_password("test", V6)
    assert not passwd.verify_password("Test", V6)
    assert passwd.check_hash(V6)


@pytest.mark.parametrize(
    "bad",
    ["", "plain", "$7$101$abc", "$7$0$" + V6[3:], "$5$a$b", "$7$x$AAAA$AAAA", "$6$!!!$AAAA"],
)
def test_malformed_hashes_never_verify(bad):
    assert not passwd.verify_password("test", bad)
    with pytest.raises(SaltInvocationError):
        passwd.check_hash(bad)


def test_check_hash_rejects_what_a_2_0_broker_drops():
    # mosquitto 2.1 writes 64-byte salts: a 2.0 broker drops such entries.
    long_salt = passwd.hash_password("x", salt=os.urandom(64))
    assert passwd.verify_password("x", long_salt)
    with pytest.raises(SaltInvocationError, match="12 bytes"):
        passwd.check_hash(long_salt)


# ---------------------------------------------------------------- usernames


@pytest.mark.parametrize(
    "name", ["", "a:b", "a\nb", "a\rb", "a\tb", "a\x00b", "a\x7fb", " a", "a ", "#a", 5, None]
)
def test_bad_usernames_rejected(name):
    with pytest.raises(SaltInvocationError, match="username"):
        passwd.check_username(name)


@pytest.mark.parametrize("name", ["alice", "jörg", "a b", "user@example.com", "a#b", "$SYS"])
def test_good_usernames(name):
    assert passwd.check_username(name)


# ---------------------------------------------------------------- parsing


def test_read_file_parses_like_mosquitto(pwfile):
    h = passwd.hash_password("x")
    pwfile.write_bytes(
        (
            "# comment:with colon\n"
            "\n"
            "no colon here\n"
            f"  alice \t: {h}  \r\n"
            f"bob:{h}:trailing\n"
            "carol:\n"
            f"::dave:{h}\n"
            f"alice:{V6}\n"
            f"eve:{h}"  # no final newline
        ).encode()
    )
    assert passwd.read_file(pwfile) == {"alice": h, "bob": h, "dave": h, "eve": h}
    assert passwd.read_file(pwfile.with_name("missing")) == {}


# ---------------------------------------------------------------- plan / manage


def test_manage_creates_file_with_owner_and_mode(pwfile):
    users = {"alice": {"password": "a"}, "test": {"password_hash": V6}}
    report = passwd.manage(str(pwfile), users)
    assert report["created"] and report["added"] == ["alice", "test"]
    st = pwfile.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (0, MOSQUITTO_GID)
    entries = passwd.read_file(pwfile)
    assert passwd.verify_password("a", entries["alice"]) and entries["test"] == V6
    assert not list(pwfile.parent.glob(".passwd.*")), "temp file left behind"


def test_second_run_changes_nothing(pwfile):
    users = {"alice": {"password": "a"}, "bob": {"password": "b:c d"}, "test": {"password_hash": V6}}
    passwd.manage(str(pwfile), users)
    before = fingerprint(pwfile)
    report = passwd.plan(str(pwfile), users, user="root", group="mosquitto", mode="0640")
    assert not report["changed"]
    assert report["unchanged"] == ["alice", "bob", "test"]
    assert not (report["added"] or report["updated"] or report["removed"])
    assert not passwd.manage(str(pwfile), users)["changed"]
    assert fingerprint(pwfile) == before


def test_existing_6_entry_that_verifies_is_kept(pwfile):
    pwfile.write_text(f"test:{V6}\n")
    os.chown(pwfile, 0, MOSQUITTO_GID)
    pwfile.chmod(0o640)
    before = fingerprint(pwfile)
    assert not passwd.manage(str(pwfile), {"test": {"password": "test"}})["changed"]
    assert fingerprint(pwfile) == before


def test_changed_password_is_updated_and_others_kept(pwfile):
    passwd.manage(str(pwfile), {"alice": {"password": "a"}, "bob": {"password": "b"}})
    old = passwd.read_file(pwfile)
    report = passwd.manage(str(pwfile), {"alice": {"password": "new"}, "bob": {"password": "b"}})
    assert (report["updated"], report["unchanged"]) == (["alice"], ["bob"])
    new = passwd.read_file(pwfile)
    assert passwd.verify_password("new", new["alice"])
    assert new["bob"] == old["bob"], "an unchanged entry must not be rehashed"


def test_prehashed_entry_compared_literally(pwfile):
    pwfile.write_text(f"test:{passwd.hash_password('test')}\n")
    report = passwd.plan(str(pwfile), {"test": {"password_hash": V6}})
    assert report["updated"] == ["test"]


def test_prune_removes_and_no_prune_keeps(pwfile):
    h = passwd.hash_password("x")
    pwfile.write_text(f"# keep me\nalice:{h}\nstranger:{h}\n")
    keep = passwd.plan(str(pwfile), {"alice": {"password": "x"}}, prune=False)
    assert not keep["changed"] and keep["removed"] == []
    report = passwd.manage(str(pwfile), {"alice": {"password": "x"}})
    assert report["removed"] == ["stranger"]
    assert pwfile.read_text() == f"# keep me\nalice:{h}\n"


def test_others_lines_stay_byte_for_byte(pwfile):
    h = passwd.hash_password("x")
    original = f"# header\nstranger : {h}  \n\nalice:{h}\n"
    pwfile.write_text(original)
    passwd.manage(str(pwfile), {"alice": {"password": "y"}, "bob": {"password": "b"}}, prune=False)
    lines = pwfile.read_text().splitlines()
    assert lines[:3] == original.splitlines()[:3]
    assert lines[3].startswith("alice:$7$101$") and lines[4].startswith("bob:$7$")


def test_duplicate_user_collapsed(pwfile):
    h = passwd.hash_password("x")
    pwfile.write_text(f"alice:{h}\nalice:{passwd.hash_password('other')}\n")
    report = passwd.manage(str(pwfile), {"alice": {"password": "x"}})
    assert report["updated"] == ["alice"]
    assert pwfile.read_text() == f"alice:{h}\n"


def test_wrong_salt_size_rewritten_even_if_it_verifies(pwfile):
    pwfile.write_text(f"alice:{passwd.hash_password('x', salt=os.urandom(64))}\n")
    assert passwd.plan(str(pwfile), {"alice": {"password": "x"}})["updated"] == ["alice"]


def test_mode_and_group_fixed_in_place(pwfile):
    passwd.manage(str(pwfile), {"alice": {"password": "a"}})
    os.chown(pwfile, 0, 0)
    pwfile.chmod(0o644)
    content, inode = pwfile.read_bytes(), pwfile.stat().st_ino
    planned = passwd.plan(
        str(pwfile), {"alice": {"password": "a"}}, user="root", group="mosquitto", mode="0640"
    )
    assert planned["mode"] == {"old": "0644", "new": "0640"}
    assert planned["group"] == {"old": "root", "new": "mosquitto"}
    assert planned["changed"] and not planned["updated"]
    assert stat.S_IMODE(pwfile.stat().st_mode) == 0o644, "plan must not touch the file"
    passwd.manage(str(pwfile), {"alice": {"password": "a"}})
    st = pwfile.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o640, MOSQUITTO_GID)
    assert (pwfile.read_bytes(), st.st_ino) == (content, inode)


def test_none_keeps_existing_owner_and_mode(pwfile):
    pwfile.write_text("")
    pwfile.chmod(0o600)
    passwd.manage(str(pwfile), {"alice": {"password": "a"}}, user=None, group=None, mode=None)
    st = pwfile.stat()
    assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o600, 0)


@pytest.mark.parametrize("mode", ["0640", "640", 640, "0o640"])
def test_mode_spellings(pwfile, mode):
    passwd.manage(str(pwfile), {}, mode=mode)
    assert stat.S_IMODE(pwfile.stat().st_mode) == 0o640


def test_missing_group_fails_before_writing(pwfile):
    pwfile.write_text("alice:x\n")
    before = fingerprint(pwfile)
    with pytest.raises(CommandExecutionError, match="no-such-group"):
        passwd.manage(str(pwfile), {"bob": {"password": "b"}}, group="no-such-group")
    assert fingerprint(pwfile) == before
    with pytest.raises(CommandExecutionError, match="no-such-group"):
        passwd.manage(str(pwfile.with_name("new")), {}, group="no-such-group")
    assert not pwfile.with_name("new").exists()


@pytest.mark.parametrize(
    "users, match",
    [
        ({"a:b": {"password": "x"}}, "'a:b'"),
        ({"bad\n": {"password": "x"}}, "'bad\\\\n'"),
        ({"alice": {"password": "x", "password_hash": V6}}, "'alice'.*exactly one"),
        ({"alice": {}}, "'alice'.*exactly one"),
        ({"alice": {"password": 1234}}, "'alice'.*string"),
        ({"alice": {"password": None}}, "'alice'.*string"),
        ({"alice": {"password": ""}}, "'alice'.*empty"),
        ({"alice": {"password_hash": "$7$1$x$y"}}, "'alice'.*invalid password hash"),
        ({"alice": {"passwd": "x"}}, "'alice'.*unknown"),
        ({"alice": "x"}, "'alice'.*mapping"),
    ],
)
def test_bad_input_rejected_and_file_untouched(pwfile, users, match):
    passwd.manage(str(pwfile), {"keep": {"password": "k"}})
    before = fingerprint(pwfile)
    # A good user first: validation must finish before anything is written.
    with pytest.raises(SaltInvocationError, match=match):
        passwd.manage(str(pwfile), {"new": {"password": "n"}, **users})
    assert fingerprint(pwfile) == before


def test_failed_write_keeps_old_file(pwfile, monkeypatch):
    passwd.manage(str(pwfile), {"alice": {"password": "a"}})
    before = fingerprint(pwfile)

    def boom(*args):
        raise OSError(28, "No space left on device")

    # Injected failure at the last step: the rename.
    monkeypatch.setattr(passwd.os, "replace", boom)
    with pytest.raises(CommandExecutionError, match="No space left"):
        passwd.manage(str(pwfile), {"alice": {"password": "b"}, "bob": {"password": "b"}})
    assert fingerprint(pwfile) == before
    assert [p.name for p in pwfile.parent.iterdir()] == ["passwd"]


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(CommandExecutionError, match="does not exist"):
        passwd.manage(str(tmp_path / "nodir" / "passwd"), {})


# ---------------------------------------------------------------- secrets


def test_ensure_secret_creates_once(tmp_path):
    path = tmp_path / "secrets" / "exporter"
    secret = passwd.ensure_secret(str(path))
    assert len(secret) == 32 and secret.replace("-", "").replace("_", "").isalnum()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == secret
    assert passwd.ensure_secret(str(path)) == secret
    assert passwd.read_secret(str(path)) == secret


def test_ensure_secret_keeps_existing_and_replaces_empty(tmp_path):
    path = tmp_path / "s"
    path.write_text("given-secret\n")
    assert passwd.ensure_secret(str(path)) == "given-secret"
    path.write_text("  \n")
    assert passwd.read_secret(str(path)) is None
    assert passwd.ensure_secret(str(path)) not in ("", "given-secret")


# ---------------------------------------------------------------- state


def test_state_test_mode_plans_and_writes_nothing(pwfile, tmp_path):
    secret = tmp_path / "exporter.secret"
    users = {
        "alice": {"password": "a"},
        "exporter": {"password_file": str(secret), "generate_password": True},
    }
    with patch.dict(passwd_state.__opts__, {"test": True}):
        ret = passwd_state.managed(str(pwfile), users)
    assert ret["result"] is None
    assert ret["changes"]["added"] == ["alice", "exporter"]
    assert ret["changes"]["password_files"] == {"generated": [str(secret)]}
    assert not pwfile.exists() and not secret.exists()


def test_state_applies_then_is_idempotent(pwfile, tmp_path):
    secret = tmp_path / "exporter.secret"
    users = {
        "alice": {"password": "a"},
        "exporter": {"password_file": str(secret), "generate_password": True},
    }
    ret = passwd_state.managed(str(pwfile), users)
    assert ret["result"] is True, ret["comment"]
    assert ret["changes"]["added"] == ["alice", "exporter"]
    generated = secret.read_text()
    assert passwd.verify_password(generated, passwd.read_file(pwfile)["exporter"])
    assert generated not in str(ret), "the state printed the secret"

    again = passwd_state.managed(str(pwfile), users)
    assert again["result"] is True and again["changes"] == {}
    assert "up to date" in again["comment"]
    with patch.dict(passwd_state.__opts__, {"test": True}):
        dry = passwd_state.managed(str(pwfile), users)
    assert dry["result"] is True and dry["changes"] == {}


def test_state_reports_mode_and_names_only(pwfile):
    passwd_state.managed(str(pwfile), {"alice": {"password": "hunter2"}})
    pwfile.chmod(0o644)
    with patch.dict(passwd_state.__opts__, {"test": True}):
        ret = passwd_state.managed(str(pwfile), {"alice": {"password": "other"}})
    assert ret["result"] is None
    assert ret["changes"] == {"updated": ["alice"], "mode": {"old": "0644", "new": "0640"}}
    hashed = passwd.read_file(pwfile)["alice"]
    assert "hunter2" not in str(ret) and "other" not in str(ret) and hashed not in str(ret)


def test_state_missing_password_file_fails_clearly(pwfile, tmp_path):
    users = {"exporter": {"password_file": str(tmp_path / "nope")}}
    ret = passwd_state.managed(str(pwfile), users)
    assert ret["result"] is False
    assert "'exporter'" in ret["comment"] and "generate_password" in ret["comment"]
    assert not pwfile.exists()


def test_state_bad_input_creates_no_secret(pwfile, tmp_path):
    secret = tmp_path / "exporter.secret"
    users = {
        "exporter": {"password_file": str(secret), "generate_password": True},
        "bad:name": {"password": "x"},
    }
    ret = passwd_state.managed(str(pwfile), users)
    assert ret["result"] is False and "'bad:name'" in ret["comment"]
    assert not secret.exists() and not pwfile.exists()


def test_state_uses_existing_password_file(pwfile, tmp_path):
    secret = tmp_path / "given"
    secret.write_text("from-file\n")
    ret = passwd_state.managed(str(pwfile), {"svc": {"password_file": str(secret)}})
    assert ret["result"] is True and "password_files" not in ret["changes"]
    assert passwd.verify_password("from-file", passwd.read_file(pwfile)["svc"])
