"""
A small certificate authority for Mosquitto's TLS listeners.

The certificate work itself (keys, names, building and signing) is in
``_utils/mosquitto_pki.py``; this module holds what needs Salt: the CA
minion's settings (from the formula's merged map), its signing policy, its
record of issued certificates, file owners and modes.

Rules this module keeps:

- The CA is never replaced: clients trust it, so a new CA would cut them all
  off. ``create_ca`` refuses when a CA cert or key already exists.
- Server keys are readable by the broker after it drops privileges
  (root:mosquitto 0640 by default); the CA key is root-only (0600).
- Files are written atomically (temp file in the same directory + rename),
  with mode and owner set before the file appears under its name.
- ``sign_csr`` (the fleet's CA minion, called by other minions through Salt
  peer publish) takes only the public key from a CSR and signs with this
  minion's own CA (``tls:ca_cert``/``ca_key`` of its merged map). The
  requester is the minion id Salt gives the call (``__pub_id``), never an
  argument; the names and validity it asks for must fit the signing policy
  (by default only the name ``<id>`` itself and ``<id>.<domain>`` for each
  of ``mosquitto:tls:fleet_domains`` on this minion, never any other
  suffix; ``mosquitto:tls:signing_policies`` widens it, matching names
  label by label). The key must be on the allowlist (EC P-256/P-384, RSA
  2048/3072/4096), names and validity are bounded, and each minion's
  requests and signatures are rate limited (REQUEST_LIMIT, SIGN_LIMITS).
  The result is always a leaf (CA=False) serverAuth certificate. It
  answers with data: ``{"certificate": pem}`` or ``{"error": why}``.
- Every certificate issued is recorded (serial, requester, names, expiry)
  in ``issued.json`` beside the CA key (root-only); ``issued`` reads it.
  The rate limits' counts are kept beside it in ``sign_rate.json``.

Public functions, by who calls them:

- the states (``_states/mosquitto_ca.py``): ``create_ca``, ``cert_info``,
  ``key_fits``, ``verify_chain``, ``ensure_key``, ``ensure_permissions``,
  ``issue_cert``, ``create_csr``, ``install_cert``, ``discard_new_key``,
  ``needs_reissue``, ``read_ca_cert`` (also the mine function);
- other minions, through peer publish: ``sign_csr`` (``read_ca_cert`` when
  the mine has no CA certificate yet);
- operators on the CLI: ``issued`` (the signing record), ``check_request``
  (what the policy allows), ``cert_info``, ``verify_chain``.
"""
import contextlib
import datetime
import fcntl
import fnmatch
import ipaddress
import json
import logging
import os
import re

from salt.exceptions import CommandExecutionError, SaltException

try:
    import cryptography

    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

__virtualname__ = "mosquitto_ca"

log = logging.getLogger(__name__)

# The oldest cryptography with every API used here: Certificate
# .not_valid_before_utc/.not_valid_after_utc came in 42.0
# (verify_directly_issued_by in 40.0, the rest is older).
MIN_CRYPTOGRAPHY = (42, 0)

# Beside the CA key, root-only: every certificate this CA issued.
RECORD_NAME = "issued.json"
# Beside it, root-only too: recent request and signature times per minion.
RATE_NAME = "sign_rate.json"
# sign_csr's limits per requesting minion, as (how many, per seconds). A
# broker asks once on its first apply and again only for a reissue (names,
# key, renewal, publish retries when no answer came), so these leave room
# for an operator's few changes while a minion that loops, or was taken
# over, cannot fill the record or keep the CA minion and the master busy.
# Every request counts towards REQUEST_LIMIT (refusals too: a burst is
# throttled before its CSR is read); only signed ones towards SIGN_LIMITS.
REQUEST_LIMIT = (10, 60)                # requests a minute
SIGN_LIMITS = ((5, 3600), (20, 86400))  # certificates an hour, and a day
# The longest validity a peer's certificate gets, whatever a policy says
# (mosquitto_config bounds signing_policies max_days by the same number).
MAX_LEAF_DAYS = 3650
# A CSR is 1-2 KiB (RSA 4096 included); anything far larger is not one.
MAX_CSR_CHARS = 16384
# The only arguments a requester may send to sign_csr.
SIGN_ARGS = ("csr_pem", "dns_names", "ip_addresses", "days_valid", "common_name")

PKI = "mosquitto_pki."
_UTILS_NEEDED = ("mosquitto_files.atomic_write", "mosquitto_names.is_dns_name", PKI + "info")


def _version(text):
    """(major, minor) of a version string such as '42.0.5' or '43.0.0rc1'."""
    nums = re.findall(r"\d+", str(text))
    return tuple(int(n) for n in (nums + ["0", "0"])[:2])


def __virtual__():
    if any(name not in __utils__ for name in _UTILS_NEEDED):
        return (False, "mosquitto_ca needs the formula's _utils (run saltutil.sync_all)")
    if not HAS_CRYPTOGRAPHY:
        return (False, "mosquitto_ca needs the python 'cryptography' library")
    if _version(cryptography.__version__) < MIN_CRYPTOGRAPHY:
        return (False, f"mosquitto_ca needs cryptography >= {'.'.join(map(str, MIN_CRYPTOGRAPHY))} "
                       f"(it uses Certificate.not_valid_after_utc), this Python has {cryptography.__version__}")
    return __virtualname__


