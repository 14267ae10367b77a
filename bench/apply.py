"""Benchmark `salt-call --local state.apply mosquitto` and TLS handshakes.

Prints, in one run on this machine:
  - first apply (broker package removed and no formula files before),
    a no-op re-apply, and a no-op re-apply with 10,000 users in pillar,
    each beside a one-state `salt-call --local` baseline;
  - full TLS handshakes per second on 8883 with the default ECDSA P-256
    certificate and with an RSA-2048 one, same client, same run.

Run as root on a machine you may reconfigure: `.venv/bin/python bench/apply.py`.
It applies the formula to this host (like `make apply`) and leaves the broker
running with the bench pillar. The CA lives in a temp dir, not /etc/mosquitto/ca.
"""
import os
import secrets
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.saltlocal import SaltLocal, changed, failed  # noqa: E402

DOMAIN = "bench.mqtt.test"


def pillar(workdir, users=1, key_type="ec"):
    tls_dir = Path(workdir) / "tls"
    return {"mosquitto": {
        "domain": DOMAIN,
        "users": {f"user{i:05d}": {"password": f"bench-{i}-{SECRET}"} for i in range(users)},
        "firewall": {"enabled": False},
        "tls": {"ca_cert": f"{tls_dir}/ca.crt", "ca_key": f"{tls_dir}/ca/ca.key",
                "cert": f"{tls_dir}/server.crt", "key": f"{tls_dir}/server.key",
                "key_type": key_type, "ip_addresses": ["127.0.0.1"]},
    }}


SECRET = secrets.token_hex(4)


def timed(fn, repeat=1):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def apply_ok(salt):
    rc, states, err = salt.apply()
    if rc != 0 or failed(states):
        raise SystemExit(f"apply failed: {failed(states) or err}")
    return states


def baseline(salt):
    rc, out, err = salt.call("state.single", "test.succeed_without_changes", "name=baseline")
    if rc != 0:
        raise SystemExit(f"baseline failed: {err}")


def handshakes(cafile, seconds=5.0):
    """Full handshakes (new context and no session reuse) per second on 8883."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False  # connect by IP; verification of the chain stays on
    count, deadline = 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        with socket.create_connection(("127.0.0.1", 8883)) as sock:
            with ctx.wrap_socket(sock, server_hostname=DOMAIN) as tls:
                tls.do_handshake()
        count += 1
    return count / (time.perf_counter() - start)


def row(label, seconds, base):
    print(f"{label:<44} {seconds:7.2f} s   (baseline one-state run {base:5.2f} s)")


def main():
    if os.geteuid() != 0:
        raise SystemExit("run as root: it applies the formula to this host")
    work = Path(tempfile.mkdtemp(prefix="mosquitto-bench-"))
    work.chmod(0o755)  # the broker, as user mosquitto, reads tls/ below it
    salt = SaltLocal(work / "salt").setup(pillar(work))
    salt.sync()
    print(f"mosquitto-formula benchmark on {os.uname().nodename}, {os.cpu_count()} cores\n")

    # First apply: remove what the formula installs and writes (not the CA:
    # it is in our temp dir and does not exist yet).
    rc, states, err = salt.apply("mosquitto.clean")
    if rc != 0:
        raise SystemExit(f"clean failed: {failed(states) or err}")
    base, _ = timed(lambda: baseline(salt), 3)
    first, states = timed(lambda: apply_ok(salt))
    row(f"first apply ({len(changed(states))} states changed)", first, base)
    noop, states = timed(lambda: apply_ok(salt), 3)
    assert not changed(states), changed(states)
    row("no-op re-apply (1 user)", noop, base)

    salt.write_pillar(pillar(work, users=10000))
    apply_ok(salt)
    base, _ = timed(lambda: baseline(salt), 3)
    noop10k, states = timed(lambda: apply_ok(salt), 3)
    assert not changed(states), changed(states)
    row("no-op re-apply (10,000 users)", noop10k, base)

    print()
    salt.write_pillar(pillar(work))
    apply_ok(salt)
    ec = handshakes(f"{work}/tls/ca.crt")
    salt.write_pillar(pillar(work, key_type="rsa"))
    apply_ok(salt)
    key = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", f"{work}/tls/server.crt"],
                         capture_output=True, text=True).stdout
    assert "rsaEncryption" in key and "2048 bit" in key
    rsa = handshakes(f"{work}/tls/ca.crt")
    print(f"TLS 1.2+ full handshakes/s on 8883, ECDSA P-256: {ec:8.0f}")
    print(f"TLS 1.2+ full handshakes/s on 8883, RSA-2048:    {rsa:8.0f}  (ECDSA/RSA = {ec / rsa:.2f}x)")
    salt.write_pillar(pillar(work))
    apply_ok(salt)


if __name__ == "__main__":
    main()
