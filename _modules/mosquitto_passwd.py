"""
Mosquitto password files in pure Python (no ``mosquitto_passwd`` binary).

Writes the format a mosquitto 2.0.x broker reads::

    user:$7$<iterations>$<base64 12-byte salt>$<base64 PBKDF2-HMAC-SHA512, 64 bytes>

and reads the older ``$6$`` entries (``SHA512(password + salt)``) as well.

Idempotence: random salts would make a naive rewrite change the file on every
run, so an existing entry is kept as it is when it still verifies against the
wanted password. Only changed lines are rewritten; comments and lines of users
this module does not manage (with ``prune=False``) stay byte for byte.

Performance: verifying one entry costs one PBKDF2 with its own iteration count
(101 by default), about 0.06 ms here, so a no-op run over 10,000 users takes
about 0.6 s (bench/apply.py times a whole no-op apply with 10,000 users).
"""

import base64
import binascii
import collections
import hashlib
import hmac
import os
import secrets
import stat

import salt.utils.files
from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "mosquitto_passwd"

SALT_LEN = 12  # what 2.0.x accepts (it drops entries with other salt sizes)
HASH_LEN = 64  # SHA-512 output
DEFAULT_ITERATIONS = 101  # mosquitto_passwd 2.0.x default
# C isspace() in the "C" locale: what mosquitto trims around user and hash.
_C_BLANKS = " \t\n\v\f\r"


def __virtual__():
    # hashlib.pbkdf2_hmac is always there; the file helpers are the formula's _utils.
    if "mosquitto_files.atomic_write" not in __utils__ or "mosquitto_hashes.problem" not in __utils__:
        return (False, "mosquitto_passwd needs the formula's _utils (run saltutil.sync_all)")
    return __virtualname__


# --------------------------------------------------------------------------
# hashing
# --------------------------------------------------------------------------


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _unb64(text):
    # Strict: a broker that cannot decode an entry drops that user.
    return base64.b64decode(text.encode("ascii"), validate=True)


def _password_bytes(password):
    if not isinstance(password, str):
        raise SaltInvocationError("password must be a string")
    return password.encode("utf-8")


def hash_password(password, iterations=DEFAULT_ITERATIONS, salt=None):
    """
    Return a ``$7$`` hash of ``password`` as mosquitto 2.0.x writes it.

    salt
        12 random bytes unless given (tests pass a fixed one).

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_passwd.hash_password 'secret'
    """
    iterations = _check_iterations(iterations)
    if salt is None:
        salt = os.urandom(SALT_LEN)
    digest = hashlib.pbkdf2_hmac(
        "sha512", _password_bytes(password), salt, iterations, HASH_LEN
    )
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def _parse_hash(hashed):
    """Split a hash into (kind, iterations, salt, digest); ValueError if malformed."""
    if not isinstance(hashed, str):
        raise ValueError("not a string")
    parts = hashed.split("$")
    # "$7$101$salt$hash" -> ["", "7", "101", "salt", "hash"]
    if len(parts) == 5 and parts[:2] == ["", "7"]:
        if not parts[2].isdigit() or not 1 <= int(parts[2]) <= _max_iterations():
            # Above the bound, verifying alone would cost a PBKDF2 that long.
            raise ValueError("bad iteration count")
        return "7", int(parts[2]), _unb64(parts[3]), _unb64(parts[4])
    if len(parts) == 4 and parts[:2] == ["", "6"]:
        return "6", None, _unb64(parts[2]), _unb64(parts[3])
    raise ValueError("not a $7$ or $6$ hash")


def verify_password(password, hashed):
    """
    True when ``password`` matches the ``$7$`` or ``$6$`` hash ``hashed``.

    Malformed hashes simply do not match. The comparison is constant-time.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_passwd.verify_password 'secret' '$7$101$...'
    """
    try:
        kind, iterations, salt, digest = _parse_hash(hashed)
    except (ValueError, binascii.Error):
        return False
    secret = _password_bytes(password)
    if kind == "7":
        candidate = hashlib.pbkdf2_hmac("sha512", secret, salt, iterations, len(digest) or 1)
    else:
        candidate = hashlib.sha512(secret + salt).digest()
    return hmac.compare_digest(candidate, digest)


