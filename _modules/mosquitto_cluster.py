"""
A hub-and-spoke cluster of Mosquitto brokers (pillar ``mosquitto:cluster``).

Who knows what, through the Salt mine (the master keys each entry by the
authenticated minion id, so no minion can speak for another):

* the hub publishes where spokes reach it, ``{"domain", "port"}``
  (mine name ``mosquitto_cluster_hub``): its ``domain`` on ``ports:mqtts``,
  verified by name against the fleet CA;
* each spoke generates its bridge password on the spoke (a root-only file,
  never in pillar) and publishes only ``{"username", "password_hash",
  "clientid"}`` (mine name ``mosquitto_cluster_spoke``). The ``$7$`` hash
  is derived from the secret with a salt derived from it too, so the entry
  is stable from run to run and the mine changes only when the secret does.

The hub reads the spokes' entries (only minions matching ``members``) as
untrusted input with one exact shape (:py:func:`spoke_problem`): a minion
id of the cluster charset, exactly the keys username, clientid and
password_hash, names derived from the minion id, and a ``$7$`` hash of the
strict shape of _utils/mosquitto_hashes.py (a bounded iteration count). An
entry of any other shape is skipped with a WARNING naming the minion and
what is wrong (never the hash); the hub goes on with every other user, ACL
and bridge. On a first fleet run the hub may render before a
spoke has published: the spoke then asks the hub, through Salt peer publish,
to :py:func:`accept` it (the requester is the minion id Salt gives the
call), and the hub applies the formula again.
"""
import contextlib
import fcntl
import fnmatch
import hashlib
import hmac
import json
import logging
import os
import socket
import ssl
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "mosquitto_cluster"

# MQTT CONNACK return codes (3.1.1).
CONNACK = {0: "accepted", 1: "bad protocol version", 2: "client id rejected",
           3: "server unavailable", 4: "bad user name or password", 5: "not authorized"}

# The keys of a spoke's mine entry, no more, no fewer.
_SPOKE_KEYS = {"username", "clientid", "password_hash"}

# accept() runs a whole state.apply on the hub for each call: the work one
# spoke can cause is bounded. At most one accept per spoke per
# ACCEPT_INTERVAL seconds (a spoke asks once per run, after a refused login;
# a fresh fleet needs one), and none while that spoke's earlier one is still
# queued or running. A claim older than ACCEPT_STALE seconds (the minion
# died mid-run) no longer blocks. The state is a small JSON file under the
# minion's cachedir, written atomically under an flock (peer calls run in
# parallel processes).
ACCEPT_INTERVAL = 60
ACCEPT_STALE = 3600


def __virtual__():
    # The cluster's names, the hash rule and the secret reader are the formula's _utils.
    needed = ("mosquitto_names.cluster_username", "mosquitto_files.read_secret", "mosquitto_hashes.problem")
    if not all(name in __utils__ for name in needed):
        return (False, "mosquitto_cluster needs the formula's _utils (run saltutil.sync_all)")
    return __virtualname__


def username_of(minion_id):
    """
    The hub's user name for the bridge of spoke ``minion_id``.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_cluster.username_of mqtt2
    """
    return __utils__["mosquitto_names.cluster_username"](minion_id)


def clientid_of(minion_id):
    """
    The remote_clientid of the bridge of spoke ``minion_id``.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_cluster.clientid_of mqtt2
    """
    return __utils__["mosquitto_names.cluster_clientid"](minion_id)


def _mine_name(kind):
    return __utils__["mosquitto_names.mine_name"](kind)


def hub_address(domain, port):
    """Mine function on the hub: where spokes connect (by name, TLS)."""
    return {"domain": str(domain), "port": int(port)}


def password_hash(secret):
    """A ``$7$`` hash of ``secret`` with a salt derived from it (stable)."""
    salt = hmac.new(secret.encode(), b"mosquitto-cluster-bridge-salt", hashlib.sha256).digest()[:12]
    return __salt__["mosquitto_passwd.hash_password"](secret, salt=salt)


def spoke_identity(secret_path):
    """
    Mine function on a spoke: its bridge user, never the password.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_cluster.spoke_identity /etc/mosquitto/cluster/bridge.secret
    """
    secret = __utils__["mosquitto_files.read_secret"](secret_path)
    if secret is None:
        raise CommandExecutionError(f"bridge secret {secret_path} is missing")
    me = __opts__["id"]
    return {"username": username_of(me), "password_hash": password_hash(secret), "clientid": clientid_of(me)}


def _mine(tgt, fun, tgt_type="glob"):
    if "mine.get" not in __salt__:
        return {}
    got = __salt__["mine.get"](tgt, fun, tgt_type=tgt_type)
    return got if isinstance(got, dict) else {}