# --- helpers ---------------------------------------------------------------


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _pki(name):
    return __utils__[PKI + name]


def _info(cert):
    return _pki("info")(cert, _now())


def _wanted_sans(common_name, dns_names, ip_addresses):
    """DNS and IP SANs, with the CN among them, checked by the formula's name rule."""
    return _pki("wanted_sans")(common_name, dns_names, ip_addresses, __utils__["mosquitto_names.is_dns_name"])


def _wanted(common_name, dns_names, ip_addresses):
    """(CN, DNS SANs, IP SANs): the CN normalised like the SANs and among
    them, so the policy that checks the SANs checks it too."""
    dns, ips = _wanted_sans(common_name, dns_names, ip_addresses)
    return _pki("subject_cn")(common_name, dns, ips), dns, ips


def _cert_from(path=None, pem=None, what="certificate"):
    """A certificate from exactly one of a file and PEM text."""
    if (path is None) == (pem is None):
        raise CommandExecutionError(f"give the {what} as a path or as pem, one of them")
    return _pki("read_cert")(path, what) if pem is None else _pki("parse_cert")(pem, what)


def _ids(user, group):
    """uid/gid by name; raises before anything is written when one is unknown."""
    return __utils__["mosquitto_files.owner_ids"](user, group)


def _mode(mode):
    return __utils__["mosquitto_files.normalize_mode"](mode)


def _write(path, data, mode, uid=None, gid=None, overwrite=True):
    """Write atomically: the file appears complete, with its final mode and
    owner; overwrite=False never replaces an existing file (see _utils)."""
    __utils__["mosquitto_files.atomic_write"](path, data, mode, uid, gid, overwrite=overwrite)


def _root_ids():
    """(0, 0) when running as root (files owned by root), else (None, None): keep ours."""
    return (0, 0) if os.geteuid() == 0 else (None, None)


def _load_ca(ca_cert_path, ca_key_path):
    ca_cert = _pki("read_cert")(ca_cert_path, "CA certificate")
    if not _pki("is_ca")(ca_cert):
        raise CommandExecutionError(f"{ca_cert_path} is not a CA certificate")
    ca_key = _pki("read_key")(ca_key_path, "CA key")
    if not _pki("key_matches")(ca_cert, ca_key):
        raise CommandExecutionError(f"CA key {ca_key_path} does not belong to CA certificate {ca_cert_path}")
    if ca_cert.not_valid_after_utc <= _now():
        raise CommandExecutionError(f"CA certificate {ca_cert_path} expired on {ca_cert.not_valid_after_utc}")
    return ca_cert, ca_key


# --- the CA minion's own settings, its signing policy and its record ---------


def _settings(fresh=False):
    """This minion's CA settings from the formula's merged map
    (``mosquitto_map.data``: defaults <- os_family <- osfinger <- pillar
    ``lookup`` <- pillar, validated): CA cert and key paths, days_valid
    (the default and the limit), signing policies.

    fresh=True builds the map from a pillar compiled anew on the master
    (pillar.items): the minion's in-memory pillar is only as new as its
    last refresh, and a policy an operator just changed must count for the
    next peer request. The map module keeps its dict in ``__context__`` for
    one run, keyed by the pillar it was built from; a peer call is a job of
    its own, so its ``__context__`` starts empty and nothing an earlier job
    built answers it either.
    """
    if "mosquitto_map.data" not in __salt__:
        raise CommandExecutionError(
            "mosquitto_ca reads its CA paths and signing policies from mosquitto_map.data, "
            "which this minion lacks: run saltutil.sync_modules"
        )
    if fresh and "pillar.items" in __salt__:
        # unmask: Salt 3008 redacts every pillar value pillar.items returns
        # unless asked for the real ones.
        data = __salt__["mosquitto_map.data"](pillar=__salt__["pillar.items"](unmask=True))
    else:
        data = __salt__["mosquitto_map.data"]()
    tls = data["tls"]
    return {
        "ca_cert": tls["ca_cert"],
        "ca_key": tls["ca_key"],
        "days_valid": int(tls["days_valid"]),
        "policies": tls["signing_policies"],
        "fleet_domains": [str(d).strip().lower().rstrip(".") for d in tls.get("fleet_domains") or []],
    }


# One label of a requested name a policy glob may match: letters, digits,
# hyphens, never "*" (a wildcard name is signed only where a policy lists
# it under wildcard_dns_names, never because a glob matched it).
_PLAIN_LABEL = re.compile(r"[a-z0-9-]{1,63}")


