"""
MQTT 3.1.1 packets the formula writes by hand, kept once: the cluster's
login probe (mosquitto_cluster.probe, on a minion without an MQTT client
library) and the tests' and benchmarks' raw-socket clients build the same
CONNECT.

Reached as ``__utils__["mosquitto_mqtt.<function>"]``.
"""

__virtualname__ = "mosquitto_mqtt"


def __virtual__():
    return __virtualname__


def _remaining_length(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text):
    data = text.encode("utf-8")
    return len(data).to_bytes(2, "big") + data


def connect_packet(client_id, user=None, password=None, keepalive=60):
    """CONNECT with clean session, and a user name and password when given."""
    flags = 0x02 | (0x80 if user is not None else 0) | (0x40 if password is not None else 0)
    body = _utf8("MQTT") + bytes([4, flags]) + keepalive.to_bytes(2, "big") + _utf8(client_id)
    if user is not None:
        body += _utf8(user)
    if password is not None:
        body += _utf8(password)
    return b"\x10" + _remaining_length(len(body)) + body
