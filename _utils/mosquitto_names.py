"""
Name rules shared by pillar validation (mosquitto_config, at render time)
and the CA (mosquitto_ca, for what a peer asks it to sign), kept once so a
name the formula accepts is one its CA signs and the other way round; and
the names the cluster derives from minion ids, kept once so the hub checks
a spoke's mine entry against the very names the spoke publishes.

Reached as ``__utils__["mosquitto_names.<function>"]``.
"""
import re

__virtualname__ = "mosquitto_names"

# One host-name label: letters, digits and inner hyphens, at most 63.
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")


def __virtual__():
    return __virtualname__


def is_dns_name(name, wildcard=False):
    """True for a host name usable in a certificate SAN: lower case, at most
    253 characters, labels of letters, digits and inner hyphens, the last
    not all digits (so an IPv4 address is no DNS name). wildcard=True also
    accepts one leading ``*.`` label."""
    if not isinstance(name, str):
        return False
    if wildcard and name.startswith("*."):
        name = name[2:]
    if not 0 < len(name) <= 253:
        return False
    labels = name.rstrip(".").split(".")
    return all(_DNS_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


# Bridge names become file names (<name>.conf) and mosquitto's connection
# name: no path separators, blanks or leading dot.
_BRIDGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")


def is_bridge_name(name):
    """True for a usable bridge name: letters, digits, '_', '.', '-', not first '.', '_' or '-'."""
    return isinstance(name, str) and bool(_BRIDGE_NAME.match(name))


# The cluster (mosquitto_cluster, mosquitto_config's cluster rules, the
# cluster states). The hub accepts a spoke's mine entry only when its user
# and client id are the ones derived from the minion id Salt authenticated.
CLUSTER_BRIDGE = "cluster"
MINE_NAMES = {
    "cluster_hub": "mosquitto_cluster_hub",      # the hub's {domain, port}
    "cluster_spoke": "mosquitto_cluster_spoke",  # a spoke's {username, password_hash, clientid}
}


# A cluster member's minion id. Salt itself refuses only '/', '\\' and NUL,
# but the id becomes the hub's user name (bridge.<id>), a client id
# (<id>.cluster) and a line of the hub's ACL file
# ($SYS/broker/connection/<id>.cluster/state): blanks, '#', '+', ':' or a
# line break there would change what those files say. Letters, digits and
# '_ . -', first a letter or digit, at most 253 characters (a minion id is
# usually the host's FQDN, which DNS caps at 253).
_MINION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
MINION_ID_RULE = "letters, digits, '_', '.' and '-', first a letter or digit, at most 253 characters"


def is_cluster_minion_id(minion_id):
    """True for a minion id that may be a cluster hub or spoke (see _MINION_ID)."""
    return isinstance(minion_id, str) and bool(_MINION_ID.fullmatch(minion_id))


def cluster_minion_id_rule():
    """What is_cluster_minion_id accepts, in words (for error messages)."""
    return MINION_ID_RULE


def cluster_bridge():
    """The name of a spoke's bridge to its hub (a pillar bridge may not use it)."""
    return CLUSTER_BRIDGE


def cluster_username(minion_id):
    """The hub's user for the bridge of spoke ``minion_id``."""
    return f"bridge.{minion_id}"


def cluster_clientid(minion_id):
    """The remote_clientid of the bridge of spoke ``minion_id``: unique per host."""
    return f"{minion_id}.{CLUSTER_BRIDGE}"


def mine_name(kind):
    """The Salt mine function name of ``kind`` ("cluster_hub" or "cluster_spoke")."""
    return MINE_NAMES[kind]


# A key made for a reissue waits beside the live one under this suffix until
# its certificate is signed (mosquitto_ca state and module; nothing else may
# spell it).
_NEW_KEY_SUFFIX = ".new"


def new_key_path(key_path):
    """Where a new key for ``key_path`` waits for its certificate."""
    return str(key_path) + _NEW_KEY_SUFFIX


def is_new_key_path(path):
    """True for a path new_key_path made (the only files discard_new_key removes)."""
    return str(path).endswith(_NEW_KEY_SUFFIX) and len(str(path)) > len(_NEW_KEY_SUFFIX)
