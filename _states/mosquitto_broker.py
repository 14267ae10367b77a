"""
Check that the broker really serves its listeners after the service states.

``service.running`` trusts the init system: a broker that exits a moment
after start (bad key permissions, a clashing option) still reports success.
This state waits until each port accepts a TCP connection and otherwise fails
with the tail of the broker's log, so the run says what went wrong.

The log lives in a directory the broker's user can write, and the comment
goes to the master's job cache: the tail is read without following links
(a planted link to /etc/shadow is reported, not printed). For the same
reason ``owned_file_present`` gives such a file its owner and mode without
following a link; Salt's file states would chown the link's target.
"""

import re
import socket
import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "mosquitto_broker"


def __virtual__():
    return __virtualname__


def _accepts(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


# Terminal escapes and other control characters from the log are not passed on.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _log_owners(log_user):
    """uids allowed to own the log: its user's and root's (a log the broker
    made while it still started as root); None (any) without log_user."""
    if not log_user:
        return None
    try:
        uid, _ = __utils__["mosquitto_files.owner_ids"](log_user, None)
    except CommandExecutionError:
        return {0}
    return {0, uid}


def _log_tail(path, lines=15, log_user=None):
    if not path:
        return "(no log file)"
    try:
        data = __utils__["mosquitto_files.read_tail_nofollow"](path, 8192, _log_owners(log_user))
    except CommandExecutionError as exc:
        return f"({exc})"
    except OSError as exc:
        return f"(log file {path} not read: {exc.strerror})"
    if data is None:
        return "(no log file)"
    text = b"\n".join(data.splitlines()[-lines:]).decode(errors="replace")
    return _CONTROL.sub("?", text)


def listening(name, ports, timeout=15, log_file=None, log_user=None):
    """
    Wait until every ``host:port`` in ``ports`` accepts a connection.

    name
        A label for the output (the service name).
    ports
        List of ``[host, port]`` pairs; use 127.0.0.1 for wildcard listeners.
    timeout
        Seconds to wait in total.
    log_file
        The broker's log, quoted in the comment on failure: its last 8 KiB
        at most, never through a link, only when it is a regular file.
    log_user
        The user the log belongs to (besides root); a log owned by anyone
        else is not quoted.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    targets = [(str(host), int(port)) for host, port in ports]
    deadline = time.monotonic() + timeout
    missing = targets
    while True:
        missing = [t for t in missing if not _accepts(*t)]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    shown = ", ".join(f"{h}:{p}" for h, p in targets)
    if not missing:
        ret["comment"] = f"{name} accepts connections on {shown}"
        return ret
    gone = ", ".join(f"{h}:{p}" for h, p in missing)
    if __opts__["test"]:
        # The service may be about to start or restart in a real run.
        ret["result"] = None
        ret["comment"] = f"{name} does not listen on {gone} yet; it would after the run"
        return ret
    ret["result"] = False
    ret["comment"] = (
        f"{name} does not accept connections on {gone} after {timeout}s. "
        f"Last lines of {log_file or 'its log'}:\n{_log_tail(log_file, log_user=log_user)}"
    )
    return ret


def _owned_file_ids(user, group):
    """(uid, gid), or (None, None) under test=True when the owner does not
    exist yet (the package that creates it comes earlier in the same run)."""
    try:
        return __utils__["mosquitto_files.owner_ids"](user, group)
    except CommandExecutionError:
        if __opts__["test"]:
            return None, None
        raise


def _as_owner(ret, name, user, group, work):
    """(uid, work(uid, gid)) for the owner ``user:group``; a refusal or an
    OS error fails ``ret`` naming ``name`` and gives (None, None)."""
    try:
        uid, gid = _owned_file_ids(user, group)
        return uid, work(uid, gid)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret.update(result=False, comment=f"{name}: {exc}")
    except OSError as exc:
        ret.update(result=False, comment=f"{name}: {exc.strerror}")
    return None, None


def owned_file_present(name, user, group, mode):
    """
    A regular file ``name`` owned ``user:group`` with ``mode``, in a
    directory another user can write (the broker's log directory).

    Its content is the service's own: a missing file is created empty, an
    existing one is never read or rewritten. Root never follows a link
    there: a symbolic link at ``name`` is removed (the link, not what it
    points to) and the file created in its place; a directory, FIFO,
    socket, device or a file with other hard links is left alone and the
    state fails naming it. Under test=True nothing changes and the planned
    changes are listed.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    files = "mosquitto_files."
    test = __opts__["test"]

    def fix(uid, gid):
        mode_int = __utils__[files + "normalize_mode"](mode)
        return mode_int, __utils__[files + "ensure_owned_file"](name, uid, gid, mode_int, test=test)

    uid, done = _as_owner(ret, name, user, group, fix)
    if ret["result"] is False:
        return ret
    mode_int, changes = done
    if uid is None and test:
        changes.setdefault("owner", {"old": None, "new": f"{user}:{group} (not present yet)"})
    if not changes:
        ret["comment"] = f"{name} is a regular file owned {user}:{group} mode {mode_int:04o}"
        return ret
    ret["changes"] = changes
    if test:
        ret.update(result=None, comment=f"{name}: would {_summary(changes, 0)}")
    else:
        ret["comment"] = f"{name}: {_summary(changes, 1)}"
    return ret


_WORDS = {  # change key -> (planned, done)
    "symlink": ("remove the symbolic link there (not followed)", "removed the symbolic link there (not followed)"),
    "file": ("create it empty", "created it empty"),
    "user": ("set its user", "set its user"),
    "group": ("set its group", "set its group"),
    "mode": ("set its mode", "set its mode"),
    "owner": ("set its owner", "set its owner"),
}


def _summary(changes, tense):
    return ", ".join(words[tense] for key, words in _WORDS.items() if key in changes)


def owned_tree(name, user, group):
    """
    Every directory and regular file under ``name`` (a directory another
    user writes, such as a container's data volume) owned ``user:group``.

    Salt's ``file.directory`` with ``recurse`` decides by name and then
    chowns by name, so an entry swapped for a link or a hard link meanwhile
    would hand another file to that user. This never follows a link and
    changes each inode through a descriptor after checking it; links,
    hard-linked files, FIFOs, sockets and devices are left alone and named
    in the comment. Changes list how many entries were (or would be)
    changed, never their content.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    test = __opts__["test"]
    uid, found = _as_owner(ret, name, user, group,
                           lambda uid, gid: __utils__["mosquitto_files.chown_tree_nofollow"](name, uid, gid, test=test))
    if ret["result"] is False:
        return ret
    changed, skipped = found
    note = f"; left alone (not followed): {', '.join(skipped[:10])}" if skipped else ""
    if uid is None and test:
        changed = changed or ["."]
    if not changed:
        ret["comment"] = f"everything under {name} is owned {user}:{group}{note}"
        return ret
    ret["changes"] = {"owner": {"old": f"{len(changed)} entries owned otherwise", "new": f"{user}:{group}"}}
    verb = "would be given" if test else "given"
    ret["comment"] = f"{len(changed)} entries under {name} {verb} owner {user}:{group}{note}"
    if test:
        ret["result"] = None
    return ret
