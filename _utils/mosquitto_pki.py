"""
The CA's certificate work, with no Salt in it: key specs, names, building
and signing certificates, reading them back as plain dicts.

Reached as ``__utils__["mosquitto_pki.<function>"]`` by ``mosquitto_ca``
(the module keeps what needs Salt: settings, the signing policy, the
record, file owners). Everything is done with the ``cryptography`` library,
never the openssl CLI, so no key passes through a command line or a temp
file. The caller passes ``now`` where time counts, so one clock (the
module's) rules a whole call.
"""
import datetime
import ipaddress

from salt.exceptions import CommandExecutionError

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

__virtualname__ = "mosquitto_pki"

EC_CURVES = {256: "SECP256R1", 384: "SECP384R1", 521: "SECP521R1"}
# Issue certs a little in the past so hosts with a slightly slow clock accept them.
BACKDATE = datetime.timedelta(minutes=5)


def __virtual__():
    # Loaded even without cryptography: mosquitto_ca's __virtual__ says
    # what is missing, which a util that stays away could not.
    return __virtualname__


# --- keys ----------------------------------------------------------------------


def key_spec(key_type, key_size):
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


def new_key(key_type, key_size):
    """A new private key of the wanted type and size."""
    kind, bits = key_spec(key_type, key_size)
    if kind == "ec":
        return ec.generate_private_key(getattr(ec, EC_CURVES[bits])())
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def describe_key(key):
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


def key_matches(cert, key):
    """True when ``key`` (private or public) belongs to ``cert``."""
    return _public_der(cert.public_key()) == _public_der(key)


def key_pem(key):
    """PEM (PKCS#8, unencrypted) of a private key: for the key file only."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# --- reading -------------------------------------------------------------------------


def _read(path, what):
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise CommandExecutionError(f"cannot read {what} {path}: {exc.strerror}") from exc


def read_cert(path, what="certificate"):
    """The PEM certificate at ``path``; a clear error when it is none."""
    try:
        return x509.load_pem_x509_certificate(_read(path, what))
    except ValueError as exc:
        raise CommandExecutionError(f"{what} {path} is not a PEM certificate: {exc}") from exc


def parse_cert(pem, what="certificate"):
    """The certificate in the PEM text ``pem`` (str or bytes)."""
    try:
        return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError) as exc:
        raise CommandExecutionError(f"{what} is not a PEM certificate: {exc}") from exc


def read_key(path, what="private key"):
    """The unencrypted PEM private key at ``path``. The error never holds key bytes."""
    try:
        return serialization.load_pem_private_key(_read(path, what), password=None)
    except (ValueError, TypeError) as exc:
        # TypeError: the key is encrypted; we only manage unencrypted keys.
        raise CommandExecutionError(f"{what} {path} is not an unencrypted PEM key: {exc}") from exc


def parse_csr(pem):
    """The CSR in ``pem``, its signature checked (the requester holds the key)."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError) as exc:
        raise CommandExecutionError(f"not a PEM certificate signing request: {exc}") from exc
    if not csr.is_signature_valid:
        raise CommandExecutionError("CSR signature does not verify (the requester does not hold the key)")
    return csr


def cert_pem(cert):
    """PEM bytes of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


# --- names ---------------------------------------------------------------------------


def as_list(value, what):
    """Pillar/CLI friendly: None, a list, or a comma separated string."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple, set)):
        return [str(v).strip() for v in value]
    raise CommandExecutionError(f"{what} must be a list, not {type(value).__name__}")


def dns_list(names, is_dns_name):
    """Lower-cased, de-duplicated DNS names; ``is_dns_name`` is the formula's
    one name rule (mosquitto_names.is_dns_name, passed in: utils get no
    ``__utils__``)."""
    out = []
    for name in as_list(names, "dns_names"):
        name = name.lower().rstrip(".")
        if not is_dns_name(name, wildcard=True):
            raise CommandExecutionError(f"invalid DNS name {name!r}")
        if name not in out:
            out.append(name)
    return out


def ip_list(addresses):
    """De-duplicated ipaddress objects."""
    out = []
    for addr in as_list(addresses, "ip_addresses"):
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError as exc:
            raise CommandExecutionError(f"invalid IP address {addr!r}") from exc
        if ip not in out:
            out.append(ip)
    return out


def wanted_sans(common_name, dns_names, ip_addresses, is_dns_name):
    """DNS and IP SANs, with the CN among them (clients check SANs, not the CN)."""
    dns, ips = dns_list(dns_names, is_dns_name), ip_list(ip_addresses)
    if common_name:
        try:
            ip = ipaddress.ip_address(common_name)
            if ip not in ips:
                ips.insert(0, ip)
        except ValueError:
            for name in dns_list([common_name], is_dns_name):
                if name not in dns:
                    dns.insert(0, name)
    if not dns and not ips:
        raise CommandExecutionError("a server certificate needs at least one DNS name or IP address")
    return dns, ips