def _policy_for(requester, settings):
    """What ``requester`` may have signed: the default (its own id, and
    ``<id>.<domain>`` for each fleet domain) widened by every entry of
    signing_policies whose ``minions`` glob matches it. ``minions`` is
    matched like Salt's glob targeting (fnmatch: ``*`` spans dots); minion
    ids are the master's authenticated ones."""
    rid = str(requester).lower()
    matched = [(i, p) for i, p in enumerate(settings["policies"])
               if fnmatch.fnmatchcase(rid, p["minions"].lower())]
    days = [p["max_days"] for _, p in matched if p.get("max_days")]
    return {
        "requester": rid,
        "own_names": list(dict.fromkeys([rid] + [f"{rid}.{d}" for d in settings["fleet_domains"]])),
        "fleet_domains": settings["fleet_domains"],
        "dns_names": [pat.lower() for _, p in matched for pat in p.get("dns_names", [])],
        "wildcards": [name.lower() for _, p in matched for name in p.get("wildcard_dns_names", [])],
        "ip_networks": [ipaddress.ip_network(n) for _, p in matched for n in p.get("ip_networks", [])],
        "max_days": min(max(days) if days else int(settings["days_valid"]), MAX_LEAF_DAYS),
        "matched": [f"signing_policies[{i}] (minions {p['minions']!r})" for i, p in matched],
    }


def _describe_policy(policy):
    rid = policy["requester"]
    dns = ", ".join(policy["own_names"] + policy["dns_names"])
    wild = f"; wildcard names {', '.join(policy['wildcards'])}" if policy["wildcards"] else ""
    ips = ", ".join(map(str, policy["ip_networks"])) or "none"
    source = "default" + "".join(f" + {m}" for m in policy["matched"])
    return (f"policy for minion {rid} ({source}): DNS names {dns}{wild}; "
            f"IP addresses in {ips}; at most {policy['max_days']} days")


def _glob_matches(name, pattern):
    """A policy glob against a name, label by label: as many labels, each
    name label a plain one, each matched by fnmatch within its label (so
    ``*`` is one label or part of one, never a dot, never a literal ``*``)."""
    labels, globs = name.split("."), pattern.split(".")
    return len(labels) == len(globs) and all(
        _PLAIN_LABEL.fullmatch(label) and fnmatch.fnmatchcase(label, glob)
        for label, glob in zip(labels, globs, strict=True))


def _name_allowed(name, policy):
    if name.startswith("*."):
        return name in policy["wildcards"]
    # The minion's own id, or <id>.<fleet domain>: "h1" with fleet domain
    # example.com allows h1.example.com, never h1.evil.org or h10.example.com.
    if name in policy["own_names"]:
        return True
    return any(_glob_matches(name, pat) for pat in policy["dns_names"])


def _policy_problems(policy, dns, ips, days):
    problems = [f"DNS name {n}" for n in dns if not _name_allowed(n, policy)]
    problems += [f"IP address {ip}" for ip in ips if not any(ip in net for net in policy["ip_networks"])]
    if int(days) > policy["max_days"]:
        problems.append(f"validity {int(days)} days")
    return problems


def _refusal(policy, problems):
    """The refusal: the minion, what was refused, the policy, and the pillar
    keys on the CA minion that would widen it."""
    domains = ", ".join(policy["fleet_domains"]) or "none set"
    message = (f"minion {policy['requester']} may not have a certificate with {', '.join(problems)}: "
               f"not allowed by the {_describe_policy(policy)}. Nothing was signed; widen it in the CA "
               "minion's pillar if this is wanted: mosquitto:tls:fleet_domains gives every minion "
               f"<id>.<domain> (now {domains}), mosquitto:tls:signing_policies gives the minions "
               "its `minions` glob matches dns_names (globs, label by label), wildcard_dns_names, "
               "ip_networks and max_days.")
    if any(p.startswith("DNS name *.") for p in problems):
        message += (" A wildcard name is signed only when a matching policy lists it exactly under "
                    "wildcard_dns_names; a dns_names glob never yields one.")
    return message


def _days(days_valid, default):
    """The validity asked for, as a whole number of days (default the CA's)."""
    days = default if days_valid is None else days_valid
    if isinstance(days, bool):
        raise CommandExecutionError(f"days_valid must be a number, not {days!r}")
    try:
        days = int(days)
    except (TypeError, ValueError) as exc:
        raise CommandExecutionError(f"days_valid must be a number, not {str(days)[:40]!r}") from exc
    if days < 1:
        raise CommandExecutionError(f"days_valid must be at least 1, not {days}")
    return days


def _ca_file(ca_key_path, name):
    """A file of the CA's own beside its key."""
    return os.path.join(os.path.dirname(os.path.abspath(ca_key_path)), name)


def _record_path(ca_key_path):
    return _ca_file(ca_key_path, RECORD_NAME)


@contextlib.contextmanager
def _ca_dir_locked(ca_key_path):
    """An exclusive lock on the CA key's directory for the block: one
    request at a time reads and rewrites the record and the rate counts."""
    directory = os.path.dirname(os.path.abspath(ca_key_path))
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise CommandExecutionError(f"CA directory {directory}: {exc.strerror} (is the CA made?)") from exc
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(dir_fd)


def _read_records(path):
    if not os.path.exists(path):
        return []
    try:
        with open(path, "rb") as fh:
            records = json.loads(fh.read() or b"[]")
    except (OSError, ValueError) as exc:
        # Never start a new record over an unreadable one: it is an audit log.
        raise CommandExecutionError(f"record of issued certificates {path} is unreadable: {exc}") from exc
    if not isinstance(records, list):
        raise CommandExecutionError(f"record of issued certificates {path} is not a list")
    return records


