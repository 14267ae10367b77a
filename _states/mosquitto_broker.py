"""
Check that the broker really serves its listeners after the service states.

``service.running`` trusts the init system: a broker that exits a moment
after start (bad key permissions, a clashing option) still reports success.
This state waits until each port accepts a TCP connection and otherwise fails
with the tail of the broker's log, so the run says what went wrong.
"""

import os
import socket
import time

__virtualname__ = "mosquitto_broker"


def __virtual__():
    return __virtualname__


def _accepts(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _log_tail(path, lines=15):
    if not path or not os.path.exists(path):
        return "(no log file)"
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 8192))
        return b"\n".join(fh.read().splitlines()[-lines:]).decode(errors="replace")


def listening(name, ports, timeout=15, log_file=None):
    """
    Wait until every ``host:port`` in ``ports`` accepts a connection.

    name
        A label for the output (the service name).
    ports
        List of ``[host, port]`` pairs; use 127.0.0.1 for wildcard listeners.
    timeout
        Seconds to wait in total.
    log_file
        The broker's log, quoted in the comment on failure.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    targets = [(str(host), int(port)) for host, port in ports]
    deadline = time.monotonic() + timeout
    missing = targets
    while True:
        missing = [t for t in missing if not _accepts(*t)]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    shown = ", ".join(f"{h}:{p}" for h, p in targets)
    if not missing:
        ret["comment"] = f"{name} accepts connections on {shown}"
        return ret
    gone = ", ".join(f"{h}:{p}" for h, p in missing)
    if __opts__["test"]:
        # The service may be about to start or restart in a real run.
        ret["result"] = None
        ret["comment"] = f"{name} does not listen on {gone} yet; it would after the run"
        return ret
    ret["result"] = False
    ret["comment"] = (
        f"{name} does not accept connections on {gone} after {timeout}s. "
        f"Last lines of {log_file or 'its log'}:\n{_log_tail(log_file)}"
    )
    return ret