def check_hash(hashed):
    """
    Validate a pre-hashed entry; raise SaltInvocationError unless it has the
    one shape _utils/mosquitto_hashes.py accepts: what a 2.0.x broker keeps
    (a 12-byte salt and a 64-byte hash for both ``$7$`` and ``$6$``) with
    at most ``mosquitto_hashes.MAX_ITERATIONS`` PBKDF2 rounds, in canonical
    base64 and nothing else. The message never quotes the hash. Returns True.
    """
    problem = __utils__["mosquitto_hashes.problem"](hashed)
    if problem:
        raise SaltInvocationError(f"invalid password hash: {problem}")
    return True


def _broker_accepts(hashed):
    try:
        return check_hash(hashed)
    except SaltInvocationError:
        return False


def check_username(name):
    """
    Validate a username for the password file; raise SaltInvocationError
    naming it otherwise. Returns True.

    Rejected: non-strings, empty names, ``:`` (the field separator), control
    characters (a newline would start a new entry), blanks at either end
    (mosquitto trims them, so the broker would see another name) and a
    leading ``#`` (the broker reads that line as a comment).
    """
    if not isinstance(name, str):
        raise SaltInvocationError(f"username {name!r} must be a string")
    problem = None
    if not name:
        problem = "is empty"
    elif ":" in name:
        problem = "contains ':'"
    elif any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        problem = "contains a control character"
    elif name.strip() != name:
        problem = "starts or ends with a blank"
    elif name.startswith("#"):
        problem = "starts with '#' (mosquitto reads the line as a comment)"
    elif len(name.encode("utf-8", "surrogatepass")) > 65535:
        problem = "is longer than 65535 bytes"
    else:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            problem = "is not valid UTF-8"
    if problem:
        raise SaltInvocationError(f"username {name!r} {problem}")
    return True


def _max_iterations():
    return __utils__["mosquitto_hashes.max_iterations"]()


def _check_iterations(iterations):
    # The same bound as for hashes from elsewhere: every login pays it.
    top = _max_iterations()
    if isinstance(iterations, bool) or not isinstance(iterations, int) or not 1 <= iterations <= top:
        raise SaltInvocationError(f"iterations must be an integer from 1 to {top}, not {iterations!r}")
    return iterations


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------


def _parse_line(line):
    """(user, hash) for an entry line, or None for a line mosquitto skips.

    Mirrors pwfile__parse(): skip '#' lines and lines without ':', then
    strtok(":") twice (which also skips empty fields) and trim C blanks.
    """
    if line.startswith("#") or ":" not in line:
        return None
    fields = [field for field in line.split(":") if field]
    if not fields:
        return None
    user = fields[0].strip(_C_BLANKS)
    hashed = fields[1].strip(_C_BLANKS) if len(fields) > 1 else ""
    if not user:
        return None
    return user, hashed