def cert_sans(cert):
    """(DNS names lower-cased, IP addresses) of a certificate."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return [n.lower() for n in san.get_values_for_type(x509.DNSName)], san.get_values_for_type(x509.IPAddress)


def name_cn(name):
    """The CN of an x509 Name, or None."""
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return attrs[0].value if attrs else None


# --- what a certificate is -------------------------------------------------------------


def is_ca(cert):
    """True when BasicConstraints says CA."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def issued_by(cert, ca_cert):
    """True when ca_cert's key signed cert (and the issuer name matches)."""
    try:
        cert.verify_directly_issued_by(ca_cert)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def in_time(cert, now):
    """True when ``now`` is within the certificate's validity."""
    return cert.not_valid_before_utc <= now < cert.not_valid_after_utc


def info(cert, now):
    """Metadata of a certificate, nothing secret in it."""
    dns, ips = cert_sans(cert)
    key_type, key_size = describe_key(cert.public_key())
    return {
        "subject_cn": name_cn(cert.subject),
        "issuer_cn": name_cn(cert.issuer),
        "serial": f"{cert.serial_number:X}",
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "days_remaining": (cert.not_valid_after_utc - now).days,
        "dns_names": dns,
        "ip_addresses": [str(ip) for ip in ips],
        "key_type": key_type,
        "key_size": key_size,
        "fingerprint": cert.fingerprint(hashes.SHA256()).hex(":").upper(),
        "is_ca": is_ca(cert),
    }


# --- building -----------------------------------------------------------------------------


def _key_usage(**true):
    flags = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{flag: bool(true.get(flag)) for flag in flags})


def build_ca(key, *, common_name, days_valid, now):
    """A self-signed CA certificate for ``key``: signs server certs only
    (path_length=0, keyCertSign + cRLSign)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(common_name))])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=int(days_valid)))
        # path_length=0: this CA signs server certs only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def build_csr(key, *, common_name, dns, ips):
    """A PEM CSR for ``key``. The CA reads only its public key; the names are for humans."""
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


def sign_server_cert(public_key, *, ca_cert, ca_key, common_name, dns, ips, days_valid, now):
    """The one place leaf certificates are built: CA=False, serverAuth, SANs as given."""
    kind = describe_key(public_key)[0]
    if kind not in ("ec", "rsa"):
        raise CommandExecutionError(f"unsupported key type {type(public_key).__name__}")
    if kind == "rsa" and public_key.key_size < 2048:
        raise CommandExecutionError("RSA keys below 2048 bits are not signed")
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    sans = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ip) for ip in ips]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(common_name))]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=int(days_valid)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # RSA key exchange encrypts to the server key; EC never does.
        .add_extension(_key_usage(digital_signature=True, key_encipherment=kind == "rsa"), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
    )
    return builder.sign(ca_key, hashes.SHA256())


def _name_reasons(cert, dns, ips, common_name):
    """How the certificate's SANs and CN differ from the wanted ones."""
    reasons = []
    have_dns, have_ips = cert_sans(cert)
    added = sorted(set(dns) - set(have_dns)) + sorted(str(i) for i in set(ips) - set(have_ips))
    removed = sorted(set(have_dns) - set(dns)) + sorted(str(i) for i in set(have_ips) - set(ips))
    if added or removed:
        parts = (([f"added {', '.join(added)}"] if added else [])
                 + ([f"removed {', '.join(removed)}"] if removed else []))
        reasons.append(f"SANs changed ({'; '.join(parts)})")
    cn = name_cn(cert.subject)
    if common_name is not None and cn != str(common_name):
        reasons.append(f"common name changed ({cn} -> {common_name})")
    elif cn and cn.lower() not in have_dns and cn not in [str(i) for i in have_ips]:
        reasons.append(f"common name {cn} is not among the SANs")
    return reasons


def reissue_reasons(cert, key, *, ca_cert, dns, ips, common_name, want_key, renew_days, now):
    """Why ``cert`` (with ``key``) is not the wanted one; [] when it is.

    SANs compare order- and case-insensitively; the certificate's own CN
    must be among its SANs."""
    reasons = [] if key_matches(cert, key) else ["key does not match certificate"]
    reasons += _name_reasons(cert, dns, ips, common_name)
    have = describe_key(cert.public_key())
    if have != want_key:
        reasons.append(f"key type changed ({have[0]} {have[1]} -> {want_key[0]} {want_key[1]})")
    if not issued_by(cert, ca_cert):
        reasons.append("issued by a different CA")
    days = (cert.not_valid_after_utc - now).days
    if cert.not_valid_after_utc <= now:
        reasons.append(f"expired on {cert.not_valid_after_utc.date().isoformat()}")
    elif days < int(renew_days):
        reasons.append(f"expires in {days} days (renew_days {renew_days})")
    return reasons
