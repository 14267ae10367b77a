"""
A small certificate authority for Mosquitto's TLS listeners.

Everything is done with the ``cryptography`` library (no openssl CLI), so the
module behaves the same on every platform and never leaks keys through
command lines or temp files owned by someone else.

Rules this module keeps:

- The CA is never replaced: clients trust it, so a new CA would cut them all
  off. ``create_ca`` refuses when a CA cert or key already exists.
- Server keys are readable by the broker after it drops privileges
  (root:mosquitto 0640 by default); the CA key is root-only (0600).
- Files are written atomically (temp file in the same directory + rename),
  with mode and owner set before the file appears under its name.
- ``sign_csr`` (the fleet's CA minion, called by other minions through Salt
  peer publish) takes only the public key from a CSR and signs with this
  minion's own CA (its pillar ``mosquitto:tls:ca_cert``/``ca_key``). The
  requester is the minion id Salt gives the call (``__pub_id``), never an
  argument; the names and validity it asks for must fit the signing policy
  (``mosquitto:tls:signing_policies`` on this minion; by default only names
  equal to the requester's id or starting with ``<id>.``). The result is
  always a leaf (CA=False) serverAuth certificate.
- Every certificate issued is recorded (serial, requester, names, expiry)
  in ``issued.json`` beside the CA key (root-only); ``issued`` reads it.
"""
import datetime
import fcntl
import fnmatch
import ipaddress
import json
import logging
import os
import re

from salt.exceptions import CommandExecutionError

try:
    import cryptography
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

__virtualname__ = "mosquitto_ca"

log = logging.getLogger(__name__)

# The oldest cryptography with every API used here: Certificate
# .not_valid_before_utc/.not_valid_after_utc came in 42.0
# (verify_directly_issued_by in 40.0, the rest is older).
MIN_CRYPTOGRAPHY = (42, 0)

# The formula's defaults (parameters/defaults.yaml), for a CA minion whose
# pillar does not set them.
DEFAULT_CA_CERT = "/etc/mosquitto/certs/ca.crt"
DEFAULT_CA_KEY = "/etc/mosquitto/ca/ca.key"
DEFAULT_DAYS_VALID = 825
# Beside the CA key, root-only: every certificate this CA issued.
RECORD_NAME = "issued.json"
# The only arguments a requester may send to sign_csr.
# A key made for a reissue waits here until its certificate is signed.
NEW_KEY_SUFFIX = ".new"
SIGN_ARGS = ("csr_pem", "dns_names", "ip_addresses", "days_valid", "common_name")

EC_CURVES = {256: "SECP256R1", 384: "SECP384R1", 521: "SECP521R1"}
# Issue certs a little in the past so hosts with a slightly slow clock accept them.
BACKDATE = datetime.timedelta(minutes=5)


def _version(text):
    """(major, minor) of a version string such as '42.0.5' or '43.0.0rc1'."""
    nums = re.findall(r"\d+", str(text))
    return tuple(int(n) for n in (nums + ["0", "0"])[:2])


def __virtual__():
    if "mosquitto_files.atomic_write" not in __utils__ or "mosquitto_names.is_dns_name" not in __utils__:
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


def _key_spec(key_type, key_size):
    """Normalise the wanted key to ("ec", bits) or ("rsa", bits).

    For EC, key_size picks the curve when it names one (256/384/521); any
    other value (such as the RSA-minded default 2048) means P-256.
    """
    key_type = str(key_type).lower()
    key_size = int(key_size)
    if key_type == "ec":
        return "ec", key_size if key_size in EC_CURVES else 256
    if key_type == "rsa":
        if key_size < 2048:
            raise CommandExecutionError(f"RSA key_size {key_size} is too small (minimum 2048)")
        return "rsa", key_size
    raise CommandExecutionError(f"key_type must be 'ec' or 'rsa', not {key_type!r}")


