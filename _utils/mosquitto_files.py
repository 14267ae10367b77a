"""
Files the formula's modules write themselves: CA and server keys,
certificates, the CA's issue record, password files, generated secrets and
bridge sections. Each holds or guards a secret, so every writer follows the
same rules, kept here once:

- A file appears under its name complete, with its final owner and mode: it
  is written to a temp file in the same directory whose mode and owner are
  set before a single byte goes in (a private key is never readable by
  anyone else, not even for an instant), fsynced, then renamed over the
  name, and the directory is fsynced so the rename survives a crash.
- ``overwrite=False`` puts the file in place with a hard link, which fails
  when the name exists: no race can replace a CA file created meanwhile.
- Owners are looked up by name before anything is written, with an error
  naming the missing user or group.
- A secret file (generated password, bridge password) is read by one
  reader, :py:func:`read_secret`, that never logs or returns more than the
  secret itself.

Reached from the execution and state modules as
``__utils__["mosquitto_files.<function>"]`` (Salt syncs ``_utils/`` with
``saltutil.sync_all`` and ``state.apply ... sync_mods=all``).
"""
import grp
import os
import pwd
import stat
import tempfile

import salt.utils.files
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "mosquitto_files"

def __virtual__():
    return __virtualname__


def owner_ids(user, group, group_hint=None):
    """(uid, gid) of user and group names; None stays None ("leave as is")
    and an int is taken as an id. Raises CommandExecutionError naming the
    one that does not exist, before the caller writes anything; group_hint
    is added to the group's message (e.g. "is mosquitto installed?")."""
    uid = gid = None
    if user is not None:
        try:
            uid = user if isinstance(user, int) else pwd.getpwnam(user).pw_uid
        except KeyError:
            raise CommandExecutionError(f"user {user!r} does not exist") from None
    if group is not None:
        try:
            gid = group if isinstance(group, int) else grp.getgrnam(group).gr_gid
        except KeyError:
            hint = f" ({group_hint})" if group_hint else ""
            raise CommandExecutionError(f"group {group!r} does not exist{hint}") from None
    return uid, gid


def name_of(kind, ident):
    """The name of uid/gid ``ident`` (kind "user" or "group"), else the number as text."""
    try:
        return pwd.getpwuid(ident).pw_name if kind == "user" else grp.getgrgid(ident).gr_name
    except KeyError:
        return str(ident)


def normalize_mode(mode):
    """A file mode as an int, or None for None. Same convention as
    file.managed: '0640', '640', 640 and '0o640' all mean 0o640."""
    if mode is None:
        return None
    text = str(mode).replace("0o", "0").strip('"').strip("'").lstrip("0").zfill(4)
    try:
        value = int(text, 8)
    except ValueError:
        raise SaltInvocationError(f"mode {mode!r} is not an octal file mode") from None
    if value > 0o7777:
        raise SaltInvocationError(f"mode {mode!r} is not an octal file mode")
    return value