def _append_record(ca_key_path, cert, requester, how):
    """Add ``cert`` to the CA's record: rewritten whole, atomically (temp file
    + rename), root-only. The caller holds _ca_dir_locked."""
    path = _record_path(ca_key_path)
    records = _read_records(path)
    info = _info(cert)
    records.append({
        "serial": info["serial"],
        "requester": str(requester),
        "how": how,
        "subject_cn": info["subject_cn"],
        "dns_names": info["dns_names"],
        "ip_addresses": info["ip_addresses"],
        "not_after": info["not_after"],
        "issued_at": _now().replace(microsecond=0).isoformat(),
        "fingerprint": info["fingerprint"],
    })
    _write(path, (json.dumps(records, indent=1) + "\n").encode(), 0o600, *_root_ids())


def _record(ca_key_path, cert, requester, how):
    """Add ``cert`` to the CA's record, under the CA directory's lock."""
    with _ca_dir_locked(ca_key_path):
        _append_record(ca_key_path, cert, requester, how)


# --- sign_csr's rate limits ---------------------------------------------------------
# sign_rate.json: {minion id: {"requests": [epoch s, ...], "signed": [...]}},
# only times still inside their window, only minions with any: a few
# hundred bytes per active minion, never growing with time.

_KEEP = {"requests": REQUEST_LIMIT[1], "signed": max(window for _, window in SIGN_LIMITS)}


def _read_rates(path):
    """The counts; an unreadable file only resets them (they are no audit
    log, the record is), so it is logged and started over."""
    try:
        with open(path, "rb") as fh:
            rates = json.loads(fh.read() or b"{}")
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("mosquitto_ca: %s is unreadable (%s): the sign_csr rate limits start over", path, exc)
        return {}
    return rates if isinstance(rates, dict) else {}


def _pruned(rates, now):
    """Only the times still inside their window (a clock set back by more
    than a second forgets the ones ahead of it), only minions with any."""
    out = {}
    for rid, entry in rates.items():
        entry = entry if isinstance(entry, dict) else {}
        kept = {kind: sorted(t for t in entry.get(kind) or [] if isinstance(t, (int, float)) and -1 < now - t < keep)
                for kind, keep in _KEEP.items()}
        if any(kept.values()):
            out[str(rid)] = kept
    return out


def _write_rates(path, rates):
    _write(path, (json.dumps(rates, sort_keys=True) + "\n").encode(), 0o600, *_root_ids())


def _next_allowed(times, limit, window, now):
    """When one more fits in ``limit`` per ``window`` (epoch s), None when now."""
    inside = sorted(t for t in times if now - t < window)
    return None if len(inside) < limit else inside[-limit] + window


def _span(seconds):
    return {60: "minute", 3600: "hour", 86400: "day"}.get(seconds, f"{seconds} s")


def _throttled(rid, what, limit, window, retry, now):
    """The refusal of a throttled request (logged: a minion that loops is news)."""
    when = datetime.datetime.fromtimestamp(retry, datetime.timezone.utc).replace(microsecond=0)
    message = (f"minion {rid} is rate limited: {what} in the last {_span(window)}, the CA minion allows {limit} "
               f"per {_span(window)} per minion. Nothing was signed; retry after {when.isoformat()} "
               f"(in {max(1, int(retry - now + 0.999))} s).")
    log.warning("mosquitto_ca.sign_csr refused: %s", message)
    return CommandExecutionError(message)


def _count_request(ca_key_path, rid):
    """Count a request from ``rid``; raise saying when to ask again when it
    sent REQUEST_LIMIT already (that request is not counted, so the time
    said holds)."""
    path, now = _ca_file(ca_key_path, RATE_NAME), _now().timestamp()
    limit, window = REQUEST_LIMIT
    with _ca_dir_locked(ca_key_path):
        rates = _pruned(_read_rates(path), now)
        entry = rates.setdefault(rid, {"requests": [], "signed": []})
        retry = _next_allowed(entry["requests"], limit, window, now)
        if retry is not None:
            raise _throttled(rid, f"{limit} sign_csr requests (refused ones count)", limit, window, retry, now)
        entry["requests"].append(round(now, 3))
        _write_rates(path, rates)


def _check_sign_quota(rid, signed, now):
    for limit, window in SIGN_LIMITS:
        retry = _next_allowed(signed, limit, window, now)
        if retry is not None:
            raise _throttled(rid, f"{limit} certificates signed (`mosquitto_ca.issued requester={rid}` lists them)",
                             limit, window, retry, now)


# --- public functions --------------------------------------------------------


def create_ca(cert_path, key_path, *, common_name="Mosquitto CA", days_valid=3650, key_type="ec", key_size=2048):
    """
    Create a self-signed CA (key 0600, cert 0644). Refuses to replace an
    existing CA cert or key. Returns cert_info of the CA certificate.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.create_ca /etc/mosquitto/certs/ca.crt /etc/mosquitto/ca/ca.key common_name='My CA'
    """
    for path in (cert_path, key_path):
        if os.path.lexists(path):
            raise CommandExecutionError(f"{path} exists: a CA is never replaced (clients trust it)")
    key = _pki("new_key")(key_type, key_size)
    cert = _pki("build_ca")(key, common_name=common_name, days_valid=days_valid, now=_now())
    # Key first: a cert without its key is harmless, the other way round
    # would leave a CA nobody can sign with but everyone may already trust.
    _write(key_path, _pki("key_pem")(key), 0o600, *_root_ids(), overwrite=False)
    _write(cert_path, _pki("cert_pem")(cert), 0o644, *_root_ids(), overwrite=False)
    return _info(cert)


