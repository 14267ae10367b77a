"""mosquitto_passwd.managed through Salt's real loaders and state.single."""

import os
import stat

import pytest

V6 = (
    "$6$njERlZMi/7DzNB9E$iiavfuXvUm8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHG"
    "k+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw=="
)


@pytest.fixture
def users(tmp_path):
    return {
        "alice": {"password": "alice-secret"},
        "test": {"password_hash": V6},
        "exporter": {
            "password_file": str(tmp_path / "secrets" / "exporter"),
            "generate_password": True,
        },
    }


def test_modules_are_loaded(modules, states):
    assert "mosquitto_passwd.manage" in modules
    assert "mosquitto_passwd.managed" in states


def test_test_mode_then_apply_then_noop(states, modules, tmp_path, users):
    path = tmp_path / "passwd"
    secret = tmp_path / "secrets" / "exporter"

    dry = states.mosquitto_passwd.managed(name=str(path), users=users, test=True)
    assert dry.result is None
    assert dry.changes["added"] == ["alice", "test", "exporter"]
    assert dry.changes["file"] == "created"
    assert not path.exists() and not secret.exists()

    ret = states.mosquitto_passwd.managed(name=str(path), users=users)
    assert ret.result is True, ret.comment
    assert ret.changes["added"] == ["alice", "test", "exporter"]
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_uid == 0
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    entries = modules.mosquitto_passwd.read_file(str(path))
    assert modules.mosquitto_passwd.verify_password(secret.read_text(), entries["exporter"])
    assert secret.read_text() not in str(ret.full_return)

    before = path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino
    again = states.mosquitto_passwd.managed(name=str(path), users=users)
    assert again.result is True and again.changes == {}
    dry_again = states.mosquitto_passwd.managed(name=str(path), users=users, test=True)
    assert dry_again.result is True and dry_again.changes == {}
    assert (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_change_remove_and_mode(states, tmp_path, users):
    path = tmp_path / "passwd"
    states.mosquitto_passwd.managed(name=str(path), users=users)
    os.chmod(path, 0o644)
    users["alice"] = {"password": "n3w-alice-pw"}
    del users["test"]

    dry = states.mosquitto_passwd.managed(name=str(path), users=users, test=True)
    assert dry.result is None
    assert dry.changes == {
        "updated": ["alice"],
        "removed": ["test"],
        "mode": {"old": "0644", "new": "0640"},
    }
    assert stat.S_IMODE(path.stat().st_mode) == 0o644

    ret = states.mosquitto_passwd.managed(name=str(path), users=users)
    assert ret.result is True and ret.changes == dry.changes
    assert "n3w-alice-pw" not in str(ret.full_return)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_bad_input_fails_and_writes_nothing(states, tmp_path):
    path = tmp_path / "passwd"
    ret = states.mosquitto_passwd.managed(
        name=str(path), users={"ok": {"password": "x"}, "bad:user": {"password": "x"}}
    )
    assert ret.result is False
    assert "bad:user" in ret.comment
    assert not path.exists()


def test_missing_group_fails_before_writing(states, tmp_path):
    path = tmp_path / "passwd"
    ret = states.mosquitto_passwd.managed(
        name=str(path), users={"ok": {"password": "x"}}, group="no-such-group-here"
    )
    assert ret.result is False and "no-such-group-here" in ret.comment
    assert not path.exists()