def hub_of(hub):
    """
    The hub's published address, or None before it published one.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_cluster.hub_of mqtt1
    """
    entry = _mine(hub, _mine_name("cluster_hub")).get(hub)
    if isinstance(entry, dict) and isinstance(entry.get("domain"), str) and isinstance(entry.get("port"), int):
        return {"domain": entry["domain"], "port": entry["port"]}
    return None


def _entry_problem(minion, entry):
    """What is wrong with spoke ``minion``'s mine entry, or None. Never
    quotes the hash (a credential)."""
    if not __utils__["mosquitto_names.is_cluster_minion_id"](minion):
        return f"the minion id is not {__utils__['mosquitto_names.cluster_minion_id_rule']()}"
    if not isinstance(entry, dict):
        return "the entry is not a mapping" if entry is not None else "no entry"
    if set(entry) != _SPOKE_KEYS:
        return f"the entry's keys must be exactly {', '.join(sorted(_SPOKE_KEYS))}"
    if entry["username"] != username_of(minion):
        return f"username is not {username_of(minion)}"
    if entry["clientid"] != clientid_of(minion):
        return f"clientid is not {clientid_of(minion)}"
    problem = __utils__["mosquitto_hashes.problem"](entry["password_hash"], allow_sha512=False)
    return f"password_hash {problem}" if problem else None


def _skipped(minion, problem):
    log.warning("mosquitto_cluster: skipped mine entry %s of minion %r: %s",
                _mine_name("cluster_spoke"), minion, problem)


def spokes(members="*", hub=None):
    """
    The spokes the hub accepts: minion id -> {username, clientid} for every
    minion matching ``members`` (a glob) with a well-formed mine entry. The
    hashes are not returned: states read them from the mine when they run.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_cluster.spokes 'mqtt*'
    """
    out = {}
    for minion, entry in sorted(_mine(members, _mine_name("cluster_spoke")).items()):
        if minion == hub or not fnmatch.fnmatch(minion, members):
            continue
        problem = _entry_problem(minion, entry)
        if problem:
            _skipped(minion, problem)
            continue
        out[minion] = {"username": entry["username"], "clientid": entry["clientid"]}
    return out


def spoke_credential(minion):
    """
    ``{"password_hash": ...}`` from spoke ``minion``'s mine entry when it
    has the one accepted shape, else ``{"problem": ...}`` saying what is
    wrong (logged as a WARNING; never the hash). Read at run time.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_cluster.spoke_credential mqtt2
    """
    # The id is checked before it is used as a mine target (a glob).
    ok = __utils__["mosquitto_names.is_cluster_minion_id"](minion)
    entry = _mine(minion, _mine_name("cluster_spoke")).get(minion) if ok else None
    problem = _entry_problem(minion, entry)
    if problem:
        _skipped(minion, problem)
        return {"problem": problem}
    return {"password_hash": entry["password_hash"]}


def spoke_hash(minion):
    """
    The ``$7$`` hash a spoke published, or None (see spoke_credential).

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_cluster.spoke_hash mqtt2
    """
    return spoke_credential(minion).get("password_hash")


def probe(domain, port, ca_cert, username, secret_path, clientid, timeout=10):
    """
    Log in to the hub as this spoke's bridge user over TLS (the host name
    verified against ``ca_cert``) with a throwaway clean session, and return
    the CONNACK code (0 = accepted). Raises when there is no TLS session;
    the password is read from ``secret_path`` and never returned.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_cluster.probe mqtt1.example.com 8883 /etc/mosquitto/certs/ca.crt \\
            bridge.mqtt2 /etc/mosquitto/cluster/bridge.secret mqtt2.cluster.probe
    """
    secret = __utils__["mosquitto_files.read_secret"](secret_path)
    if secret is None:
        raise CommandExecutionError(f"bridge secret {secret_path} is missing")
    ctx = ssl.create_default_context(cafile=ca_cert)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    connect = __utils__["mosquitto_mqtt.connect_packet"](clientid, username, secret, keepalive=10)
    try:
        with socket.create_connection((domain, int(port)), timeout=timeout) as raw:
            with ctx.wrap_socket(raw, server_hostname=domain) as tls:
                tls.sendall(connect)
                ack = b""
                while len(ack) < 4:
                    chunk = tls.recv(4 - len(ack))
                    if not chunk:
                        raise CommandExecutionError(f"{domain}:{port} closed the connection before CONNACK")
                    ack += chunk
                if ack[0] != 0x20:
                    raise CommandExecutionError(f"{domain}:{port} answered with packet type {ack[0]:#x}")
                if ack[3] == 0:
                    tls.sendall(b"\xe0\x00")
                return ack[3]
    except ssl.SSLCertVerificationError as exc:
        raise CommandExecutionError(f"TLS to {domain}:{port} not verified: {exc.verify_message}") from None
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionError(f"{domain}:{port}: {exc}") from None