def cert_info(path=None, pem=None):
    """
    Metadata of a certificate, from a file (``path``) or PEM text (``pem``):
    subject_cn, issuer_cn, serial (hex), not_before/not_after (ISO 8601,
    UTC), days_remaining, dns_names, ip_addresses, key_type, key_size,
    fingerprint (SHA-256), is_ca.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.cert_info /etc/mosquitto/certs/server.crt
        salt '*' mosquitto_ca.cert_info pem="$(cat server.crt)"
    """
    return _info(_cert_from(path, pem))


def verify_chain(cert_path=None, ca_cert_path=None, *, cert_pem=None, ca_cert_pem=None, dates=True):
    """
    True when the certificate (``cert_path`` or ``cert_pem``) is signed by the
    CA (``ca_cert_path`` or ``ca_cert_pem``), the CA is a CA and, unless
    dates=False, both are within their validity period. dates=False answers
    only "did this CA sign it" (which CA to install beside a certificate).

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.verify_chain /etc/mosquitto/certs/server.crt /etc/mosquitto/certs/ca.crt
    """
    cert = _cert_from(cert_path, cert_pem)
    ca_cert = _cert_from(ca_cert_path, ca_cert_pem, "CA certificate")
    if dates:
        now = _now()
        if not (_pki("in_time")(cert, now) and _pki("in_time")(ca_cert, now)):
            return False
    return _pki("is_ca")(ca_cert) and _pki("issued_by")(cert, ca_cert)


def key_fits(key_path, *, cert_path=None, key_type=None, key_size=2048):
    """
    True when key_path holds a readable unencrypted key that belongs to the
    certificate at cert_path (when given) and is of key_type and key_size
    (when key_type is given). False when the key is missing or unreadable.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.key_fits /etc/mosquitto/certs/server.key cert_path=/etc/mosquitto/certs/server.crt
        salt '*' mosquitto_ca.key_fits /etc/mosquitto/certs/server.key key_type=ec
    """
    want = _pki("key_spec")(key_type, key_size) if key_type is not None else None
    cert = _pki("read_cert")(cert_path) if cert_path is not None else None
    if not os.path.exists(key_path):
        return False
    try:
        key = _pki("read_key")(key_path)
    except CommandExecutionError:
        return False
    if want is not None and _pki("describe_key")(key) != want:
        return False
    return cert is None or _pki("key_matches")(cert, key)


def ensure_key(key_path, *, key_type="ec", key_size=2048, user="root", group="mosquitto", mode="0640", reuse_key=True):
    """
    Keep the key at key_path when it is usable (right type and size, reuse_key),
    else write a new one. A kept key gets the wanted owner and mode.
    Returns {"created": bool, "key_type", "key_size", "permissions": {what was fixed}}.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.ensure_key /etc/mosquitto/certs/server.key key_type=rsa key_size=3072
    """
    kind, bits = _pki("key_spec")(key_type, key_size)
    uid, gid = _ids(user, group)
    if reuse_key and key_fits(key_path, key_type=kind, key_size=bits):
        fixed = ensure_permissions(key_path, user=user, group=group, mode=mode)
        return {"created": False, "key_type": kind, "key_size": bits, "permissions": fixed}
    # Missing, unreadable, foreign or unwanted: a new key.
    _write(key_path, _pki("key_pem")(_pki("new_key")(kind, bits)), _mode(mode), uid, gid)
    return {"created": True, "key_type": kind, "key_size": bits, "permissions": {}}


def issue_cert(
    cert_path,
    key_path,
    *,
    common_name,
    ca_cert_path=None,
    ca_key_path=None,
    dns_names=(),
    ip_addresses=(),
    days_valid=None,
    key_type="ec",
    key_size=2048,
    key_user="root",
    key_group="mosquitto",
    key_mode="0640",
    reuse_key=True,
):
    """
    Issue a server certificate signed by this host's CA (ca_cert_path and
    ca_key_path, default the map's tls:ca_cert and tls:ca_key; days_valid
    default tls:days_valid). The key is kept when it exists and fits
    (reuse_key), else replaced. The CN is always among the SANs.
    Returns cert_info of the new certificate.

    CLI Example:

    .. code-block:: bash

        salt ca-minion mosquitto_ca.issue_cert /etc/mosquitto/certs/server.crt /etc/mosquitto/certs/server.key \\
            common_name=mqtt.example.com dns_names='[mqtt2.example.com]' days_valid=90
    """
    if None in (ca_cert_path, ca_key_path, days_valid):
        settings = _settings()
        ca_cert_path = ca_cert_path or settings["ca_cert"]
        ca_key_path = ca_key_path or settings["ca_key"]
        days_valid = settings["days_valid"] if days_valid is None else days_valid
    # Validate everything that can fail before a single byte is written.
    _ids(key_user, key_group)
    _pki("key_spec")(key_type, key_size)
    common_name, dns, ips = _wanted(common_name, dns_names, ip_addresses)
    ca_cert, ca_key = _load_ca(ca_cert_path, ca_key_path)
    ensure_key(key_path, key_type=key_type, key_size=key_size, user=key_user, group=key_group, mode=key_mode,
               reuse_key=reuse_key)
    cert = _pki("sign_server_cert")(
        _pki("read_key")(key_path).public_key(), ca_cert=ca_cert, ca_key=ca_key, common_name=common_name,
        dns=dns, ips=ips, days_valid=days_valid, now=_now())
    _record(ca_key_path, cert, __opts__["id"], "local")
    _write(cert_path, _pki("cert_pem")(cert), 0o644)
    return _info(cert)