def _read_entries(path):
    """List of (raw line, user or None, hash or None); None if no file.

    Bytes are split on b"\\n" only, like fgets(); undecodable bytes survive a
    rewrite through surrogateescape.
    """
    try:
        with salt.utils.files.fopen(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CommandExecutionError(f"cannot read password file {path}: {exc}") from exc
    # Not str.splitlines(): that also splits at \r, \v, \f; fgets() does not.
    lines = data.decode("utf-8", "surrogateescape").split("\n")
    if lines[-1] == "":
        lines.pop()  # the file ended with a newline (or is empty)
    return [(raw,) + (_parse_line(raw) or (None, None)) for raw in lines]


def read_file(path):
    """
    Return an ordered dict ``{user: hash}`` parsed the way mosquitto parses
    ``path``. Empty if the file does not exist. Lines with a user but no hash
    are skipped (the broker skips them too); with duplicate users the first
    entry is returned.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_passwd.read_file /etc/mosquitto/passwd
    """
    result = collections.OrderedDict()
    for _, user, hashed in _read_entries(path) or []:
        if user is not None and hashed and user not in result:
            result[user] = hashed
    return result


# --------------------------------------------------------------------------
# planning and writing
# --------------------------------------------------------------------------


def _normalize_users(users):
    """Validate everything up front; {user: ("password"|"hash", value)}."""
    if users is None:
        users = {}
    if not isinstance(users, dict):
        raise SaltInvocationError("users must be a mapping of username to settings")
    wanted = collections.OrderedDict()
    for name, spec in users.items():
        check_username(name)
        if not isinstance(spec, dict):
            raise SaltInvocationError(
                f"user {name!r}: expected a mapping with 'password' or 'password_hash'"
            )
        unknown = set(spec) - {"password", "password_hash"}
        if unknown:
            raise SaltInvocationError(f"user {name!r}: unknown keys {sorted(unknown)}")
        if ("password" in spec) == ("password_hash" in spec):
            raise SaltInvocationError(
                f"user {name!r}: give exactly one of 'password' or 'password_hash'"
            )
        if "password" in spec:
            password = spec["password"]
            if not isinstance(password, str):
                raise SaltInvocationError(
                    f"user {name!r}: password must be a string (quote it in YAML)"
                )
            if not password:
                raise SaltInvocationError(f"user {name!r}: password is empty")
            if "\0" in password:
                # The broker compares C strings: it could never match.
                raise SaltInvocationError(f"user {name!r}: password contains a NUL byte")
            wanted[name] = ("password", password)
        else:
            try:
                check_hash(spec["password_hash"])
            except SaltInvocationError as exc:
                raise SaltInvocationError(f"user {name!r}: {exc}") from None
            wanted[name] = ("hash", spec["password_hash"])
    return wanted


def _matches(want, hashed):
    kind, value = want
    if kind == "hash":
        return hmac.compare_digest(value.encode(), hashed.encode("utf-8", "surrogateescape"))
    # A hash the broker would drop (e.g. a 2.1 64-byte salt) must be rewritten
    # even if it verifies.
    return _broker_accepts(hashed) and verify_password(value, hashed)


def _diff(entries, wanted, prune):
    """Decide every line; returns (output items, status per user).

    Output items are ("raw", line) kept verbatim or ("new", user) to be
    written from `wanted`. Status: added / updated / removed / unchanged.
    """
    out, status = [], collections.OrderedDict()
    for raw, user, hashed in entries or []:
        if user is None:
            out.append(("raw", raw))
        elif user in wanted:
            if user in status:
                # Duplicate line: which one the broker uses is not defined.
                status[user] = "updated"
            elif _matches(wanted[user], hashed):
                status[user] = "unchanged"
                out.append(("raw", raw))
            else:
                status[user] = "updated"
                out.append(("new", user))
        elif prune:
            status[user] = "removed"
        else:
            out.append(("raw", raw))
    for user in wanted:
        if user not in status:
            status[user] = "added"
            out.append(("new", user))
    return out, status


def _normalize_mode(mode):
    # Same convention as file.managed: '0640', '640' and YAML 0640 all work.
    return __utils__["mosquitto_files.normalize_mode"](mode)


def _lookup_owner(user, group):
    """(uid, gid), None meaning 'leave as is'; fails before anything is written."""
    return __utils__["mosquitto_files.owner_ids"](user, group, group_hint="is mosquitto installed?")


def _attr_changes(path, uid, gid, mode):
    """{'mode'|'user'|'group': {'old', 'new'}} for an existing file."""
    return __utils__["mosquitto_files.attr_changes"](path, uid, gid, mode)


def _plan(path, users, prune, user, group, mode):
    if not isinstance(prune, bool):
        raise SaltInvocationError(f"prune must be True or False, not {prune!r}")
    wanted = _normalize_users(users)
    uid, gid = _lookup_owner(user, group)
    mode = _normalize_mode(mode)
    entries = _read_entries(path)
    out, status = _diff(entries, wanted, prune)
    report = {
        key: [name for name, state in status.items() if state == key]
        for key in ("added", "updated", "removed", "unchanged")
    }
    report["created"] = entries is None
    report.update(_attr_changes(path, uid, gid, mode))
    report["changed"] = bool(
        report["created"]
        or report["added"]
        or report["updated"]
        or report["removed"]
        or any(key in report for key in ("mode", "user", "group"))
    )
    return report, out, wanted, (uid, gid, mode)


def plan(path, users, prune=True, user=None, group=None, mode=None, iterations=None):
    """
    Report what :py:func:`manage` would change, without writing anything.

    users
        ``{username: {"password": "plain"}}`` or
        ``{username: {"password_hash": "$7$..."}}`` (exactly one of them).
        An entry that verifies against the plain password is kept as is;
        a pre-hashed entry is compared literally.

    prune
        Remove users that are in the file but not in ``users``.

    user, group, mode
        When given, also report owner/mode differences of an existing file.

    Returns ``added``, ``updated``, ``removed``, ``unchanged`` (usernames,
    never secrets), ``created`` (the file does not exist yet), ``changed``
    and, when they differ, ``mode``/``user``/``group`` as ``{old, new}``.
    ``iterations`` is only validated (so a dry run fails where a real one would).
    """
    if iterations is not None:
        _check_iterations(iterations)
    return _plan(path, users, prune, user, group, mode)[0]


def _atomic_write(path, data, uid, gid, mode):
    """Owner and mode set before the rename, file and directory fsynced: the
    live file never has the wrong permissions and a failure leaves the old
    file whole (see _utils/mosquitto_files.py)."""
    __utils__["mosquitto_files.atomic_write"](path, data, mode, uid, gid)


def manage(
    path,
    users,
    prune=True,
    user="root",
    group="mosquitto",
    mode="0640",
    iterations=DEFAULT_ITERATIONS,
):
    """
    Make the password file ``path`` hold exactly ``users`` (see :py:func:`plan`).

    Owner and mode: the broker reads the file after dropping privileges, so
    the default is root:mosquitto 0640, enforced on existing files as well
    (like file.managed). Pass ``None`` for user, group or mode to keep what an
    existing file has (a new file then gets root, the process's group, 0640).

    Nothing is written when nothing changes; an owner or mode difference alone
    is fixed in place. All input is validated and the owner looked up before
    anything is written. Returns the same report as :py:func:`plan`.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_passwd.manage /etc/mosquitto/passwd \\
            '{"alice": {"password": "secret"}}'
    """
    iterations = _check_iterations(iterations)
    report, out, wanted, (uid, gid, mode) = _plan(path, users, prune, user, group, mode)
    if not report["changed"]:
        return report
    content_changed = report["created"] or any(
        report[key] for key in ("added", "updated", "removed")
    )
    try:
        if content_changed:
            data = _file_content(out, wanted, iterations)
            _write_file(path, data, report["created"], uid, gid, mode)
        else:
            __utils__["mosquitto_files.set_attrs"](path, uid, gid, mode)
    except OSError as exc:
        raise CommandExecutionError(f"cannot write password file {path}: {exc}") from exc
    return report


def _file_content(out, wanted, iterations):
    """The new file's bytes: lines kept as they were ("raw") and one
    ``user:hash`` line per wanted user (plain passwords hashed here)."""
    lines = []
    for kind, value in out:
        if kind == "raw":
            lines.append(value)
        else:
            want_kind, secret = wanted[value]
            hashed = secret if want_kind == "hash" else hash_password(secret, iterations)
            lines.append(f"{value}:{hashed}")
    return "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")


