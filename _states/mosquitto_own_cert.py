"""
A server certificate the formula does not issue (tls:own_cert, tls:own_key).

Sites that issue certificates elsewhere (Salt's x509_v2, Vault, ACME, a
corporate PKI) leave a certificate and its key on the host. ``installed``
checks them (the key belongs to the certificate, the chain leads to the CA
the clients trust, the names cover the broker's, the dates) and copies them
to the paths the broker and the exporter read (tls:cert, tls:key), so the
broker never reads a file the other tool is halfway through writing, the
key gets the owner the broker can read after dropping privileges, and the
expiry metric reads the very certificate the broker serves. A changed
source is a changed copy, and runtime.certificate reloads the broker on it.

A check that fails fails the state with every problem, each naming the
pillar key to fix, and changes nothing. ``changes`` hold certificate
metadata only, never key material; the key is compared, never shown.

``ca_trusted`` only checks that tls:ca_cert is a CA certificate: the CA is
the other tool's, the formula neither makes nor replaces it.
"""
import datetime
import os

from salt.exceptions import CommandExecutionError

__virtualname__ = "mosquitto_own_cert"

UTIL = "mosquitto_own_cert."
PKI = "mosquitto_pki."
PKI_CHECKS = ("key_matches", "issued_by", "is_ca", "cert_sans", "in_time")
META = ("serial", "not_after", "dns_names", "ip_addresses", "key_type", "key_size", "fingerprint")


def __virtual__():
    if UTIL + "problems" not in __utils__ or PKI + "info" not in __utils__:
        return (False, "mosquitto_own_cert needs the formula's _utils (run saltutil.sync_all)")
    return __virtualname__


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def _read(path, key):
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise CommandExecutionError(f"{key}: cannot read {path}: {exc.strerror}") from exc


def _existing(path):
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _meta(cert):
    info = __utils__[PKI + "info"](cert, _now())
    return {k: info[k] for k in META}


def _load(source_cert, source_key, ca_cert):
    """(PEM of the chain, key bytes, chain, key, CA cert); errors name the pillar key."""
    util = __utils__
    chain_pem = _read(source_cert, "mosquitto:tls:own_cert")
    chain = util[UTIL + "read_chain"](chain_pem, source_cert)
    key_pem = _read(source_key, "mosquitto:tls:own_key")
    try:
        key = util[PKI + "read_key"](source_key)
    except CommandExecutionError as exc:
        raise CommandExecutionError(f"mosquitto:tls:own_key: {exc}") from exc
    try:
        ca = util[PKI + "read_cert"](ca_cert, "CA certificate")
    except CommandExecutionError as exc:
        raise CommandExecutionError(f"mosquitto:tls:ca_cert: {exc}") from exc
    return chain_pem, key_pem, chain, key, ca


def _wanted_names(common_name, dns_names, ip_addresses):
    dns = list(dict.fromkeys(n.lower() for n in [common_name, *(dns_names or [])] if n))
    return dns, list(ip_addresses or [])


def installed(name, key_path, source_cert, source_key, ca_cert, common_name, dns_names=None,
              ip_addresses=None, user="root", group="mosquitto", mode="0640"):
    """
    The checked certificate ``source_cert`` (leaf first, intermediates
    after it) at ``name`` (0644) and its key ``source_key`` at ``key_path``
    (``user``:``group`` ``mode``), for clients trusting ``ca_cert`` and
    connecting by ``common_name``, ``dns_names`` or ``ip_addresses``.
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    try:
        uid, gid = __utils__["mosquitto_files.owner_ids"](user, group)
        chain_pem, key_pem, chain, key, ca = _load(source_cert, source_key, ca_cert)
        dns, ips = _wanted_names(common_name, dns_names, ip_addresses)
        pki = {f: __utils__[PKI + f] for f in PKI_CHECKS}
        found = __utils__[UTIL + "problems"](
            chain, key, ca, paths={"cert": source_cert, "key": source_key, "ca_cert": ca_cert},
            dns=dns, ips=ips, now=_now(), pki=pki)
    except CommandExecutionError as exc:
        ret["comment"] = f"own certificate refused, nothing changed: {exc}"
        return ret
    if found:
        ret["comment"] = "own certificate refused, nothing changed: " + "; ".join(found)
        return ret

    key_mode = __utils__["mosquitto_files.normalize_mode"](mode)
    cert_differs = _existing(name) != chain_pem
    key_differs = _existing(key_path) != key_pem
    perms = {} if key_differs else __utils__["mosquitto_files.attr_changes"](key_path, uid, gid, key_mode)
    days = (chain[0].not_valid_after_utc - _now()).days
    if not (cert_differs or key_differs or perms):
        ret.update(result=True, comment=f"own certificate {source_cert} is installed at {name} "
                                        f"({days} days remaining)")
        return ret

    old = _installed_meta(name)
    changes = {"old": old, "new": _meta(chain[0])} if cert_differs else {}
    if key_differs:
        changes["key"] = {"old": "present" if os.path.exists(key_path) else None, "new": f"from {source_key}"}
    if perms:
        changes["key_permissions"] = perms
    if __opts__["test"]:
        ret.update(result=None, changes=changes,
                   comment=f"own certificate {source_cert} (key {source_key}) would be installed at {name}")
        return ret
    write = __utils__["mosquitto_files.atomic_write"]
    try:
        # Key first: the broker reloads on the certificate's change.
        if key_differs:
            write(key_path, key_pem, key_mode, uid, gid)
        elif perms:
            __utils__["mosquitto_files.set_attrs"](key_path, uid, gid, key_mode)
        if cert_differs:
            write(name, chain_pem, 0o644, 0, 0)
    except CommandExecutionError as exc:
        ret["comment"] = f"own certificate not installed at {name}: {exc}"
        return ret
    ret.update(result=True, changes=changes,
               comment=f"own certificate {source_cert} (key {source_key}) installed at {name} "
                       f"({days} days remaining)")
    return ret


def _installed_meta(path):
    try:
        return _meta(__utils__[PKI + "read_cert"](path)) if os.path.exists(path) else {}
    except CommandExecutionError:
        return {}


def ca_trusted(name):
    """``name`` (tls:ca_cert) is a readable CA certificate, made by whoever issues the server's."""
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    try:
        ca = __utils__[PKI + "read_cert"](name, "CA certificate")
    except CommandExecutionError as exc:
        ret["comment"] = f"mosquitto:tls:ca_cert: {exc} (with tls:own_cert the CA is yours to put there)"
        return ret
    if not __utils__[PKI + "is_ca"](ca):
        ret["comment"] = f"mosquitto:tls:ca_cert: {name} is not a CA certificate"
        return ret
    ret.update(result=True, comment=f"CA certificate {name} ({ca.subject.rfc4514_string()}) is trusted")
    return ret