def create_csr(key_path, common_name, *, dns_names=(), ip_addresses=()):
    """
    A PEM certificate signing request for the key at key_path. The CA ignores
    everything in it but the public key; the names are there for humans.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.create_csr /etc/mosquitto/certs/server.key mqtt.example.com
    """
    key = _pki("read_key")(key_path)
    common_name, dns, ips = _wanted(common_name, dns_names, ip_addresses)
    return _pki("build_csr")(key, common_name=common_name, dns=dns, ips=ips)


def _refuse(message):
    """sign_csr's answer to a request it does not sign: data, and a failed job."""
    __context__["retcode"] = 1
    return {"error": message}


def _csr_key(rid, csr_pem):
    """The CSR's public key, when the CSR is of a sane size and the key on the allowlist."""
    if isinstance(csr_pem, (str, bytes)) and len(csr_pem) > MAX_CSR_CHARS:
        raise CommandExecutionError(f"minion {rid} sent a CSR of {len(csr_pem)} characters "
                                    f"(at most {MAX_CSR_CHARS}): not a CSR. Nothing was signed.")
    public_key = _pki("parse_csr")(csr_pem).public_key()
    problem = _pki("key_problem")(public_key)
    if problem:
        raise CommandExecutionError(f"minion {rid} sent a CSR whose key is refused: {problem}. "
                                    "Nothing was signed; set mosquitto:tls:key_type/key_size on it.")
    return public_key


def _sign_counted(settings, rid, public_key, *, common_name, dns, ips, days):
    """Sign and record, if ``rid`` is within SIGN_LIMITS: the check, the
    signature, the record and the count under one lock, so concurrent
    requests cannot both take the last one."""
    ca_cert, ca_key = _load_ca(settings["ca_cert"], settings["ca_key"])
    path = _ca_file(settings["ca_key"], RATE_NAME)
    with _ca_dir_locked(settings["ca_key"]):
        now = _now()
        rates = _pruned(_read_rates(path), now.timestamp())
        entry = rates.setdefault(rid, {"requests": [], "signed": []})
        _check_sign_quota(rid, entry["signed"], now.timestamp())
        cert = _pki("sign_server_cert")(public_key, ca_cert=ca_cert, ca_key=ca_key, common_name=common_name,
                                        dns=dns, ips=ips, days_valid=days, now=now)
        _append_record(settings["ca_key"], cert, rid, "peer")
        entry["signed"].append(round(now.timestamp(), 3))
        _write_rates(path, rates)
    return cert


def _sign_request(requester, csr_pem, *, dns_names, ip_addresses, days_valid, common_name):
    """The signed certificate (PEM) for requester, or CommandExecutionError saying why not."""
    rid = str(requester).lower()
    settings = _settings(fresh=True)
    # Counted before anything about the request is read: a burst costs
    # the CA minion a pillar compile and a file rewrite per request, no more.
    _count_request(settings["ca_key"], rid)
    public_key = _csr_key(rid, csr_pem)
    common_name, dns, ips = _wanted(common_name, dns_names, ip_addresses)
    days = _days(days_valid, settings["days_valid"])
    policy = _policy_for(rid, settings)
    problems = _policy_problems(policy, dns, ips, days)
    if problems:
        message = _refusal(policy, problems)
        log.warning("mosquitto_ca.sign_csr refused: %s", message)
        raise CommandExecutionError(message)
    cert = _sign_counted(settings, rid, public_key, common_name=common_name, dns=dns, ips=ips, days=days)
    log.info("mosquitto_ca.sign_csr: signed serial %X for %s (%s)", cert.serial_number, rid,
             ", ".join(dns + [str(i) for i in ips]))
    return _pki("cert_pem")(cert).decode()


