"""
Manage a mosquitto password file (thin wrapper over the mosquitto_passwd
execution module).

.. code-block:: yaml

    /etc/mosquitto/passwd:
      mosquitto_passwd.managed:
        - users:
            alice:
              password: 'plain secret'          # verified, rewritten only if it differs
            bob:
              password_hash: '$7$101$...'       # written as given
            exporter:
              password_file: /etc/mosquitto/exporter.secret
              generate_password: True           # create the secret if missing
            carol:
              password_pillar: 'mosquitto:users:carol:password'   # read at run time
            dave:
              password_hash_pillar: 'mosquitto:users:dave:password_hash'

Changes and comments name users only; passwords, hashes and generated
secrets never appear in the output. The formula passes pillar keys
(``password_pillar``) rather than passwords: a state's arguments show up in
``state.show_sls``, ``state.show_lowstate`` and a master's job cache, the
pillar value is read here, while the state runs, and goes no further than
the password file.
"""

import logging
import secrets

from salt.exceptions import CommandExecutionError, SaltInvocationError

__virtualname__ = "mosquitto_passwd"

log = logging.getLogger(__name__)


def __virtual__():
    if "mosquitto_passwd.manage" in __salt__:
        return __virtualname__
    return (False, "the mosquitto_passwd execution module is not available")


# user spec key -> the key the module takes, read from pillar by that key
_PILLAR_KEYS = {"password_pillar": "password", "password_hash_pillar": "password_hash"}


def _from_pillar(name, spec):
    """{password_pillar: 'a:b:c'} -> {password: <pillar value>}; errors name the key only."""
    if len(spec) != 1:
        raise SaltInvocationError(
            f"user {name!r}: give exactly one of {', '.join(sorted(_PILLAR_KEYS))} and nothing else"
        )
    (ref_key, pillar_key), = spec.items()
    # From __pillar__ itself: pillar.get masks values outside rendering.
    value = __utils__["mosquitto_pillar.plain_value"](__pillar__, pillar_key)
    if value in (None, ""):
        raise CommandExecutionError(f"user {name!r}: pillar key {pillar_key} is missing or empty")
    return {_PILLAR_KEYS[ref_key]: value}


def _from_mine(name, spec, skipped):
    """A cluster spoke's bridge user: its $7$ hash read from the Salt mine
    while the state runs (never a state argument). The entry is another
    minion's data: one of the wrong shape is skipped (recorded in
    ``skipped``, the module logs a WARNING), never a reason to fail the
    whole file. Returns the user's spec, or None when skipped."""
    if set(spec) != {"password_hash_mine"}:
        raise SaltInvocationError(f"user {name!r}: password_hash_mine takes no other key")
    minion = spec["password_hash_mine"]
    got = __salt__["mosquitto_cluster.spoke_credential"](minion)
    if "password_hash" in got:
        return {"password_hash": got["password_hash"]}
    skipped[name] = f"mine entry of {minion!r}: {got.get('problem', 'unreadable')}"
    return None


def _from_file(name, spec, generate, created):
    """{password_file, generate_password} -> {password: the file's secret};
    a missing file to be generated is appended to ``created``."""
    unknown = set(spec) - {"password_file", "generate_password"}
    if unknown:
        raise SaltInvocationError(f"user {name!r}: unknown keys {sorted(unknown)}")
    path = spec["password_file"]
    secret = __salt__["mosquitto_passwd.read_secret"](path)
    if secret is None:
        if not spec.get("generate_password", False):
            raise CommandExecutionError(
                f"user {name!r}: password file {path} is missing or empty "
                "(set generate_password: True to create it)"
            )
        created.append(path)
        if not generate:
            secret = secrets.token_urlsafe(32)
        else:
            secret = __salt__["mosquitto_passwd.ensure_secret"](path)
    return {"password": secret}


def _resolve_users(users, generate, skipped=None):
    """Turn password_file entries into plain passwords.

    Returns (users for the module, secret files missing and to be generated).
    With generate=False a missing secret file is not created: a random
    stand-in password (which can never verify) makes a plan show the user as
    added/updated, as the real run will. Users from the mine whose entry is
    not accepted are left out and named in ``skipped`` (user -> why).
    """
    resolved, created = {}, []
    skipped = {} if skipped is None else skipped
    for name, spec in (users or {}).items():
        if isinstance(spec, dict) and "password_hash_mine" in spec:
            entry = _from_mine(name, spec, skipped)
            if entry is not None:
                resolved[name] = entry
        elif isinstance(spec, dict) and set(spec) & set(_PILLAR_KEYS):
            resolved[name] = _from_pillar(name, spec)
        elif isinstance(spec, dict) and "password_file" in spec:
            resolved[name] = _from_file(name, spec, generate, created)
        else:
            resolved[name] = spec
    return resolved, created


def _changes(report, created):
    changes = {key: report[key] for key in ("added", "updated", "removed") if report[key]}
    for key in ("mode", "user", "group"):
        if key in report:
            changes[key] = report[key]
    if report["created"]:
        changes["file"] = "created"
    if created:
        changes["password_files"] = {"generated": created}
    return changes


