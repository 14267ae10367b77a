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
    changes = {}
    if mode is not None and stat.S_IMODE(st.st_mode) != mode:
        changes["mode"] = {"old": f"{stat.S_IMODE(st.st_mode):04o}", "new": f"{mode:04o}"}
    if uid is not None and st.st_uid != uid:
        changes["user"] = {"old": name_of("user", st.st_uid), "new": name_of("user", uid)}
    if gid is not None and st.st_gid != gid:
        changes["group"] = {"old": name_of("group", st.st_gid), "new": name_of("group", gid)}
    return changes


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