def sign_csr(csr_pem, *, dns_names=(), ip_addresses=(), days_valid=None, common_name=None, **kwargs):
    """
    Sign a CSR with this minion's CA for the minion that asked. Meant to be
    called by other minions through Salt peer publish
    (``publish.publish <ca minion> mosquitto_ca.sign_csr``) so the CA key
    never leaves this host.

    Returns ``{"certificate": "<PEM>"}`` when signed, else
    ``{"error": "<why, naming the minion, the names and the policy>"}``
    (and the job fails); never a bare string.

    - The CA is this minion's own (tls:ca_cert/ca_key of its merged map,
      defaults /etc/mosquitto/certs/ca.crt and /etc/mosquitto/ca/ca.key).
      Any argument besides the CSR, the names, the validity and the common
      name (a CA or key path, an extension...) is refused: nothing is signed.
    - The requester is the minion id Salt gives the call (``__pub_id``, set by
      the master from the caller's authenticated id); a call without one
      (salt-call here, or from the master) is refused.
    - The names (dns_names + ip_addresses + common_name, default the first of
      them; lower-cased, at most 32, the CN at most 64 characters) and
      days_valid (default the CA's tls:days_valid) must fit the policy: the
      DNS name ``<id>`` and ``<id>.<d>`` for each of this minion's
      ``mosquitto:tls:fleet_domains`` (default none), no IP addresses, at
      most tls:days_valid days (never over MAX_LEAF_DAYS), widened by
      ``mosquitto:tls:signing_policies`` entries whose ``minions`` glob
      matches the requester: ``dns_names`` globs matched label by label
      (``*`` is one label, never a dot or a literal ``*``),
      ``wildcard_dns_names`` (the only way to a wildcard certificate),
      ``ip_networks``, ``max_days``. A refusal is logged here (warning).
    - The CSR's key must be EC P-256/P-384 or RSA 2048/3072/4096 (e 65537).
    - Per minion at most REQUEST_LIMIT requests (refused ones too) and
      SIGN_LIMITS signatures; a throttled request is refused saying when
      to retry.
    - The pillar is read fresh from the master for every request.
    - Only the CSR's public key is used; the result is always CA=False,
      serverAuth, and recorded (see ``issued``).

    CLI Example (from a broker minion; the master's ``peer`` must allow it):

    .. code-block:: bash

        salt-call publish.publish ca-minion mosquitto_ca.sign_csr \\
            arg='[{"__kwarg__": true, "csr_pem": "...", "dns_names": ["mqtt2.example.com"]}]'
    """
    requester = kwargs.get("__pub_id")
    unknown = sorted(k for k in kwargs if not str(k).startswith("__pub_"))
    if unknown:
        log.warning("mosquitto_ca.sign_csr: refused a request from %s with argument(s) %s",
                    requester or "an unknown caller", ", ".join(unknown))
        return _refuse(
            f"sign_csr refuses argument(s) {', '.join(unknown)} (it accepts only {', '.join(SIGN_ARGS)}): "
            "the CA minion signs with its own CA from its own pillar, the caller chooses no CA, key or "
            "extension. Nothing was signed."
        )
    if not requester:
        return _refuse(
            "sign_csr serves other minions through Salt peer publish and signs for the minion id Salt "
            "gives the call; this call has none (salt-call or the master?). Nothing was signed; "
            "on the CA host itself use mosquitto_ca.issue_cert."
        )
    try:
        pem = _sign_request(requester, csr_pem, dns_names=dns_names, ip_addresses=ip_addresses,
                            days_valid=days_valid, common_name=common_name)
        return {"certificate": pem}
    except SaltException as exc:  # a refusal, a bad policy, an unusable CA: all answered as data
        return _refuse(str(exc))


def check_request(requester, *, dns_names=(), ip_addresses=(), days_valid=None, common_name=None):
    """
    Whether this CA minion's policy lets ``requester`` have a certificate for
    these names and days, without signing anything: {"allowed", "problems",
    "policy"}. For operators checking a policy before a run.

    CLI Example:

    .. code-block:: bash

        salt ca-minion mosquitto_ca.check_request mqtt2.example.com dns_names='[mqtt.example.com]'
    """
    settings = _settings(fresh=True)
    _cn, dns, ips = _wanted(common_name, dns_names, ip_addresses)
    days = _days(days_valid, settings["days_valid"])
    policy = _policy_for(requester, settings)
    problems = _policy_problems(policy, dns, ips, days)
    return {"allowed": not problems, "problems": problems, "policy": _describe_policy(policy)}


def issued(ca_key_path=None, requester=None):
    """
    Every certificate this CA issued, oldest first: serial (hex), requester
    (minion id), how ("peer": signed for another minion; "local": this
    host's own), subject_cn, dns_names, ip_addresses, not_after, issued_at,
    fingerprint. Read from ``issued.json`` beside the CA key
    (tls:ca_key of the merged map, default /etc/mosquitto/ca/ca.key).

    CLI Example:

    .. code-block:: bash

        salt ca-minion mosquitto_ca.issued
        salt ca-minion mosquitto_ca.issued requester=mqtt2.example.com
    """
    path = _record_path(ca_key_path or _settings()["ca_key"])
    records = _read_records(path)
    if requester is not None:
        records = [r for r in records if r.get("requester") == str(requester).lower()]
    return records


def read_ca_cert(ca_cert_path=None, **kwargs):
    """
    The CA certificate as PEM. Re-serialised from the parsed certificate, so a
    caller can never read anything but a CA certificate. Called by another
    minion (peer publish) it is always this minion's own CA certificate
    (tls:ca_cert of its merged map), whatever path the caller gives. The
    mine function behind ``mosquitto_ca_cert``.

    CLI Example:

    .. code-block:: bash

        salt ca-minion mosquitto_ca.read_ca_cert /etc/mosquitto/certs/ca.crt
    """
    if ca_cert_path is None or kwargs.get("__pub_id"):
        ca_cert_path = _settings()["ca_cert"]
    cert = _pki("read_cert")(ca_cert_path, "CA certificate")
    if not _pki("is_ca")(cert):
        raise CommandExecutionError(f"{ca_cert_path} is not a CA certificate")
    return _pki("cert_pem")(cert).decode()