def _names(names, limit=10):
    # 10,000 users must not turn the comment into a wall of names.
    shown = ", ".join(names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"


def _summary(changes):
    parts = [
        f"{key} {_names(changes[key])}"
        for key in ("added", "updated", "removed")
        if key in changes
    ]
    parts += [
        f"{key} {changes[key]['old']} -> {changes[key]['new']}"
        for key in ("mode", "user", "group")
        if key in changes
    ]
    if "password_files" in changes:
        parts.append(f"new secret in {', '.join(changes['password_files']['generated'])}")
    return "; ".join(parts)


def managed(
    name,
    users,
    prune=True,
    user="root",
    group="mosquitto",
    mode="0640",
    iterations=101,
):
    """
    Ensure the password file ``name`` holds exactly ``users``.

    users
        Mapping of username to one of:

        - ``{password: plain}``: kept as is while the stored hash verifies.
        - ``{password_hash: '$7$...'|'$6$...'}``: written literally.
        - ``{password_file: /path, generate_password: False}``: the plain
          password is read from a root-only file; with ``generate_password``
          a missing file is created with a random secret first.
        - ``{password_hash_mine: <minion id>}``: a cluster spoke's
          ``$7$`` hash, read from the Salt mine while the state runs; an
          entry of the wrong shape leaves the user out (named in the
          comment, a WARNING in the log), the rest of the file is managed.
        - ``{password_pillar: 'mosquitto:users:alice:password'}`` or
          ``{password_hash_pillar: ...}``: the password (or hash) is read from
          this pillar key (``:`` nested) while the state runs, so it is never
          a state argument.

    prune
        Remove users not listed (default True).

    user, group, mode
        Owner and mode of the file. The broker reads it after dropping to
        user mosquitto, hence root:mosquitto 0640. ``None`` keeps the current.

    iterations
        PBKDF2 iterations for entries that are (re)written.
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    test = __opts__["test"]
    skipped = {}
    try:
        resolved, created = _resolve_users(users, generate=False, skipped=skipped)
        options = dict(prune=prune, user=user, group=group, mode=mode, iterations=iterations)
        if test or created:
            # Under test=True this is the answer. Before generating secrets it
            # validates every user and the owner, so bad input creates nothing.
            report = __salt__["mosquitto_passwd.plan"](name, resolved, **options)
        if not test:
            if created:
                resolved, _ = _resolve_users(users, generate=True, skipped=skipped)
            report = __salt__["mosquitto_passwd.manage"](name, resolved, **options)
    except (CommandExecutionError, SaltInvocationError) as exc:
        ret["comment"] = f"Password file {name}: {exc}"
        return ret

    changes = _changes(report, created)
    count = len(report["unchanged"])
    if not changes:
        ret["result"] = True
        ret["comment"] = f"Password file {name} is up to date ({count} users unchanged)"
    elif test:
        ret["result"] = None
        ret["changes"] = changes
        ret["comment"] = f"Password file {name} would change: {_summary(changes)}"
    else:
        ret["result"] = True
        ret["changes"] = changes
        ret["comment"] = f"Password file {name} changed: {_summary(changes)}"
    if skipped:
        # Names and what is wrong only: the module logged the same WARNING.
        shown = "; ".join(f"{user} ({why})" for user, why in sorted(skipped.items()))
        ret["comment"] += f"; left out, not accepted: {shown}"
    return ret


def _attr_changes(name, uid, gid, want_mode, user, group, mode):
    """An existing secret file's owner and mode changes, as ``changes``
    entries (``mode``, ``owner`` as user:group)."""
    changes = {}
    diff = __utils__["mosquitto_files.attr_changes"](name, uid, gid, want_mode)
    if "mode" in diff:
        changes["mode"] = {"old": diff["mode"]["old"], "new": str(mode)}
    if "user" in diff or "group" in diff:
        old = {key: diff.get(key, {}).get("old") for key in ("user", "group")}
        changes["owner"] = {"old": f"{old['user'] or user}:{old['group'] or group}",
                            "new": f"{user}:{group}"}
    return changes


def secret_present(name, length=32, user="root", group="root", mode="0600"):
    """
    A generated secret in file ``name`` (for a service's own MQTT user).

    Created once with ``length`` random URL-safe characters, then only its
    owner, group and mode are kept as given (e.g. root:mosquitto-exporter
    0640 so the exporter can read it). The secret never appears in output;
    ``changes`` say ``generated`` once, so services can ``watch`` this state
    and restart only when their password really changed.
    """
    files = "mosquitto_files."
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    try:
        uid, gid = __utils__[files + "owner_ids"](user, group)
    except CommandExecutionError as exc:
        if not __opts__["test"]:
            ret.update(result=False, comment=f"cannot own secret {name}: {exc}")
            return ret
        uid = gid = None  # the user may be created earlier in the same run
    want_mode = __utils__[files + "normalize_mode"](mode)
    exists = __salt__["mosquitto_passwd.read_secret"](name) is not None
    if not exists:
        ret["changes"]["secret"] = "generated"
    else:
        ret["changes"].update(_attr_changes(name, uid, gid, want_mode, user, group, mode))
    if not ret["changes"]:
        ret["comment"] = f"secret {name} is present"
        return ret
    if __opts__["test"]:
        ret.update(result=None, comment=f"secret {name} would be {'updated' if exists else 'generated'}")
        return ret
    try:
        __salt__["mosquitto_passwd.ensure_secret"](name, length=length)
        __utils__[files + "set_attrs"](name, uid, gid, want_mode)
    except (OSError, CommandExecutionError, SaltInvocationError) as exc:
        ret.update(result=False, changes={}, comment=f"cannot write secret {name}: {exc}")
        return ret
    ret["comment"] = f"secret {name} {'updated' if exists else 'generated'}"
    return ret