def _new_key(key_type, key_size):
    kind, bits = _key_spec(key_type, key_size)
    if kind == "ec":
        return ec.generate_private_key(getattr(ec, EC_CURVES[bits])())
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _describe_key(key):
    """("ec"|"rsa"|other, bits) of a public or private key."""
    if isinstance(key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
        return "ec", key.curve.key_size
    if isinstance(key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
        return "rsa", key.key_size
    return type(key).__name__, None


def _public_der(key):
    if hasattr(key, "public_key"):
        key = key.public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_matches(cert, key):
    return _public_der(cert.public_key()) == _public_der(key)


def _read(path, what):
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise CommandExecutionError(f"cannot read {what} {path}: {exc.strerror}") from exc


def _load_cert(path, what="certificate"):
    try:
        return x509.load_pem_x509_certificate(_read(path, what))
    except ValueError as exc:
        raise CommandExecutionError(f"{what} {path} is not a PEM certificate: {exc}") from exc


def _load_cert_pem(pem, what="certificate"):
    try:
        return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError) as exc:
        raise CommandExecutionError(f"{what} is not a PEM certificate: {exc}") from exc


def _load_key(path, what="private key"):
    try:
        return serialization.load_pem_private_key(_read(path, what), password=None)
    except (ValueError, TypeError) as exc:
        # TypeError: the key is encrypted; we only manage unencrypted keys.
        raise CommandExecutionError(f"{what} {path} is not an unencrypted PEM key: {exc}") from exc


def _key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _ids(user, group):
    """uid/gid by name; raises before anything is written when one is unknown."""
    return __utils__["mosquitto_files.owner_ids"](user, group)


def _mode(mode):
    return __utils__["mosquitto_files.normalize_mode"](mode)


def _write(path, data, mode, uid=None, gid=None, overwrite=True):
    """Write atomically: the file appears complete, with its final mode and
    owner; overwrite=False never replaces an existing file (see _utils)."""
    __utils__["mosquitto_files.atomic_write"](path, data, mode, uid, gid, overwrite=overwrite)


def _as_list(value, what):
    """Pillar/CLI friendly: None, a list, or a comma separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple, set)):
        return [str(v).strip() for v in value]
    raise CommandExecutionError(f"{what} must be a list, not {type(value).__name__}")


def _dns_list(names):
    out = []
    for name in _as_list(names, "dns_names"):
        name = name.lower().rstrip(".")
        if not __utils__["mosquitto_names.is_dns_name"](name, wildcard=True):
            raise CommandExecutionError(f"invalid DNS name {name!r}")
        if name not in out:
            out.append(name)
    return out


def _ip_list(addresses):
    out = []
    for addr in _as_list(addresses, "ip_addresses"):
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError as exc:
            raise CommandExecutionError(f"invalid IP address {addr!r}") from exc
        if ip not in out:
            out.append(ip)
    return out


def _wanted_sans(common_name, dns_names, ip_addresses):
    """DNS and IP SANs, with the CN among them (clients check SANs, not the CN)."""
    dns, ips = _dns_list(dns_names), _ip_list(ip_addresses)
    if common_name:
        try:
            ip = ipaddress.ip_address(common_name)
            if ip not in ips:
                ips.insert(0, ip)
        except ValueError:
            for name in _dns_list([common_name]):
                if name not in dns:
                    dns.insert(0, name)
    if not dns and not ips:
        raise CommandExecutionError("a server certificate needs at least one DNS name or IP address")
    return dns, ips


def _cert_sans(cert):
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return [n.lower() for n in san.get_values_for_type(x509.DNSName)], san.get_values_for_type(x509.IPAddress)


def _cn(name):
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else None


def _is_ca(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issued_by(cert, ca_cert):
    """True when ca_cert's key signed cert (and the issuer name matches)."""
    try:
        cert.verify_directly_issued_by(ca_cert)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _days_remaining(cert):
    return (cert.not_valid_after_utc - _now()).days


def _info(cert):
    dns, ips = _cert_sans(cert)
    key_type, key_size = _describe_key(cert.public_key())
    return {
        "subject_cn": _cn(cert.subject),
        "issuer_cn": _cn(cert.issuer),
        "serial": f"{cert.serial_number:X}",
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_remaining": _days_remaining(cert),
        "dns_names": dns,
        "ip_addresses": [str(ip) for ip in ips],
        "key_type": key_type,
        "key_size": key_size,
        "fingerprint": cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        "is_ca": _is_ca(cert),
    }


def _load_ca(ca_cert_path, ca_key_path):
    ca_cert = _load_cert(ca_cert_path, "CA certificate")
    if not _is_ca(ca_cert):
        raise CommandExecutionError(f"{ca_cert_path} is not a CA certificate")
    ca_key = _load_key(ca_key_path, "CA key")
    if not _key_matches(ca_cert, ca_key):
        raise CommandExecutionError(f"CA key {ca_key_path} does not belong to CA certificate {ca_cert_path}")
    if ca_cert.not_valid_after_utc <= _now():
        raise CommandExecutionError(f"CA certificate {ca_cert_path} expired on {ca_cert.not_valid_after_utc}")
    return ca_cert, ca_key


def _sign_server_cert(public_key, ca_cert, ca_key, common_name, dns, ips, days_valid):
    """The one place leaf certificates are built: CA=False, serverAuth, SANs as given."""
    if _describe_key(public_key)[0] not in ("ec", "rsa"):
        raise CommandExecutionError(f"unsupported key type {type(public_key).__name__}")
    if _describe_key(public_key)[0] == "rsa" and public_key.key_size < 2048:
        raise CommandExecutionError("RSA keys below 2048 bits are not signed")
    now = _now()
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    sans = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ip) for ip in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=int(days_valid)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                # RSA key exchange encrypts to the server key; EC never does.
                key_encipherment=is_rsa,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    return builder.sign(ca_key, hashes.SHA256())