def _write_file(path, data, created, uid, gid, mode):
    """Write ``data``; a None mode, uid or gid keeps the existing file's
    (a new file gets 0640)."""
    if mode is None:
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            mode = 0o640
    if not created:
        # Keep the current owner for whatever is not managed.
        st = os.stat(path)
        uid = st.st_uid if uid is None else uid
        gid = st.st_gid if gid is None else gid
    _atomic_write(path, data, uid, gid, mode)


# --------------------------------------------------------------------------
# generated secrets (the exporter's own MQTT password)
# --------------------------------------------------------------------------


def read_secret(path):
    """
    Return the secret stored in ``path`` (surrounding blanks stripped), or
    None if the file is missing or empty. Never logs the value (the one
    reader: _utils/mosquitto_files.py).

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_passwd.read_secret /etc/mosquitto/exporter/password
    """
    return __utils__["mosquitto_files.read_secret"](path)


def ensure_secret(path, length=32):
    """
    Return the secret in ``path``, creating it first if it is missing or empty.

    A new secret is ``length`` URL-safe random characters (6 bits each, so 32
    give 192 bits), written atomically as root:root 0600 without a trailing
    newline; a missing directory is created 0700. An existing file is read,
    not changed. The value is returned so a state can hash it: callers must
    not print it (the mosquitto_passwd.managed state never does).

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_passwd.ensure_secret /etc/mosquitto/exporter.secret
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 16:
        raise SaltInvocationError(f"length must be an integer >= 16, not {length!r}")
    secret = read_secret(path)
    if secret is not None:
        return secret
    secret = secrets.token_urlsafe(length)[:length]
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        _atomic_write(path, secret.encode("ascii"), 0, 0, 0o600)
    except OSError as exc:
        raise CommandExecutionError(f"cannot write secret file {path}: {exc}") from exc
    return secret
