"""
The one strict shape of a password hash the formula writes into a password
file, for hashes it did not compute itself: a pillar's
``users:<name>:password_hash`` (mosquitto_config, mosquitto_passwd) and a
cluster spoke's mine entry (mosquitto_cluster). Such a hash is data from
someone else; mosquitto parses it and, for ``$7$``, runs PBKDF2 with the
iteration count it holds at every login of that user, on the broker's one
thread. So only this shape passes, nothing else (no blanks, no line break):

    $7$<iterations>$<salt>$<hash>    iterations 1..MAX_ITERATIONS in decimal,
                                     salt 16 base64 characters (12 bytes),
                                     hash 88 (64 bytes, PBKDF2-HMAC-SHA512)
    $6$<salt>$<hash>                 the older SHA512(password + salt) form,
                                     same salt and hash sizes

in standard base64 (``A-Z a-z 0-9 + /``, ``=`` padding), encoded the one
canonical way. Salt and hash sizes are the ones a mosquitto 2.0 broker
keeps (it drops other entries; 2.1 reads them too; see FACTS.md).

Reached as ``__utils__["mosquitto_hashes.problem"]``.
"""
import base64
import binascii
import re

__virtualname__ = "mosquitto_hashes"

# The largest $7$ iteration count accepted. mosquitto_passwd writes 101
# (2.0) or 1000 (2.1); 5000 leaves room for an operator who raised -I.
# Measured with hashlib.pbkdf2_hmac("sha512", 32-byte password, 12-byte
# salt, n, 64) on the 2-vCPU reference machine, best of 5 runs: 101 ->
# 0.11 ms, 1000 -> 1.26 ms, 5000 -> 6.1 ms (9 ms with the machine busy),
# 10000 -> 12 ms, 100000 -> 124 ms per login. A
# small host (ARM board) is up to ~8x slower: 5000 stays under ~50 ms a
# login there, while 100000 would block the broker's one thread for about a
# second per login of that user.
MAX_ITERATIONS = 5000
SALT_BYTES = 12
HASH_BYTES = 64

# Digits only, no sign, no leading zero: one spelling per count.
_ITERATIONS = re.compile(r"[1-9][0-9]{0,8}")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")

SHAPE = (f"$7$<iterations 1..{MAX_ITERATIONS}>$<salt: {SALT_BYTES} bytes, 16 base64 characters>"
         f"$<hash: {HASH_BYTES} bytes, 88 base64 characters>")


def __virtual__():
    return __virtualname__


def max_iterations():
    """The largest ``$7$`` iteration count accepted (MAX_ITERATIONS)."""
    return MAX_ITERATIONS


def _b64_problem(text, size, what):
    """Why ``text`` is not ``size`` bytes in canonical base64, or None."""
    if not _B64.fullmatch(text):
        return f"the {what} is not standard base64 (A-Z a-z 0-9 + / and = padding only)"
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return f"the {what} is not valid base64"
    if len(raw) != size:
        return f"the {what} must be {size} bytes ({len(base64.b64encode(bytes(size)))} base64 characters)"
    if base64.b64encode(raw).decode("ascii") != text:
        return f"the {what} is not canonical base64"
    return None


def _iterations_problem(text):
    if not _ITERATIONS.fullmatch(text) or int(text) > MAX_ITERATIONS:
        return (f"the iteration count must be a whole number from 1 to {MAX_ITERATIONS} "
                "(mosquitto_passwd writes 101 or 1000; each login runs that many PBKDF2 rounds)")
    return None


def problem(hashed, allow_sha512=True):
    """
    None when ``hashed`` has the one accepted shape (see the module's
    docstring), else what is wrong, in words that never quote the value
    (it is a credential). ``allow_sha512=False`` takes ``$7$`` only (a
    cluster spoke publishes nothing else).
    """
    if not isinstance(hashed, str):
        return f"must be a string, got {type(hashed).__name__}"
    parts = hashed.split("$")
    if parts[:2] == ["", "7"] and len(parts) == 5:
        checks = (_iterations_problem(parts[2]),
                  _b64_problem(parts[3], SALT_BYTES, "salt"),
                  _b64_problem(parts[4], HASH_BYTES, "hash"))
    elif parts[:2] == ["", "6"] and len(parts) == 4 and allow_sha512:
        checks = (_b64_problem(parts[2], SALT_BYTES, "salt"), _b64_problem(parts[3], HASH_BYTES, "hash"))
    else:
        older = " (or the older $6$<salt>$<hash>)" if allow_sha512 else ""
        return f"is not a mosquitto password hash: expected {SHAPE}{older}"
    return next((check for check in checks if check), None)