def attr_changes(path, uid=None, gid=None, mode=None):
    """How the existing file ``path`` differs from the wanted owner and mode:
    ``{'mode'|'user'|'group': {'old', 'new'}}`` (names, modes as '0640'),
    empty when it does not differ or does not exist. None means "any"."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    return _owner_mode_changes(st, uid, gid, mode)


def set_attrs(path, uid=None, gid=None, mode=None):
    """Give an existing file its owner and mode (None leaves that part)."""
    os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
    if mode is not None:
        os.chmod(path, mode)


def fsync_dir(directory):
    """Make a rename, link or unlink in ``directory`` durable."""
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def atomic_write(path, data, mode, uid=None, gid=None, overwrite=True):
    """Write bytes ``data`` to ``path`` atomically (see the module's rules).

    uid/gid None keep the process's own. A missing directory is an error
    (the caller manages it). With overwrite=False an existing ``path`` is
    never replaced: CommandExecutionError "... appeared meanwhile".
    """
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise CommandExecutionError(f"directory {directory} does not exist (manage it before {path})")
    # Hidden, and never *.conf: mosquitto's include_dir must not read it.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), mode)
            if uid is not None or gid is not None:
                os.fchown(fh.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError as exc:
                raise CommandExecutionError(f"{path} appeared meanwhile; not overwriting it") from exc
            os.unlink(tmp)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(directory)


def replace(src, dst):
    """Rename ``src`` over ``dst`` (same directory) durably."""
    os.replace(src, dst)
    fsync_dir(os.path.dirname(os.path.abspath(dst)))


def read_secret(path):
    """The secret in file ``path`` (surrounding blanks stripped), or None
    when the file is missing or empty. Never logs the value; another read
    error raises CommandExecutionError naming the file."""
    try:
        with salt.utils.files.fopen(path, "r", encoding="utf-8") as fh:
            secret = fh.read().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CommandExecutionError(f"cannot read secret file {path}: {exc}") from exc
    return secret or None


# --- files in directories another user can write ---------------------------
#
# The broker's log, data and run directories belong to its user: a
# compromised broker can put anything there, a symbolic link to /etc/shadow
# included. Root never follows such a link (DESIGN "Trust boundaries"): the
# path is walked one directory at a time with openat(2), and inside a
# directory another user can write nothing is followed; owner and mode are
# set with fchown/fchmod on a descriptor whose inode was checked, never by
# name. Links in directories only root can change (/, /var, /run) are
# followed: root or the operator put them there.

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO someone planted must not hang the run.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def dir_is_trusted(st):
    """True for a directory only root can add, remove or rename entries in."""
    return st.st_uid == 0 and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def kind_of(st):
    """'a symbolic link', 'a directory', ... for an lstat result."""
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
             (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISREG, "a regular file"))
    return next((text for test, text in kinds if test(st.st_mode)), "an unknown kind of file")


def lstat_at(dir_fd, name):
    """lstat of ``name`` in the open directory, None when it does not exist."""
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _enter_dir(dir_fd, name, shown):
    """Descriptor of subdirectory ``name``; a link is followed only where
    root alone could have made it."""
    if dir_is_trusted(os.fstat(dir_fd)):
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    st = lstat_at(dir_fd, name)
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise CommandExecutionError(
            f"{shown} is a symbolic link in a directory another user can write; not followed")
    try:
        # O_NOFOLLOW: a link swapped in since the lstat fails (ENOTDIR).
        return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
    except NotADirectoryError:
        raise CommandExecutionError(f"{shown} is not a directory; not followed") from None


def open_parent_dir(path):
    """(descriptor of path's directory, base name, whether that directory is
    trusted) -- see the section's comment. The caller closes the descriptor.
    Raises CommandExecutionError naming a component that is a link in a
    directory another user can write, FileNotFoundError for a missing one."""
    parts = os.path.normpath(os.path.abspath(path)).split("/")[1:]
    if not parts or not parts[-1]:
        raise SaltInvocationError(f"{path!r} names no file")
    fd = os.open("/", _DIR_FLAGS)
    try:
        for depth, name in enumerate(parts[:-1], start=1):
            next_fd = _enter_dir(fd, name, "/" + "/".join(parts[:depth]))
            os.close(fd)
            fd = next_fd
        return fd, parts[-1], dir_is_trusted(os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise


def _open_checked(dir_fd, name, path, before):
    """Descriptor of the regular file ``name`` that lstat saw as ``before``;
    refuses when it was swapped meanwhile or has other names (a hard link
    to a file elsewhere would be changed through this one)."""
    try:
        fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:  # ELOOP: became a link since the lstat
        raise CommandExecutionError(f"{path} changed while being checked ({exc.strerror}); left alone") from None
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CommandExecutionError(f"{path} changed while being checked; left alone")
    if st.st_nlink != 1:
        os.close(fd)
        raise CommandExecutionError(
            f"{path} has {st.st_nlink} hard links (another name may be a file elsewhere); left alone")
    return fd


def _owner_mode_changes(st, uid, gid, mode):
    """attr_changes() for a stat result already in hand."""
    changes = {}
    if mode is not None and stat.S_IMODE(st.st_mode) != mode:
        changes["mode"] = {"old": f"{stat.S_IMODE(st.st_mode):04o}", "new": f"{mode:04o}"}
    if uid is not None and st.st_uid != uid:
        changes["user"] = {"old": name_of("user", st.st_uid), "new": name_of("user", uid)}
    if gid is not None and st.st_gid != gid:
        changes["group"] = {"old": name_of("group", st.st_gid), "new": name_of("group", gid)}
    return changes


def _set_owner_mode(fd, uid, gid, mode):
    # chown first: it clears set-id bits that the chmod then sets again.
    if uid is not None or gid is not None:
        os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
    if mode is not None:
        os.fchmod(fd, mode)


def _create_empty(dir_fd, name, path, uid, gid, mode):
    # O_EXCL|O_NOFOLLOW: whatever appeared meanwhile is neither opened nor followed.
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dir_fd)
    except FileExistsError:
        raise CommandExecutionError(f"{path} appeared while being created; left alone") from None
    try:
        _set_owner_mode(fd, uid, gid, 0o600 if mode is None else mode)
    finally:
        os.close(fd)


def _created_changes(uid, gid, mode):
    new = {"file": {"old": None, "new": "created empty"}}
    if mode is not None:
        new["mode"] = {"old": None, "new": f"{mode:04o}"}
    if uid is not None:
        new["user"] = {"old": None, "new": name_of("user", uid)}
    if gid is not None:
        new["group"] = {"old": None, "new": name_of("group", gid)}
    return new


def _replace_untrusted_link(dir_fd, name, test):
    """unlink(2) removes the link itself, never its target."""
    if not test:
        os.unlink(name, dir_fd=dir_fd)
    # The target is not shown: it is whatever the link's owner chose.
    return {"symlink": {"old": "a symbolic link (not followed)", "new": "removed"}}


def ensure_owned_file(path, uid=None, gid=None, mode=None, test=False):
    """Make ``path`` a regular file owned uid:gid with ``mode`` without ever
    following a link another user could have planted, and return the
    changes (planned ones when ``test``; nothing is touched then).

    - missing: created empty (content is the service's: never read or written);
    - a link in a directory another user can write: the link is removed and
      the file created; what it pointed to is neither touched nor shown;
    - a regular file: owner and mode set through a descriptor of that very
      inode; one with more than one hard link is refused;
    - anything else (directory, FIFO, socket, device): refused.
    Refusals raise CommandExecutionError naming the path.
    """
    try:
        dir_fd, name, trusted = open_parent_dir(path)
    except FileNotFoundError:
        if not test:
            raise
        # test=True on a fresh host: the directory is another state's to
        # create (it has not run), so the file would be created with it.
        return _created_changes(uid, gid, mode)
    try:
        st = lstat_at(dir_fd, name)
        if st is not None and stat.S_ISLNK(st.st_mode) and trusted:
            st = os.stat(name, dir_fd=dir_fd)  # root's own link: its target is the file
        changes = {}
        if st is not None and stat.S_ISLNK(st.st_mode):
            changes.update(_replace_untrusted_link(dir_fd, name, test))
            st = None
        if st is None:
            changes.update(_created_changes(uid, gid, mode))
            if not test:
                _create_empty(dir_fd, name, path, uid, gid, mode)
            return changes
        if not stat.S_ISREG(st.st_mode):
            raise CommandExecutionError(f"{path} is {kind_of(st)}, not a regular file; left alone")
        return _fix_regular(dir_fd, name, path, st, (uid, gid, mode), test, follow=trusted)
    finally:
        os.close(dir_fd)


def _fix_regular(dir_fd, name, path, st, wanted, test, follow):
    if follow:  # a trusted directory: plain open, links there are root's
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    else:
        fd = _open_checked(dir_fd, name, path, st)
    try:
        changes = _owner_mode_changes(os.fstat(fd), *wanted)
        if changes and not test:
            _set_owner_mode(fd, *wanted)
        return changes
    finally:
        os.close(fd)


def read_tail_nofollow(path, max_bytes=8192, uids=None):
    """The last ``max_bytes`` of the regular file ``path``, read without
    following a link another user could have planted. None when it does
    not exist. Raises CommandExecutionError saying why it was not read:
    not a regular file (a link, a FIFO ...), more than one hard link, or an
    owner outside ``uids`` (when given)."""
    try:
        dir_fd, name, _ = open_parent_dir(path)
    except FileNotFoundError:
        return None
    try:
        st = lstat_at(dir_fd, name)
        if st is None:
            return None
        if not stat.S_ISREG(st.st_mode):
            raise CommandExecutionError(f"log file {path} is not a regular file (symlink?), not read")
        fd = _open_checked(dir_fd, name, path, st)
    finally:
        os.close(dir_fd)
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if uids is not None and st.st_uid not in uids:
            raise CommandExecutionError(
                f"log file {path} is owned by {name_of('user', st.st_uid)}, not as expected; not read")
        fh.seek(max(0, st.st_size - max_bytes))
        return fh.read(max_bytes)


def _owned_otherwise(st, uid, gid):
    return (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid)


def chown_tree_nofollow(path, uid=None, gid=None, test=False):
    """Give every directory and regular file under ``path`` (itself
    included) the owner uid:gid, changing nothing when ``test``; returns
    (names changed or to change, names skipped) relative to ``path``.

    Made for a directory another user writes (a container's data volume):
    os.fwalk descends by descriptor and never into a link; each entry is
    opened relative to its directory's descriptor without following a link
    and changed with fchown once it is the inode lstat saw. Links are left
    as they are (a link's owner matters to nobody), and so are files with
    more than one hard link (another name of them may be a file elsewhere)
    and FIFOs, sockets, devices: those are returned as skipped.
    """
    dir_fd, name, _ = open_parent_dir(path)
    try:
        top_fd = _enter_dir(dir_fd, name, path)
    finally:
        os.close(dir_fd)
    changed, skipped = [], []
    try:
        if _owned_otherwise(os.fstat(top_fd), uid, gid):
            changed.append(".")
            if not test:
                os.fchown(top_fd, -1 if uid is None else uid, -1 if gid is None else gid)
        for root, dirs, files, root_fd in os.fwalk(".", dir_fd=top_fd, follow_symlinks=False):
            for entry in dirs + files:
                _chown_entry(root_fd, entry, os.path.normpath(os.path.join(root, entry)),
                             (uid, gid, test), (changed, skipped))
    finally:
        os.close(top_fd)
    return changed, skipped


def _chown_entry(dir_fd, entry, shown, wanted, found):
    uid, gid, test = wanted
    changed, skipped = found
    st = lstat_at(dir_fd, entry)
    if st is None or not _owned_otherwise(st, uid, gid):
        return
    regular = stat.S_ISREG(st.st_mode) and st.st_nlink == 1
    if not (regular or stat.S_ISDIR(st.st_mode)):
        skipped.append(f"{shown} ({kind_of(st) if st.st_nlink == 1 else 'hard-linked'})")
        return
    if test:
        changed.append(shown)
        return
    # By descriptor of the inode just checked: an entry swapped meanwhile
    # (a link, a hard link to a file elsewhere) is skipped, never changed.
    try:
        fd = os.open(entry, _FILE_FLAGS, dir_fd=dir_fd)
    except OSError:
        skipped.append(f"{shown} (changed while being checked)")
        return
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or now.st_nlink != st.st_nlink:
            skipped.append(f"{shown} (changed while being checked)")
            return
        os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        changed.append(shown)
    finally:
        os.close(fd)
