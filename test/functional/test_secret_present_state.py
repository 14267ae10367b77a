"""mosquitto_passwd.secret_present (the exporter's generated password):
generated once, then only owner and mode kept; the secret never in the
return."""
import os
import stat


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_generated_once_then_only_owner_and_mode_are_kept(states, tmp_path):
    path = str(tmp_path / "exporter" / "password")
    dry = states.mosquitto_passwd.secret_present(name=path, test=True)
    assert dry.result is None and dry.changes == {"secret": "generated"}
    assert dry.comment == f"secret {path} would be generated" and not os.path.exists(path)

    ret = states.mosquitto_passwd.secret_present(name=path)
    assert ret.result is True and ret.changes == {"secret": "generated"}
    assert ret.comment == f"secret {path} generated"
    secret = open(path).read()
    assert len(secret) == 32 and secret not in repr(ret.full_return)
    assert mode_of(path) == 0o600

    again = states.mosquitto_passwd.secret_present(name=path)
    assert again.result is True and again.changes == {} and again.comment == f"secret {path} is present"

    dry = states.mosquitto_passwd.secret_present(name=path, group="daemon", mode="0640", test=True)
    assert dry.result is None and dry.comment == f"secret {path} would be updated"
    assert dry.changes == {"mode": {"old": "0600", "new": "0640"},
                           "owner": {"old": "root:root", "new": "root:daemon"}}
    ret = states.mosquitto_passwd.secret_present(name=path, group="daemon", mode="0640")
    assert ret.result is True and ret.comment == f"secret {path} updated"
    assert ret.changes == dry.changes
    assert mode_of(path) == 0o640 and os.stat(path).st_gid == 1
    assert open(path).read() == secret  # the secret itself stays


def test_an_unknown_owner_fails_outside_test_mode_only(states, tmp_path):
    path = str(tmp_path / "password")
    ret = states.mosquitto_passwd.secret_present(name=path, group="no-such-group-x")
    assert ret.result is False and ret.comment.startswith(f"cannot own secret {path}: ")
    assert not os.path.exists(path)
    dry = states.mosquitto_passwd.secret_present(name=path, group="no-such-group-x", test=True)
    assert dry.result is None and dry.changes == {"secret": "generated"}