def _cluster_settings():
    """This hub's ``cluster`` settings from the formula's merged, validated
    dict (mosquitto_map.data), so defaults and pillar ``lookup`` reach them
    as they reach the SLS files; with no cluster, no ``hub``."""
    return __salt__["mosquitto_map.data"]().get("cluster") or {}


def _accepts_path():
    return os.path.join(__opts__["cachedir"], "mosquitto_cluster", "accept.json")


@contextlib.contextmanager
def _accepts_locked():
    """The accept records, read under an exclusive lock: yields (records,
    save), save(records) writing them atomically before the lock goes."""
    path = _accepts_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with open(path + ".lock", "a", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, encoding="ascii") as fh:
                records = json.load(fh)
        except (OSError, ValueError):
            records = {}  # missing or damaged: no claim blocks anyone
        now = time.time()
        # Only well-formed, recent records: the file stays small, and a claim
        # left by a dead process (or from before a clock jump) expires.
        records = {m: r for m, r in (records.items() if isinstance(records, dict) else ())
                   if isinstance(r, dict) and isinstance(r.get("started"), (int, float))
                   and 0 <= now - r["started"] < ACCEPT_STALE}

        def save(new):
            data = json.dumps(new, sort_keys=True).encode("ascii")
            __utils__["mosquitto_files.atomic_write"](path, data, 0o600)
        yield records, save


def _claim(requester):
    """None when ``requester`` may run an accept now (the claim recorded),
    else the answer to give it instead (see ACCEPT_INTERVAL)."""
    me = __opts__["id"]
    with _accepts_locked() as (records, save):
        record = records.get(requester)
        if record and record.get("running"):
            return f"already queued: an accept of {requester} is queued or running on {me}"
        age = int(time.time() - record["started"]) if record else None
        if record and age < ACCEPT_INTERVAL:
            return (f"busy: {requester} was accepted {age} s ago on {me}; at most one accept per "
                    f"{ACCEPT_INTERVAL} s, ask again later")
        records[requester] = {"started": time.time(), "running": True}
        save(records)
    return None


def _release(requester):
    """The accept of ``requester`` is over (its start still rate-limits)."""
    with _accepts_locked() as (records, save):
        if requester in records:
            records[requester]["running"] = False
            save(records)


def _refusal(requester):
    """Why the hub refuses ``requester`` before any work, or None."""
    me = __opts__["id"]
    if not requester:
        return "refused: no requester (call through Salt peer publish)"
    cluster = _cluster_settings()
    if cluster.get("hub") != me:
        return f"refused: {me} is not the cluster hub"
    members = cluster.get("members", "*")
    if not fnmatch.fnmatch(requester, members) or requester == me:
        log.warning("mosquitto_cluster.accept: refused %s (members %r)", requester, members)
        return f"refused: {requester} does not match cluster members {members!r}"
    problem = spoke_credential(requester).get("problem")
    if problem:
        return f"refused: no bridge identity of {requester} in the mine that the hub accepts ({problem})"
    return None


def accept(**kwargs):
    """
    On the hub, called by a spoke through Salt peer publish: apply the
    formula here again so the hub's users and ACLs include the spoke's
    bridge user from the mine. The requester is the minion id Salt gives the
    call (``__pub_id``); it must match this hub's ``cluster:members`` and
    have a well-formed mine entry. Bounded work: while an earlier accept of
    the same spoke is queued or running the answer is "already queued: ...",
    within ACCEPT_INTERVAL seconds of the last one "busy: ..."; neither
    changes anything. Returns a short text, never a hash.
    """
    requester = kwargs.get("__pub_id")
    me = __opts__["id"]
    answer = _refusal(requester) or _claim(requester)
    if answer:
        return answer
    try:
        ret = __salt__["state.apply"]("mosquitto", queue=True)
    finally:
        _release(requester)
    if not isinstance(ret, dict):
        return f"failed: {str(ret)[:500]}"
    failed = [k.split("_|-")[1] for k, v in ret.items() if isinstance(v, dict) and v.get("result") is False]
    if failed:
        return f"failed: {', '.join(failed)}"
    changed = sum(1 for v in ret.values() if isinstance(v, dict) and v.get("changes"))
    return f"accepted: {requester} ({changed} states changed on {me})"