def install_cert(cert_path, cert_pem, *, key_path=None, new_key_path=None, ca_cert_path=None, ca_cert_pem=None):
    """
    Install a PEM certificate (0644, atomically) after checking it: it must
    parse, belong to the key (new_key_path when given, else key_path, when
    either is given) and be signed by the CA (ca_cert_pem or ca_cert_path,
    when either is given). Then a new key is renamed over key_path and the
    certificate written. Used for certificates signed by a CA minion and
    for the CA certificate it hands out. Returns cert_info.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.install_cert /etc/mosquitto/certs/server.crt "$(cat server.crt)" \\
            key_path=/etc/mosquitto/certs/server.key ca_cert_path=/etc/mosquitto/certs/ca.crt
    """
    cert = _pki("parse_cert")(cert_pem)
    if new_key_path and not key_path:
        raise CommandExecutionError("new_key_path replaces key_path: give key_path too")
    check_key = new_key_path or key_path
    if check_key and not _pki("key_matches")(cert, _pki("read_key")(check_key)):
        raise CommandExecutionError(f"certificate for {cert_path} does not match key {check_key}")
    if ca_cert_pem or ca_cert_path:
        ca_cert = _cert_from(None if ca_cert_pem else ca_cert_path, ca_cert_pem, "CA certificate")
        if not _pki("issued_by")(cert, ca_cert):
            raise CommandExecutionError(f"certificate for {cert_path} is not signed by CA {ca_cert_path or 'given'}")
    if new_key_path:
        __utils__["mosquitto_files.replace"](new_key_path, key_path)
    _write(cert_path, _pki("cert_pem")(cert), 0o644)
    return _info(cert)


def discard_new_key(path):
    """
    Remove a new key (``<key>.new``) that certificate_managed made for a
    certificate the CA minion then refused, so a refused run leaves nothing
    behind. Refuses any other file. True when it existed.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.discard_new_key /etc/mosquitto/certs/server.key.new
    """
    if not __utils__["mosquitto_names.is_new_key_path"](path):
        raise CommandExecutionError(
            f"{path} is not a new key ({__utils__['mosquitto_names.new_key_path']('<key>')}): not removing it")
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def needs_reissue(
    cert_path,
    key_path,
    *,
    ca_cert_path=None,
    ca_cert_pem=None,
    dns_names=(),
    ip_addresses=(),
    renew_days=30,
    key_type="ec",
    key_size=2048,
    common_name=None,
):
    """
    Whether the server certificate must be (re)issued, and why.
    Returns {"reissue": bool, "reasons": [str, ...]}.

    Wanted SANs are dns_names + ip_addresses (+ common_name when given),
    compared order- and case-insensitively; the certificate's own CN must be
    among its SANs. The CA is ca_cert_pem (a CA cert just fetched from a CA
    minion, not yet written) or ca_cert_path (default the map's tls:ca_cert).

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.needs_reissue /etc/mosquitto/certs/server.crt /etc/mosquitto/certs/server.key \\
            dns_names='[mqtt.example.com]'
    """
    if not os.path.exists(cert_path):
        return {"reissue": True, "reasons": ["certificate missing"]}
    if not os.path.exists(key_path):
        return {"reissue": True, "reasons": ["key missing"]}
    try:
        cert = _pki("read_cert")(cert_path)
    except CommandExecutionError as exc:
        return {"reissue": True, "reasons": [f"certificate unreadable ({exc})"]}
    try:
        key = _pki("read_key")(key_path)
    except CommandExecutionError as exc:
        return {"reissue": True, "reasons": [f"key unreadable ({exc})"]}
    dns, ips = _wanted_sans(common_name, dns_names, ip_addresses)
    if ca_cert_pem is None and ca_cert_path is None:
        ca_cert_path = _settings()["ca_cert"]
    reasons = _pki("reissue_reasons")(
        cert, key, ca_cert=_cert_from(None if ca_cert_pem else ca_cert_path, ca_cert_pem, "CA certificate"),
        dns=dns, ips=ips, common_name=common_name, want_key=_pki("key_spec")(key_type, key_size),
        renew_days=renew_days, now=_now())
    return {"reissue": bool(reasons), "reasons": reasons}


def ensure_permissions(path, *, user, group, mode, test=False):
    """
    Give an existing file the wanted owner and mode. Returns what differed
    ({"user": [old, new], ...}), empty when nothing did; with test=True
    nothing is changed.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.ensure_permissions /etc/mosquitto/certs/server.key user=root group=mosquitto mode=0640
    """
    uid, gid = _ids(user, group)
    os.stat(path)  # a missing file is an error here, not "nothing differs"
    diff = {key: [change["old"], change["new"]]
            for key, change in __utils__["mosquitto_files.attr_changes"](path, uid, gid, _mode(mode)).items()}
    if diff and not test:
        __utils__["mosquitto_files.set_attrs"](path, uid, gid, _mode(mode))
    return diff