# --- the CA minion's own settings, its signing policy and its record ---------


def _pillar_tls(fresh):
    """This minion's pillar ``mosquitto:tls``. fresh=True compiles it anew on
    the master (pillar.items), so a policy an operator just changed counts."""
    if fresh and "pillar.items" in __salt__:
        # unmask: Salt 3008 redacts every pillar value pillar.items returns
        # unless asked for the real ones.
        pillar = __salt__["pillar.items"](unmask=True)
    else:
        pillar = globals().get("__pillar__") or {}
    tls = ((pillar or {}).get("mosquitto") or {}).get("tls") or {}
    if not isinstance(tls, dict):
        raise CommandExecutionError("pillar mosquitto:tls on the CA minion must be a mapping")
    return tls


def _ca_settings(fresh=True):
    """CA cert/key paths, longest validity and signing policies of this minion."""
    tls = _pillar_tls(fresh)
    if "mosquitto_config.signing_policies" not in __salt__:
        raise CommandExecutionError("the mosquitto_config module is missing on the CA minion: run saltutil.sync_modules")
    try:
        days = int(tls.get("days_valid", DEFAULT_DAYS_VALID))
    except (TypeError, ValueError) as exc:
        raise CommandExecutionError(f"mosquitto:tls:days_valid on the CA minion is not a number: {exc}") from exc
    return {
        "ca_cert": tls.get("ca_cert") or DEFAULT_CA_CERT,
        "ca_key": tls.get("ca_key") or DEFAULT_CA_KEY,
        "days_valid": days,
        "policies": __salt__["mosquitto_config.signing_policies"](tls.get("signing_policies") or []),
    }


def _policy_for(requester, policies, ca_days):
    """What ``requester`` may have signed: the default (its own id) widened by
    every entry of signing_policies whose ``minions`` glob matches it."""
    rid = str(requester).lower()
    matched = [(i, p) for i, p in enumerate(policies) if fnmatch.fnmatchcase(rid, p["minions"].lower())]
    days = [p["max_days"] for _, p in matched if p.get("max_days")]
    return {
        "requester": rid,
        "dns_names": [pat.lower() for _, p in matched for pat in p.get("dns_names", [])],
        "ip_networks": [ipaddress.ip_network(n) for _, p in matched for n in p.get("ip_networks", [])],
        "max_days": max(days) if days else int(ca_days),
        "matched": [f"signing_policies[{i}] (minions {p['minions']!r})" for i, p in matched],
    }


def _describe_policy(policy):
    rid = policy["requester"]
    dns = [rid, f"{rid}.*"] + policy["dns_names"]
    ips = ", ".join(map(str, policy["ip_networks"])) or "none"
    source = "default" + "".join(f" + {m}" for m in policy["matched"])
    return (f"policy for minion {rid} ({source}): DNS names {', '.join(dns)}; "
            f"IP addresses in {ips}; at most {policy['max_days']} days")


