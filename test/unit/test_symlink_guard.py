"""Root never follows a link the broker's user could plant (issue #20).

The broker's log directory belongs to its user; a compromised broker can
put a link to /etc/shadow where root's states expect the log. Here a
directory owned by `nobody` stands for it, the link is planted by a child
process running as `nobody`, and the property checked is that root's states
neither change nor print what the link points to: owner, mode and content
of the target stay, and nothing of it shows in the state's return.
"""
import grp
import os
import pwd
import shutil
import stat
import tempfile

import pytest

from test.support.modules import load, utils

U = utils()
NOBODY = pwd.getpwnam("nobody")
MOSQUITTO_UID = pwd.getpwnam("mosquitto").pw_uid
MOSQUITTO_GID = grp.getgrnam("mosquitto").gr_gid
SECRET = b"root:$y$j9T$not-really-a-hash:19000:0:99999:7:::\n"


@pytest.fixture
def area():
    """(base, broker_dir, target): base is root's 0755 directory under the
    world-writable /tmp, broker_dir inside it belongs to nobody (the
    broker's log directory), target is root's 0600 file beside it."""
    base = tempfile.mkdtemp(prefix="mosq-symlink-")
    os.chmod(base, 0o755)
    broker_dir = os.path.join(base, "log")
    os.mkdir(broker_dir, 0o750)
    os.chown(broker_dir, NOBODY.pw_uid, NOBODY.pw_gid)
    target = os.path.join(base, "shadow")
    with open(target, "wb") as fh:
        fh.write(SECRET)
    os.chmod(target, 0o600)
    yield base, broker_dir, target
    shutil.rmtree(base)


