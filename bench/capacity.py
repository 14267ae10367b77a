"""Benchmark: how many TLS clients a broker accepts per second, and what a
held connection costs in broker memory, at 1k, 5k and 10k clients, with an
ECDSA P-256 and an RSA-2048 server key, in one run.

A throw-away mosquitto (Debian's 2.0.11, this machine) on loopback, TLS
listener only, password authentication; the clients are the asyncio load
generator of the hosts suite (test/support/mqtt_load.py): full handshakes
with certificate and name checks, MQTT CONNECT with user and password, at
most 100 handshakes in flight. Clients are added in steps (0 -> 1k -> 5k
-> 10k) and kept: "accepted/s" is the rate of each step, "broker CPU
ms/conn" the broker's user+system time per accepted client in that step
(the server's share of a handshake), "RSS/conn" the
broker's resident memory above its idle size divided by the clients held.
The baseline row is the same broker with no TLS (plain MQTT) at 1k.

Run as root: `.venv/bin/python bench/capacity.py` (about 2 minutes).
Needs a hard open-files limit above 10,000 (20,000 here).
"""
import asyncio
import os
import pathlib
import secrets
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from test.support.broker import MOSQUITTO, free_port, stop_process, wait_port  # noqa: E402
from test.support.mqtt_load import Load, raise_nofile  # noqa: E402

STEPS = (1000, 5000, 10000)
USER = "bench"
PASSWORD = secrets.token_urlsafe(12)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_pki(workdir, key_type):
    """CA and server certificate for 127.0.0.1 (IP SAN), keys of key_type."""
    d = workdir / key_type
    d.mkdir()
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key_type == "ecdsa" \
        else ["-newkey", "rsa:2048"]
    openssl("req", "-x509", *newkey, "-nodes", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
            "-subj", "/CN=bench CA", "-days", "2")
    openssl("req", *newkey, "-nodes", "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"),
            "-subj", "/CN=127.0.0.1")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.crt"),
            "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "server.crt"),
            "-days", "2", "-extfile", str(d / "ext"))
    return d


def start_broker(workdir, pki, port):
    passwd = workdir / "passwd"
    if not passwd.exists():
        subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), USER, PASSWORD], check=True)
    conf = workdir / f"mosquitto-{port}.conf"
    lines = ["user root", "log_dest stderr", "log_type error", "log_type warning",
             "allow_anonymous false", f"password_file {passwd}", f"listener {port} 127.0.0.1"]
    if pki is not None:
        lines += [f"cafile {pki / 'ca.crt'}", f"certfile {pki / 'server.crt'}",
                  f"keyfile {pki / 'server.key'}", "tls_version tlsv1.2"]
    conf.write_text("\n".join(lines) + "\n")
    log = open(workdir / f"broker-{port}.log", "ab")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    wait_port(port)
    return proc


def cpu_s(pid):
    """Broker CPU time (user + system), seconds."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def ramp(proc, port, cafile, steps):
    idle = rss_kib(proc.pid)
    load = Load("127.0.0.1", port, str(cafile) if cafile else None, USER, PASSWORD,
                concurrency=100, timeout=60)
    rows, held = [], 0
    for target in steps:
        cpu0 = cpu_s(proc.pid)
        seconds = await load.connect(target - held, start=held)
        cpu_ms = (cpu_s(proc.pid) - cpu0) * 1000 / (target - held)
        held = target
        accepted = load.outcomes["accepted"]
        if accepted != target:
            raise RuntimeError(f"only {accepted} of {target} accepted: {load.summary()}")
        await asyncio.sleep(1)  # let the broker settle before reading RSS
        rss = rss_kib(proc.pid)
        rows.append((target, (target - (rows[-1][0] if rows else 0)) / seconds,
                     (rss - idle) * 1024 / target, rss / 1024, cpu_ms))
    await load.close()
    return idle, rows


def main():
    hard = raise_nofile()
    if hard < max(STEPS) + 200:
        sys.exit(f"hard open-files limit {hard} is below {max(STEPS) + 200}")
    print(f"mosquitto {subprocess.run([MOSQUITTO, '-h'], capture_output=True, text=True).stdout.splitlines()[0]}")
    print(f"clients: asyncio, 100 handshakes in flight, TLS 1.2+, MQTT 3.1.1 CONNECT with password; "
          f"open-files limit {hard}")
    with tempfile.TemporaryDirectory(prefix="bench-capacity-") as tmp:
        work = pathlib.Path(tmp)
        results = {}
        runs = [("plain (baseline)", None, (1000,))] + [
            (kt, make_pki(work, kt), STEPS) for kt in ("ecdsa", "rsa")]
        for label, pki, steps in runs:
            port = free_port()
            proc = start_broker(work, pki, port)
            try:
                t0 = time.monotonic()
                idle, rows = asyncio.run(ramp(proc, port, pki / "ca.crt" if pki else None, steps))
                results[label] = (idle, rows, time.monotonic() - t0)
            finally:
                stop_process(proc)
        print()
        print(f"{'server key':<17} {'clients':>7} {'accepted/s':>11} {'broker CPU ms/conn':>19}"
              f" {'RSS/conn KiB':>13} {'RSS MiB':>8}")
        for label, (idle, rows, total) in results.items():
            for n, rate, per_conn, rss, cpu_ms in rows:
                print(f"{label:<17} {n:>7} {rate:>11.0f} {cpu_ms:>19.2f} {per_conn / 1024:>13.1f} {rss:>8.1f}")
            print(f"{'':<17} idle RSS {idle / 1024:.1f} MiB, run {total:.1f} s")
        ec = results["ecdsa"][1]
        rsa = results["rsa"][1]
        print()
        for (n, ec_rate, _, _, ec_cpu), (_, rsa_rate, _, _, rsa_cpu) in zip(ec, rsa, strict=True):
            print(f"step to {n:>6}: ECDSA/RSA accepted/s = {ec_rate / rsa_rate:.2f}x, "
                  f"broker CPU per handshake RSA/ECDSA = {rsa_cpu / ec_cpu:.2f}x")
        print("(clients and broker share this machine's cores: accepted/s includes the "
              "clients' own handshake work, ECDSA verify costs them more than RSA verify)")


if __name__ == "__main__":
    main()
