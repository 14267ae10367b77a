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

EC_CURVES = {256: "SECP256R1", 384: "SECP384R1"}
# The only public keys a leaf certificate is made for: what OpenSSL,
# mosquitto and the common MQTT client TLS stacks (mbedTLS, wolfSSL, Java,
# Go, browsers for websockets) all verify. P-521 and Ed25519 are missing
# from some of them; secp256k1 has 256 bits but is no TLS curve; RSA
# below 2048 bits is breakable, above 4096 slow for nothing.
SIGNABLE_EC = {"secp256r1": "P-256", "secp384r1": "P-384"}
SIGNABLE_RSA = (2048, 3072, 4096)
# RFC 5280 ub-common-name: a longer CN cannot be encoded (cryptography raises).
MAX_CN = 64
# Names per certificate: a broker has a few; a request with hundreds is
# not one (and every name is checked against every policy pattern).
MAX_SANS = 32
# Issue certs a little in the past so hosts with a slightly slow clock accept them.
BACKDATE = datetime.timedelta(minutes=5)


def __virtual__():
    # Loaded even without cryptography: mosquitto_ca's __virtual__ says
    # what is missing, which a util that stays away could not.
    return __virtualname__


# --- keys ----------------------------------------------------------------------


def key_spec(key_type, key_size):
    """Normalise the wanted key to ("ec", bits) or ("rsa", bits).

    For EC, key_size picks the curve when it names one (256/384); 521 is
    refused (the CA signs no P-521 key, see SIGNABLE_EC); any other value
    (such as the RSA-minded default 2048) means P-256.
    """
    key_type = str(key_type).lower()
    key_size = int(key_size)
    if key_type == "ec":
        if key_size == 521:
            raise CommandExecutionError("EC key_size 521 (P-521) is not signed: use 256 (P-256) or 384 (P-384)")
        return "ec", key_size if key_size in EC_CURVES else 256
    if key_type == "rsa":
        if key_size < 2048:
            raise CommandExecutionError(f"RSA key_size {key_size} is too small (minimum 2048)")
        if key_size not in SIGNABLE_RSA:
            raise CommandExecutionError(
                f"RSA key_size {key_size} is not signed (allowed: {', '.join(map(str, SIGNABLE_RSA))})")
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


def key_problem(public_key):
    """Why a certificate is not made for ``public_key`` (naming its type,
    curve or size), or None when it is on the allowlist."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        if curve in SIGNABLE_EC:
            return None
        allowed = ", ".join(SIGNABLE_EC.values())
        return f"EC curve {curve} is not signed (allowed: {allowed}; RSA {', '.join(map(str, SIGNABLE_RSA))})"
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size not in SIGNABLE_RSA:
            return (f"RSA {public_key.key_size}-bit key is not signed "
                    f"(allowed: RSA {', '.join(map(str, SIGNABLE_RSA))} bits; EC {', '.join(SIGNABLE_EC.values())})")
        if public_key.public_numbers().e != 65537:
            return f"RSA public exponent {public_key.public_numbers().e} is not signed (only 65537)"
        return None
    return (f"{type(public_key).__name__.lstrip('_')} keys are not signed "
            f"(allowed: EC {', '.join(SIGNABLE_EC.values())}; RSA {', '.join(map(str, SIGNABLE_RSA))})")


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
        # 253 counts the whole name, a leading "*." too (is_dns_name
        # measures what follows it).
        if len(name) > 253 or not is_dns_name(name, wildcard=True):
            raise CommandExecutionError(f"invalid DNS name {name[:300]!r} (at most 253 characters, "
                                        "labels of at most 63 letters, digits or inner hyphens)")
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
    if len(dns) + len(ips) > MAX_SANS:
        raise CommandExecutionError(f"{len(dns) + len(ips)} names asked for: a certificate gets at most {MAX_SANS}")
    return dns, ips


def subject_cn(common_name, dns, ips):
    """The certificate's CN, normalised like its SANs (lower case, no
    trailing dot; an IP address in its normal form). ``dns``/``ips`` are
    wanted_sans' lists, which already hold the CN. Without a common_name:
    the first name that fits a CN. An explicit CN over RFC 5280's 64
    characters is refused: a CN other than the one asked for would make
    every later run see a changed certificate."""
    if common_name:
        text = str(common_name).strip()
        try:
            cn = str(ipaddress.ip_address(text))
        except ValueError:
            cn = text.lower().rstrip(".")
        if len(cn) > MAX_CN:
            raise CommandExecutionError(
                f"common name {cn[:80]}... has {len(cn)} characters, a certificate's holds at most {MAX_CN} "
                "(RFC 5280): use a shorter name as common name (the domain) and the long one as a DNS name")
        return cn
    for name in list(dns) + [str(ip) for ip in ips]:
        if len(name) <= MAX_CN:
            return name
    raise CommandExecutionError(f"no name of this request fits a common name ({MAX_CN} characters at most): "
                                "give a shorter common_name")


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
    """The one place leaf certificates are built: CA=False, serverAuth, SANs
    as given, only for allowlisted keys (key_problem)."""
    problem = key_problem(public_key)
    if problem:
        raise CommandExecutionError(problem)
    kind = describe_key(public_key)[0]
    try:
        authority = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value)
    except x509.ExtensionNotFound:
        # An adopted CA (tls:adopt_ca) made without subjectKeyIdentifier.
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())
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
        .add_extension(authority, critical=False)
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
    # CNs are issued lower-case (subject_cn): a domain asked for in another
    # case is the same name.
    if common_name is not None and (cn or "").lower() != str(common_name).lower():
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
