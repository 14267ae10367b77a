"""
Checks of a server certificate the formula did not issue (tls:own_cert and
tls:own_key: x509_v2, Vault, ACME, a corporate PKI), with no Salt in it.

Reached as ``__utils__["mosquitto_own_cert.<function>"]`` by the
``mosquitto_ca.own_certificate_installed`` state. ``problems`` answers why
a certificate file, its key and the CA the clients trust (tls:ca_cert)
would not serve the broker's names; each problem names the pillar key to
fix. The certificate file may hold intermediates after the leaf (ACME's
fullchain.pem): mosquitto sends them, and the chain must lead to the CA.
"""
import ipaddress

from salt.exceptions import CommandExecutionError

try:
    from cryptography import x509

    HAS_CRYPTOGRAPHY = True
except ImportError:
    HAS_CRYPTOGRAPHY = False

__virtualname__ = "mosquitto_own_cert"

CERT_KEY = "mosquitto:tls:own_cert"
KEY_KEY = "mosquitto:tls:own_key"
CA_KEY = "mosquitto:tls:ca_cert"
# An intermediate chain longer than this is not a server's.
MAX_CHAIN = 8


def __virtual__():
    return __virtualname__


def read_chain(data, path):
    """The certificates in the PEM ``data`` of ``path``, leaf first."""
    try:
        chain = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CommandExecutionError(f"{CERT_KEY}: {path} holds no PEM certificate: {exc}") from exc
    if len(chain) > MAX_CHAIN + 1:
        raise CommandExecutionError(f"{CERT_KEY}: {path} holds {len(chain)} certificates; a server "
                                    f"certificate and at most {MAX_CHAIN} intermediates are expected")
    return chain


def covers(dns_names, name):
    """True when one of the certificate's DNS names is ``name`` or a
    wildcard (``*.example.com``) matching its first label (RFC 6125)."""
    name = name.lower().rstrip(".")
    first, _, rest = name.partition(".")
    return any(n == name or (n.startswith("*.") and rest and n[2:] == rest and first) for n in dns_names)


def chain_reaches(chain, ca_cert, issued_by):
    """True when the leaf (chain[0]) leads to ``ca_cert`` through the
    intermediates in the file, in order (``issued_by(cert, issuer)``)."""
    for cert, issuer in zip(chain, chain[1:] + [None], strict=True):
        if issued_by(cert, ca_cert):
            return True
        if issuer is None or not issued_by(cert, issuer):
            return False
    return False


def problems(chain, key, ca_cert, *, paths, dns, ips, now, pki):
    """Why ``chain`` (leaf first) with ``key`` cannot serve ``dns``/``ips``
    to clients trusting ``ca_cert``: a list of messages, each naming the
    pillar key to fix; [] when it can. ``paths``: {"cert", "key",
    "ca_cert"} for the messages; ``pki``: mosquitto_pki's functions
    (key_matches, issued_by, is_ca, cert_sans, in_time)."""
    leaf, found = chain[0], []
    if not pki["key_matches"](leaf, key):
        found.append(f"{KEY_KEY}: the key in {paths['key']} does not belong to the certificate in "
                     f"{paths['cert']} ({CERT_KEY})")
    if not pki["is_ca"](ca_cert):
        found.append(f"{CA_KEY}: {paths['ca_cert']} is not a CA certificate")
    elif not chain_reaches(chain, ca_cert, pki["issued_by"]):
        found.append(f"{CERT_KEY}: {paths['cert']} is not issued by the CA in {CA_KEY} ({paths['ca_cert']}, "
                     f"{ca_cert.subject.rfc4514_string()}): it was issued by {leaf.issuer.rfc4514_string()}; "
                     "add the intermediates after the certificate in that file, or set tls:ca_cert to "
                     "the CA that issued it")
    have_dns, have_ips = pki["cert_sans"](leaf)
    missing = [n for n in dns if not covers(have_dns, n)]
    missing += [str(ip) for ip in ips if ipaddress.ip_address(ip) not in have_ips]
    if missing:
        names = ", ".join(have_dns + [str(i) for i in have_ips]) or "none"
        found.append(f"{CERT_KEY}: {paths['cert']} does not cover {', '.join(missing)} (mosquitto:domain, "
                     f"tls:dns_names and tls:ip_addresses must all be among its names; it has: {names})")
    if not pki["in_time"](leaf, now):
        found.append(f"{CERT_KEY}: {paths['cert']} is valid only from {leaf.not_valid_before_utc.isoformat()} "
                     f"to {leaf.not_valid_after_utc.isoformat()}")
    return found