def as_nobody(action):
    """Run action() in a forked child with nobody's uid and gid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def plant_link(target, link):
    as_nobody(lambda: os.symlink(target, link))
    assert os.lstat(link).st_uid == NOBODY.pw_uid and os.path.islink(link)


def untouched(target):
    st = os.stat(target)
    with open(target, "rb") as fh:
        return (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), fh.read())


ORIGINAL = (0, 0, 0o600, SECRET)


@pytest.fixture
def state(monkeypatch):
    mod = load("_states", "mosquitto_broker")
    opts = {"test": False}
    monkeypatch.setattr(mod, "__opts__", opts, raising=False)
    return mod, opts


def owned(mod, path):
    return mod.owned_file_present(path, user="mosquitto", group="mosquitto", mode="0640")


def assert_nothing_of(target, ret):
    text = repr(ret)
    assert "shadow" not in text and "not-really-a-hash" not in text, text


# --- owner and mode of a file in the broker's directory ----------------------


def test_planted_link_is_removed_never_followed(area, state):
    _, broker_dir, target = area
    mod, opts = state
    log = os.path.join(broker_dir, "mosquitto.log")
    plant_link(target, log)

    opts["test"] = True
    planned = owned(mod, log)
    assert planned["result"] is None
    assert set(planned["changes"]) == {"symlink", "file", "user", "group", "mode"}
    assert "remove the symbolic link" in planned["comment"]
    assert os.path.islink(log), "test=True changed the host"
    assert untouched(target) == ORIGINAL
    assert_nothing_of(target, planned)

    opts["test"] = False
    ret = owned(mod, log)
    assert ret["result"] is True, ret
    assert ret["changes"]["symlink"] == {"old": "a symbolic link (not followed)", "new": "removed"}
    st = os.lstat(log)
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (MOSQUITTO_UID, MOSQUITTO_GID, 0o640)
    assert untouched(target) == ORIGINAL
    assert_nothing_of(target, ret)

    again = owned(mod, log)
    assert again["result"] is True and again["changes"] == {}, again


def test_existing_log_keeps_its_content_and_gets_owner_and_mode(area, state):
    _, broker_dir, _ = area
    mod, opts = state
    log = os.path.join(broker_dir, "mosquitto.log")
    with open(log, "wb") as fh:
        fh.write(b"1700000000: mosquitto version 2.0.11 starting\n")
    os.chmod(log, 0o644)

    opts["test"] = True
    planned = owned(mod, log)
    assert planned["result"] is None and set(planned["changes"]) == {"user", "group", "mode"}
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o644 and os.stat(log).st_uid == 0

    opts["test"] = False
    ret = owned(mod, log)
    assert ret["result"] is True
    assert ret["changes"]["mode"] == {"old": "0644", "new": "0640"}
    assert ret["changes"]["user"] == {"old": "root", "new": "mosquitto"}
    st = os.stat(log)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (MOSQUITTO_UID, MOSQUITTO_GID, 0o640)
    with open(log, "rb") as fh:
        assert fh.read() == b"1700000000: mosquitto version 2.0.11 starting\n"
    assert owned(mod, log)["changes"] == {}


def test_missing_log_is_created_empty(area, state):
    _, broker_dir, _ = area
    mod, opts = state
    log = os.path.join(broker_dir, "mosquitto.log")
    opts["test"] = True
    assert owned(mod, log)["result"] is None and not os.path.lexists(log)
    opts["test"] = False
    ret = owned(mod, log)
    assert ret["result"] is True and ret["changes"]["file"] == {"old": None, "new": "created empty"}
    assert os.stat(log).st_size == 0 and stat.S_IMODE(os.stat(log).st_mode) == 0o640
    assert owned(mod, log)["changes"] == {}


def test_hard_link_to_a_file_elsewhere_is_refused(area, state):
    """With fs.protected_hardlinks=0 the broker's user could hard-link a
    root file into its directory: chowning that name chowns the file."""
    _, broker_dir, target = area
    mod, _ = state
    log = os.path.join(broker_dir, "mosquitto.log")
    os.link(target, log)
    ret = owned(mod, log)
    assert ret["result"] is False and "2 hard links" in ret["comment"] and ret["changes"] == {}
    assert untouched(target) == ORIGINAL


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_other_kinds_are_left_alone(area, state, kind):
    _, broker_dir, _ = area
    mod, _ = state
    log = os.path.join(broker_dir, "mosquitto.log")
    as_nobody(lambda: os.mkfifo(log) if kind == "fifo" else os.mkdir(log))
    ret = owned(mod, log)  # a FIFO must not block the run
    assert ret["result"] is False and ret["changes"] == {}
    assert ("a FIFO" if kind == "fifo" else "a directory") in ret["comment"]
    assert os.lstat(log).st_uid == NOBODY.pw_uid


def test_link_as_a_directory_inside_the_broker_dir_is_not_followed(area, state):
    base, broker_dir, target = area
    mod, _ = state
    plant_link(base, os.path.join(broker_dir, "sub"))
    ret = owned(mod, os.path.join(broker_dir, "sub", "shadow"))
    assert ret["result"] is False and "symbolic link in a directory another user can write" in ret["comment"]
    assert untouched(target) == ORIGINAL


def test_roots_own_link_in_roots_directory_is_followed(area):
    """Links in directories only root can change are root's (an operator's
    /var/log -> /srv/log): those keep working."""
    base, _, _ = area
    real = os.path.join(base, "real.log")
    open(real, "wb").close()
    os.symlink(real, os.path.join(base, "via-link.log"))
    changes = U["mosquitto_files.ensure_owned_file"](
        os.path.join(base, "via-link.log"), MOSQUITTO_UID, MOSQUITTO_GID, 0o640)
    assert set(changes) == {"user", "group", "mode"}
    assert os.stat(real).st_uid == MOSQUITTO_UID


def test_missing_owner_under_test_is_planned_not_failed(area, state, monkeypatch):
    _, broker_dir, _ = area
    mod, opts = state
    opts["test"] = True
    ret = mod.owned_file_present(os.path.join(broker_dir, "x.log"), user="no-such-user-here",
                                 group="no-such-group-here", mode="0640")
    assert ret["result"] is None and "not present yet" in ret["changes"]["owner"]["new"]
    opts["test"] = False
    ret = mod.owned_file_present(os.path.join(broker_dir, "x.log"), user="no-such-user-here",
                                 group="no-such-group-here", mode="0640")
    assert ret["result"] is False and "does not exist" in ret["comment"]


def test_missing_directory_under_test_is_planned_not_failed(area, state):
    """test=True on a fresh host: the log directory is another state's to
    create, so the file is planned with it; a real run still needs it."""
    _, broker_dir, _ = area
    mod, opts = state
    missing = os.path.join(broker_dir, "not-made-yet", "x.log")
    opts["test"] = True
    ret = mod.owned_file_present(missing, user="mosquitto", group="mosquitto", mode="0640")
    assert ret["result"] is None and "file" in ret["changes"], ret
    assert not os.path.exists(os.path.dirname(missing)), "test=True changed the host"
    opts["test"] = False
    ret = mod.owned_file_present(missing, user="mosquitto", group="mosquitto", mode="0640")
    assert ret["result"] is False and "No such file or directory" in ret["comment"]


# --- the log's tail in mosquitto_broker.listening's comment -----------------


def closed_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def failed_listening(mod, log, log_user="mosquitto"):
    ret = mod.listening("mosquitto", [["127.0.0.1", closed_port()]], timeout=0,
                        log_file=log, log_user=log_user)
    assert ret["result"] is False
    return ret


def test_log_tail_through_a_planted_link_is_not_read(area, state):
    _, broker_dir, target = area
    mod, _ = state
    log = os.path.join(broker_dir, "mosquitto.log")
    plant_link(target, log)
    ret = failed_listening(mod, log)
    assert "log file" in ret["comment"] and "is not a regular file (symlink?), not read" in ret["comment"]
    assert "not-really-a-hash" not in ret["comment"]
    assert untouched(target) == ORIGINAL


def test_log_tail_of_a_hard_link_or_a_strangers_file_is_not_read(area, state):
    _, broker_dir, target = area
    mod, _ = state
    log = os.path.join(broker_dir, "mosquitto.log")
    os.link(target, log)
    assert "not-really-a-hash" not in failed_listening(mod, log)["comment"]
    os.unlink(log)
    as_nobody(lambda: open(log, "w").write("written by someone else\n"))
    ret = failed_listening(mod, log)
    assert "owned by nobody, not as expected; not read" in ret["comment"]
    assert "written by someone else" not in ret["comment"]


def test_log_tail_is_bounded_and_printable(area, state):
    _, broker_dir, _ = area
    mod, _ = state
    log = os.path.join(broker_dir, "mosquitto.log")
    with open(log, "wb") as fh:
        fh.write(b"old line\n" * 100_000)
        fh.write(b"1700000000: Error: Unable to open pwfile \x1b[31m/etc/mosquitto/passwd.\n")
    os.chown(log, MOSQUITTO_UID, MOSQUITTO_GID)
    comment = failed_listening(mod, log)["comment"]
    tail = comment.split("Last lines of", 1)[1].splitlines()[1:]
    assert len(tail) == 15 and tail[-1] == "1700000000: Error: Unable to open pwfile ?[31m/etc/mosquitto/passwd."
    assert failed_listening(mod, os.path.join(broker_dir, "none.log"))["comment"].endswith("(no log file)")


# --- a container's data volume: owner of every entry, no link followed -----


def test_owned_tree_changes_real_entries_and_skips_links(area, state):
    base, broker_dir, target = area
    mod, opts = state
    os.mkdir(os.path.join(broker_dir, "sub"))
    with open(os.path.join(broker_dir, "sub", "mosquitto.db"), "wb") as fh:
        fh.write(b"db")
    plant_link(target, os.path.join(broker_dir, "evil"))
    plant_link(base, os.path.join(broker_dir, "evil-dir"))
    os.link(target, os.path.join(broker_dir, "hard"))

    opts["test"] = True
    planned = mod.owned_tree(broker_dir, user="mosquitto", group="mosquitto")
    assert planned["result"] is None, planned
    assert planned["changes"]["owner"]["old"] == "3 entries owned otherwise"  # ., sub, sub/mosquitto.db
    assert os.stat(broker_dir).st_uid == NOBODY.pw_uid

    opts["test"] = False
    ret = mod.owned_tree(broker_dir, user="mosquitto", group="mosquitto")
    assert ret["result"] is True and "hard (hard-linked)" in ret["comment"]
    for rel in (".", "sub", "sub/mosquitto.db"):
        st = os.stat(os.path.join(broker_dir, rel))
        assert (st.st_uid, st.st_gid) == (MOSQUITTO_UID, MOSQUITTO_GID), rel
    assert untouched(target) == ORIGINAL
    assert os.stat(base).st_uid == 0
    assert_nothing_of(target, {k: v for k, v in ret.items() if k != "name"})

    again = mod.owned_tree(broker_dir, user="mosquitto", group="mosquitto")
    assert again["changes"] == {} and again["result"] is True