def _name_allowed(name, policy):
    rid = policy["requester"]
    # The minion's own id, or the id followed by a dot: "h1" allows
    # h1.example.com but never h10.example.com.
    if name == rid or name.startswith(rid + "."):
        return True
    return any(fnmatch.fnmatchcase(name, pat) for pat in policy["dns_names"])


def _policy_problems(policy, dns, ips, days):
    problems = [f"DNS name {n}" for n in dns if not _name_allowed(n, policy)]
    problems += [f"IP address {ip}" for ip in ips if not any(ip in net for net in policy["ip_networks"])]
    if int(days) > policy["max_days"]:
        problems.append(f"validity {int(days)} days")
    return problems


def _record_path(ca_key_path):
    return os.path.join(os.path.dirname(os.path.abspath(ca_key_path)), RECORD_NAME)


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


def _record(ca_key_path, cert, requester, how):
    """Add ``cert`` to the CA's record: rewritten whole, atomically (temp file
    + rename), under an exclusive lock on the CA directory, root-only."""
    path = _record_path(ca_key_path)
    dir_fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(dir_fd, fcntl.LOCK_EX)
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
        root = os.geteuid() == 0
        _write(path, (json.dumps(records, indent=1) + "\n").encode(), 0o600, 0 if root else None, 0 if root else None)
    finally:
        os.close(dir_fd)


# --- public functions --------------------------------------------------------


def create_ca(cert_path, key_path, common_name="Mosquitto CA", days_valid=3650, key_type="ec", key_size=2048):
    """
    Create a self-signed CA (key 0600, cert 0644). Refuses to replace an
    existing CA cert or key.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.create_ca /etc/mosquitto/ca/ca.crt /etc/mosquitto/ca/ca.key
    """
    for path in (cert_path, key_path):
        if os.path.lexists(path):
            raise CommandExecutionError(f"{path} exists: a CA is never replaced (clients trust it)")
    key = _new_key(key_type, key_size)
    now = _now()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(common_name))])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=int(days_valid)))
        # path_length=0: this CA signs server certs only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    root = os.geteuid() == 0
    # Key first: a cert without its key is harmless, the other way round
    # would leave a CA nobody can sign with but everyone may already trust.
    _write(key_path, _key_pem(key), 0o600, 0 if root else None, 0 if root else None, overwrite=False)
    _write(cert_path, _cert_pem(cert), 0o644, 0 if root else None, 0 if root else None, overwrite=False)
    return _info(cert)


def cert_info(path):
    """
    Metadata of a PEM certificate: subject_cn, issuer_cn, serial (hex),
    not_before/not_after (ISO 8601, UTC), days_remaining, dns_names,
    ip_addresses, key_type, key_size, fingerprint (SHA-256), is_ca.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.cert_info /etc/mosquitto/certs/server.crt
    """
    return _info(_load_cert(path))


def signed_by(cert_pem, ca_cert_pem):
    """
    True when the PEM certificate cert_pem is signed by the PEM CA certificate
    ca_cert_pem (validity dates aside).

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.signed_by "$(cat server.crt)" "$(cat ca.crt)"
    """
    return _issued_by(_load_cert_pem(cert_pem), _load_cert_pem(ca_cert_pem, "CA certificate"))


def pem_info(cert_pem):
    """
    Like cert_info, for a PEM certificate given as a string.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.pem_info "$(cat server.crt)"
    """
    return _info(_load_cert_pem(cert_pem))


def check_owner(user, group):
    """
    {"uid", "gid"} of user and group; a clear error when either does not exist.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.check_owner root mosquitto
    """
    uid, gid = _ids(user, group)
    return {"uid": uid, "gid": gid}


def key_matches_cert(cert_path, key_path):
    """
    True when the private key at key_path belongs to the certificate.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.key_matches_cert /etc/mosquitto/ca/ca.crt /etc/mosquitto/ca/ca.key
    """
    return _key_matches(_load_cert(cert_path), _load_key(key_path))


