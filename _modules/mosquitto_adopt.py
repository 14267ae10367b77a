"""
Taking over a broker host the formula did not set up (README "Migrating
from the Ansible playbook"): what is already there, read and checked.

- ``ca_check``: the CA named in pillar ``tls:adopt_ca`` (certificate and
  key on the host, the key maybe passphrase-protected as openssl's
  ``req -x509`` leaves it) is usable: both files there, a CA certificate
  in its validity, a key that opens and belongs to it, and no other CA
  already at the formula's ``tls:ca_cert``/``tls:ca_key``. Called while
  configure.tls renders: a problem fails the run before any state runs,
  naming the pillar key.
- ``existing_users``: the user names in the password file (for
  ``keep_existing_users``: their ACL lines).
- ``conf_persistence``: what the broker's current mosquitto.conf says about
  persistence, before the formula replaces the file (see
  mosquitto_adopt.persistence_handed_over).

Nothing here returns or raises key material, passphrases or hashes.
"""
import datetime
import os
import re

from salt.exceptions import CommandExecutionError

__virtualname__ = "mosquitto_adopt"

PASSPHRASE_KEY = "mosquitto:tls:adopt_ca:key_passphrase"
_REFUSED = "invalid mosquitto pillar (nothing was changed):\n  - "


def __virtual__():
    if "mosquitto_pki.read_cert" not in __utils__ or "mosquitto_pillar.plain_value" not in __utils__:
        return (False, "mosquitto_adopt needs the formula's _utils (run saltutil.sync_all)")
    return __virtualname__


def _pki(name):
    return __utils__[f"mosquitto_pki.{name}"]


def _refuse(key, problem):
    raise CommandExecutionError(f"{_REFUSED}mosquitto:tls:adopt_ca:{key}: {problem}")


def _read(path, key, what):
    if not os.path.isfile(path):
        _refuse(key, f"no {what} at {path}")
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        _refuse(key, f"cannot read {what} {path}: {exc.strerror}")


def _load_key(path, passphrase):
    """The private key at path, opened with passphrase ('' = none)."""
    # Imported here: cryptography is what mosquitto_pki needs anyway.
    from cryptography.hazmat.primitives import serialization  # pylint: disable=import-outside-toplevel

    data = _read(path, "key", "CA key")
    encrypted = b"ENCRYPTED" in data
    if encrypted and not passphrase:
        _refuse("key_passphrase", f"the key {path} is encrypted: give its passphrase (in pillar)")
    try:
        # A passphrase given for a plain key is not needed, and harmless.
        return serialization.load_pem_private_key(data, password=passphrase.encode() if encrypted else None)
    except (TypeError, ValueError):
        if encrypted:
            _refuse("key_passphrase", f"does not open the key {path}")
        _refuse("key", f"{path} is no PEM private key")
    return None  # not reached


def _same_cert_file(path, cert):
    """True when path holds cert; False when it holds another; None when absent."""
    if not os.path.exists(path):
        return None
    try:
        return _pki("read_cert")(path, "CA certificate") == cert
    except CommandExecutionError:
        return False


def _target_key_matches(path, cert):
    """True/False for a key at path (matching cert or not); None when absent."""
    if not os.path.exists(path):
        return None
    try:
        return _pki("key_matches")(cert, _pki("read_key")(path, "CA key"))
    except CommandExecutionError:
        return False


def open_ca(cert, key, passphrase_pillar=PASSPHRASE_KEY):
    """(certificate, private key) of the CA to adopt, checked; raises naming
    the pillar key. For the state module: the key object stays in memory."""
    data = _read(cert, "cert", "CA certificate")
    try:
        cert_obj = _pki("parse_cert")(data)
    except CommandExecutionError:
        _refuse("cert", f"{cert} is no PEM certificate")
    if not _pki("is_ca")(cert_obj):
        _refuse("cert", f"{cert} is not a CA certificate (no basicConstraints CA:TRUE)")
    if not _pki("in_time")(cert_obj, datetime.datetime.now(datetime.timezone.utc)):
        _refuse("cert", f"{cert} is not valid now (valid {cert_obj.not_valid_before_utc:%Y-%m-%d} to "
                        f"{cert_obj.not_valid_after_utc:%Y-%m-%d}): clients reject what it signs")
    passphrase = __utils__["mosquitto_pillar.plain_value"](__pillar__, passphrase_pillar) or ""
    if not isinstance(passphrase, str):
        _refuse("key_passphrase", "must be a string")
    key_obj = _load_key(key, passphrase)
    if not _pki("key_matches")(cert_obj, key_obj):
        _refuse("key", f"{key} does not belong to the CA certificate {cert} (tls:adopt_ca:cert)")
    return cert_obj, key_obj


def ca_check(cert, key, ca_cert, ca_key, passphrase_pillar=PASSPHRASE_KEY):
    """
    Check the CA to adopt (``tls:adopt_ca``) against the formula's CA paths
    (``tls:ca_cert``, ``tls:ca_key``). Returns its subject's common name and
    fingerprint; raises naming the pillar key when it cannot be adopted.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_adopt.ca_check /etc/mosquitto/certs/ca.crt /etc/mosquitto/certs/ca.key \\
            /etc/mosquitto/certs/ca.crt /etc/mosquitto/ca/ca.key
    """
    cert_obj, _ = open_ca(cert, key, passphrase_pillar)
    if _same_cert_file(ca_cert, cert_obj) is False:
        _refuse("cert", f"tls:ca_cert {ca_cert} already holds another certificate: the formula never "
                        "replaces a CA clients may trust; move it away deliberately or point tls:ca_cert elsewhere")
    if _target_key_matches(ca_key, cert_obj) is False:
        _refuse("key", f"tls:ca_key {ca_key} already holds another key: not replacing it; "
                       "move it away deliberately or point tls:ca_key elsewhere")
    info = _pki("info")(cert_obj, cert_obj.not_valid_before_utc)
    return {"subject_cn": info["subject_cn"] or "", "fingerprint": info["fingerprint"]}


def existing_users(path):
    """
    The user names in the password file at ``path`` that mosquitto would
    read (its own parsing; [] without a file), skipping names the formula
    refuses (they could not be written to the ACL file safely).

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_adopt.existing_users /etc/mosquitto/passwd
    """
    names = []
    for name in __salt__["mosquitto_passwd.read_file"](path):
        # The ACL file's `user <name>` line ends at the line: a name with
        # blanks or one mosquitto_passwd would refuse is left out.
        if __salt__["mosquitto_config.check_username"](name) is None and not any(c.isspace() for c in name):
            names.append(name)
    return names


_OPTION = re.compile(r"^\s*(persistence|persistence_location)\s+(\S.*?)\s*$")


def conf_persistence(path):
    """
    ``{"enabled": bool, "location": str}`` from the mosquitto.conf at
    ``path`` (the last line of each option wins, as in mosquitto; ``None``
    when there is no file). Files it includes are not read: the playbook's
    and the formula's own keep persistence in the main file.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_adopt.conf_persistence /etc/mosquitto/mosquitto.conf
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CommandExecutionError(f"cannot read {path}: {exc.strerror}") from exc
    found = {"persistence": "false", "persistence_location": ""}
    for line in lines:
        match = _OPTION.match(line)
        if match:
            found[match.group(1)] = match.group(2)
    location = found["persistence_location"]
    if location and not location.endswith("/"):
        location += "/"
    return {"enabled": found["persistence"].lower() in ("true", "1", "yes", "on"), "location": location}