def ensure_key(key_path, key_type="ec", key_size=2048, user="root", group="mosquitto", mode="0640", reuse_key=True):
    """
    Keep the key at key_path when it is usable (right type and size, reuse_key),
    else write a new one. A kept key gets the wanted owner and mode.
    Returns {"created": bool, "key_type", "key_size", "permissions": {what was fixed}}.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.ensure_key /etc/mosquitto/certs/server.key
    """
    kind, bits = _key_spec(key_type, key_size)
    uid, gid = _ids(user, group)
    if reuse_key and os.path.exists(key_path):
        try:
            if _describe_key(_load_key(key_path)) == (kind, bits):
                fixed = ensure_permissions(key_path, user, group, mode)
                return {"created": False, "key_type": kind, "key_size": bits, "permissions": fixed}
        except CommandExecutionError:
            pass  # unreadable or foreign key: replace it below
    _write(key_path, _key_pem(_new_key(kind, bits)), _mode(mode), uid, gid)
    return {"created": True, "key_type": kind, "key_size": bits, "permissions": {}}


def issue_cert(
    cert_path,
    key_path,
    ca_cert_path,
    ca_key_path,
    common_name,
    dns_names=(),
    ip_addresses=(),
    days_valid=825,
    key_type="ec",
    key_size=2048,
    key_user="root",
    key_group="mosquitto",
    key_mode="0640",
    reuse_key=True,
):
    """
    Issue a server certificate signed by the local CA. The key is kept when it
    exists and fits (reuse_key), else replaced. The CN is always among the SANs.
    Returns cert_info of the new certificate.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.issue_cert /etc/mosquitto/certs/server.crt /etc/mosquitto/certs/server.key \\
            /etc/mosquitto/ca/ca.crt /etc/mosquitto/ca/ca.key mqtt.example.com dns_names=mqtt2.example.com
    """
    # Validate everything that can fail before a single byte is written.
    _ids(key_user, key_group)
    _key_spec(key_type, key_size)
    dns, ips = _wanted_sans(common_name, dns_names, ip_addresses)
    ca_cert, ca_key = _load_ca(ca_cert_path, ca_key_path)
    ensure_key(key_path, key_type, key_size, key_user, key_group, key_mode, reuse_key)
    key = _load_key(key_path)
    cert = _sign_server_cert(key.public_key(), ca_cert, ca_key, str(common_name), dns, ips, days_valid)
    _record(ca_key_path, cert, globals().get("__opts__", {}).get("id", "local"), "local")
    _write(cert_path, _cert_pem(cert), 0o644)
    return _info(cert)


def create_csr(key_path, common_name, dns_names=(), ip_addresses=()):
    """
    A PEM certificate signing request for the key at key_path. The CA ignores
    everything in it but the public key; the names are there for humans.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.create_csr /etc/mosquitto/certs/server.key mqtt.example.com
    """
    key = _load_key(key_path)
    dns, ips = _wanted_sans(common_name, dns_names, ip_addresses)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(common_name))]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns] + [x509.IPAddress(ip) for ip in ips]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def sign_csr(csr_pem, *, dns_names=(), ip_addresses=(), days_valid=None, common_name=None, **kwargs):
    """
    Sign a CSR with this minion's CA for the minion that asked, and return the
    PEM certificate. Meant to be called by other minions through Salt peer
    publish (``publish.publish <ca minion> mosquitto_ca.sign_csr``) so the CA
    key never leaves this host.

    - The CA is this minion's own (pillar ``mosquitto:tls:ca_cert``/``ca_key``,
      defaults /etc/mosquitto/certs/ca.crt and /etc/mosquitto/ca/ca.key).
      Any argument besides the CSR, the names, the validity and the common
      name (a CA or key path, an extension...) is refused: nothing is signed.
    - The requester is the minion id Salt gives the call (``__pub_id``, set by
      the master from the caller's authenticated id); a call without one
      (salt-call here, or from the master) is refused.
    - The names (dns_names + ip_addresses + common_name, default the first of
      them) and days_valid (default the CA's tls:days_valid) must fit the
      policy: DNS names equal to the requester's id or starting with
      ``<id>.``, no IP addresses, at most tls:days_valid days, widened by
      ``mosquitto:tls:signing_policies`` entries whose ``minions`` glob
      matches the requester. A refusal is logged here (warning) and raised
      to the caller naming the minion, the names and the policy.
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
        raise CommandExecutionError(
            f"sign_csr refuses argument(s) {', '.join(unknown)} (it accepts only {', '.join(SIGN_ARGS)}): "
            "the CA minion signs with its own CA from its own pillar, the caller chooses no CA, key or "
            "extension. Nothing was signed."
        )
    if not requester:
        raise CommandExecutionError(
            "sign_csr serves other minions through Salt peer publish and signs for the minion id Salt "
            "gives the call; this call has none (salt-call or the master?). Nothing was signed; "
            "on the CA host itself use mosquitto_ca.issue_cert."
        )
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode() if isinstance(csr_pem, str) else csr_pem)
    except (ValueError, TypeError) as exc:
        raise CommandExecutionError(f"not a PEM certificate signing request: {exc}") from exc
    if not csr.is_signature_valid:
        raise CommandExecutionError("CSR signature does not verify (the requester does not hold the key)")
    settings = _ca_settings()
    dns, ips = _wanted_sans(common_name, dns_names, ip_addresses)
    common_name = common_name or (dns[0] if dns else str(ips[0]))
    days = settings["days_valid"] if days_valid is None else days_valid
    try:
        days = int(days)
    except (TypeError, ValueError) as exc:
        raise CommandExecutionError(f"days_valid must be a number, not {days!r}") from exc
    if days < 1:
        raise CommandExecutionError(f"days_valid must be at least 1, not {days}")
    policy = _policy_for(requester, settings["policies"], settings["days_valid"])
    problems = _policy_problems(policy, dns, ips, days)
    if problems:
        message = (f"minion {policy['requester']} may not have a certificate with {', '.join(problems)}: "
                   f"not allowed by the {_describe_policy(policy)}. Nothing was signed; widen it with "
                   "mosquitto:tls:signing_policies in the CA minion's pillar if this is wanted.")
        log.warning("mosquitto_ca.sign_csr refused: %s", message)
        raise CommandExecutionError(message)
    ca_cert, ca_key = _load_ca(settings["ca_cert"], settings["ca_key"])
    cert = _sign_server_cert(csr.public_key(), ca_cert, ca_key, str(common_name), dns, ips, days)
    _record(settings["ca_key"], cert, policy["requester"], "peer")
    log.info("mosquitto_ca.sign_csr: signed serial %X for %s (%s)", cert.serial_number, policy["requester"],
             ", ".join(dns + [str(i) for i in ips]))
    return _cert_pem(cert).decode()


def check_request(requester, dns_names=(), ip_addresses=(), days_valid=None, common_name=None):
    """
    Whether this CA minion's policy lets ``requester`` have a certificate for
    these names and days, without signing anything: {"allowed", "problems",
    "policy"}. For operators checking a policy before a run.

    CLI Example:

    .. code-block:: bash

        salt ca-minion mosquitto_ca.check_request mqtt2.example.com dns_names='[mqtt.example.com]'
    """
    settings = _ca_settings()
    dns, ips = _wanted_sans(common_name, dns_names, ip_addresses)
    days = settings["days_valid"] if days_valid is None else int(days_valid)
    policy = _policy_for(requester, settings["policies"], settings["days_valid"])
    problems = _policy_problems(policy, dns, ips, days)
    return {"allowed": not problems, "problems": problems, "policy": _describe_policy(policy)}


def issued(ca_key_path=None, requester=None):
    """
    Every certificate this CA issued, oldest first: serial (hex), requester
    (minion id), how ("peer": signed for another minion; "local": this
    host's own), subject_cn, dns_names, ip_addresses, not_after, issued_at,
    fingerprint. Read from ``issued.json`` beside the CA key
    (pillar mosquitto:tls:ca_key, default /etc/mosquitto/ca/ca.key).

    CLI Example:

    .. code-block:: bash

        salt ca-minion mosquitto_ca.issued
        salt ca-minion mosquitto_ca.issued requester=mqtt2.example.com
    """
    path = _record_path(ca_key_path or _ca_settings(fresh=False)["ca_key"])
    records = _read_records(path)
    if requester is not None:
        records = [r for r in records if r.get("requester") == str(requester).lower()]
    return records


def read_ca_cert(ca_cert_path=None, **kwargs):
    """
    The CA certificate as PEM. Re-serialised from the parsed certificate, so a
    caller can never read anything but a CA certificate. Called by another
    minion (peer publish) it is always this minion's own CA certificate
    (pillar mosquitto:tls:ca_cert), whatever path the caller gives.

    CLI Example:

    .. code-block:: bash

        salt ca-minion mosquitto_ca.read_ca_cert /etc/mosquitto/certs/ca.crt
    """
    if ca_cert_path is None or kwargs.get("__pub_id"):
        ca_cert_path = _pillar_tls(False).get("ca_cert") or DEFAULT_CA_CERT
    cert = _load_cert(ca_cert_path, "CA certificate")
    if not _is_ca(cert):
        raise CommandExecutionError(f"{ca_cert_path} is not a CA certificate")
    return _cert_pem(cert).decode()


def write_cert(cert_path, cert_pem, key_path=None, ca_cert_path=None):
    """
    Install a PEM certificate (0644, atomically) after checking it: it must
    parse, match key_path and verify against ca_cert_path when those are given.
    Used for certificates signed by a remote CA minion. Returns cert_info.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.write_cert /etc/mosquitto/certs/server.crt "$(cat server.crt)"
    """
    cert = _load_cert_pem(cert_pem)
    if key_path is not None and not _key_matches(cert, _load_key(key_path)):
        raise CommandExecutionError(f"certificate for {cert_path} does not match key {key_path}")
    if ca_cert_path is not None and not _issued_by(cert, _load_cert(ca_cert_path, "CA certificate")):
        raise CommandExecutionError(f"certificate for {cert_path} is not signed by CA {ca_cert_path}")
    _write(cert_path, _cert_pem(cert), 0o644)
    return _info(cert)


def install_cert(cert_path, cert_pem, key_path, ca_cert_path=None, new_key_path=None, ca_cert_pem=None):
    """
    Install a certificate signed by a remote CA minion together with its key.
    Everything is checked first: the certificate parses, is signed by the CA
    at ca_cert_path (or given as ca_cert_pem) and matches the key (new_key_path when given, else
    key_path). Then a new key is renamed over key_path and the certificate
    written (0644, atomically). Returns cert_info.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.install_cert /etc/mosquitto/certs/server.crt "$(cat server.crt)" \\
            /etc/mosquitto/certs/server.key /etc/mosquitto/certs/ca.crt
    """
    cert = _load_cert_pem(cert_pem)
    if not _key_matches(cert, _load_key(new_key_path or key_path)):
        raise CommandExecutionError(f"certificate for {cert_path} does not match key {new_key_path or key_path}")
    ca_cert = _load_cert_pem(ca_cert_pem, "CA certificate") if ca_cert_pem else _load_cert(ca_cert_path, "CA certificate")
    if not _issued_by(cert, ca_cert):
        raise CommandExecutionError(f"certificate for {cert_path} is not signed by CA {ca_cert_path or 'given'}")
    if new_key_path:
        __utils__["mosquitto_files.replace"](new_key_path, key_path)
    _write(cert_path, _cert_pem(cert), 0o644)
    return _info(cert)


def key_fits(key_path, key_type="ec", key_size=2048):
    """
    True when key_path holds a readable key of the wanted type and size (one
    a reissue keeps).

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.key_fits /etc/mosquitto/certs/server.key ec
    """
    want = _key_spec(key_type, key_size)
    if not os.path.exists(key_path):
        return False
    try:
        return _describe_key(_load_key(key_path)) == want
    except CommandExecutionError:
        return False


def discard_new_key(path):
    """
    Remove a new key (``*.new``) that certificate_managed made for a
    certificate the CA minion then refused, so a refused run leaves nothing
    behind. Refuses any other file. True when it existed.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.discard_new_key /etc/mosquitto/certs/server.key.new
    """
    if not str(path).endswith(NEW_KEY_SUFFIX):
        raise CommandExecutionError(f"{path} is not a new key ({NEW_KEY_SUFFIX}): not removing it")
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def needs_reissue(
    cert_path,
    key_path,
    ca_cert_path,
    dns_names=(),
    ip_addresses=(),
    renew_days=30,
    key_type="ec",
    key_size=2048,
    common_name=None,
    ca_cert_pem=None,
):
    """
    Whether the server certificate must be (re)issued, and why.
    Returns {"reissue": bool, "reasons": [str, ...]}.

    Wanted SANs are dns_names + ip_addresses (+ common_name when given),
    compared order- and case-insensitively; the certificate's own CN must be
    among its SANs. ca_cert_pem, when given, is used instead of reading
    ca_cert_path (a CA cert just fetched from a CA minion, not yet written).

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.needs_reissue /etc/mosquitto/certs/server.crt /etc/mosquitto/certs/server.key \\
            /etc/mosquitto/ca/ca.crt dns_names='[mqtt.example.com]'
    """
    if not os.path.exists(cert_path):
        return {"reissue": True, "reasons": ["certificate missing"]}
    if not os.path.exists(key_path):
        return {"reissue": True, "reasons": ["key missing"]}
    try:
        cert = _load_cert(cert_path)
    except CommandExecutionError as exc:
        return {"reissue": True, "reasons": [f"certificate unreadable ({exc})"]}
    try:
        key = _load_key(key_path)
    except CommandExecutionError as exc:
        return {"reissue": True, "reasons": [f"key unreadable ({exc})"]}

    reasons = []
    if not _key_matches(cert, key):
        reasons.append("key does not match certificate")

    want_dns, want_ips = _wanted_sans(common_name, dns_names, ip_addresses)
    have_dns, have_ips = _cert_sans(cert)
    added = sorted(set(want_dns) - set(have_dns)) + sorted(str(i) for i in set(want_ips) - set(have_ips))
    removed = sorted(set(have_dns) - set(want_dns)) + sorted(str(i) for i in set(have_ips) - set(want_ips))
    if added or removed:
        parts = ([f"added {', '.join(added)}"] if added else []) + ([f"removed {', '.join(removed)}"] if removed else [])
        reasons.append(f"SANs changed ({'; '.join(parts)})")
    cn = _cn(cert.subject)
    if common_name is not None and cn != str(common_name):
        reasons.append(f"common name changed ({cn} -> {common_name})")
    elif cn and cn.lower() not in have_dns and cn not in [str(i) for i in have_ips]:
        reasons.append(f"common name {cn} is not among the SANs")

    want = _key_spec(key_type, key_size)
    have = _describe_key(cert.public_key())
    if have != want:
        reasons.append(f"key type changed ({have[0]} {have[1]} -> {want[0]} {want[1]})")

    ca_cert = _load_cert_pem(ca_cert_pem, "CA certificate") if ca_cert_pem else _load_cert(ca_cert_path, "CA certificate")
    if not _issued_by(cert, ca_cert):
        reasons.append("issued by a different CA")

    days = _days_remaining(cert)
    if cert.not_valid_after_utc <= _now():
        reasons.append(f"expired on {cert.not_valid_after_utc.date().isoformat()}")
    elif days < int(renew_days):
        reasons.append(f"expires in {days} days (renew_days {renew_days})")
    return {"reissue": bool(reasons), "reasons": reasons}


def verify_chain(cert_path, ca_cert_path):
    """
    True when cert_path is signed by the CA at ca_cert_path and both are
    within their validity period.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.verify_chain /etc/mosquitto/certs/server.crt /etc/mosquitto/ca/ca.crt
    """
    cert, ca_cert = _load_cert(cert_path), _load_cert(ca_cert_path, "CA certificate")
    now = _now()
    in_time = all(c.not_valid_before_utc <= now < c.not_valid_after_utc for c in (cert, ca_cert))
    return in_time and _is_ca(ca_cert) and _issued_by(cert, ca_cert)


def ensure_permissions(path, user, group, mode, test=False):
    """
    Give an existing file the wanted owner and mode. Returns what differed
    ({"user": [old, new], ...}), empty when nothing did; with test=True
    nothing is changed.

    CLI Example:

    .. code-block:: bash

        salt '*' mosquitto_ca.ensure_permissions /etc/mosquitto/certs/server.key root mosquitto 0640
    """
    uid, gid = _ids(user, group)
    os.stat(path)  # a missing file is an error here, not "nothing differs"
    diff = {key: [change["old"], change["new"]]
            for key, change in __utils__["mosquitto_files.attr_changes"](path, uid, gid, _mode(mode)).items()}
    if diff and not test:
        __utils__["mosquitto_files.set_attrs"](path, uid, gid, _mode(mode))
    return diff
