"""Many authenticated MQTT-over-TLS clients from one process (asyncio).

Each client does a full TLS handshake (server certificate and name checked
against a CA file), sends an MQTT 3.1.1 CONNECT with a user name and
password and reads the CONNACK. Bounded: at most ``concurrency``
handshakes in flight, every step under ``timeout`` seconds.

Outcomes per client:
  accepted  CONNACK 0
  rejected  CONNACK with a refusal code (bad credentials, ...)
  closed    the broker closed or reset the connection before CONNACK:
            what mosquitto does past max_connections
  timeout   no answer within ``timeout``
  error     anything else (names the exception)

``run(...)`` is the API (bench/capacity.py calls it in-process); the CLI
prints one JSON line per event, for tests that run it in another network
namespace (``ip netns exec``)::

  MQTT_LOAD_PASSWORD=... python -m test.support.mqtt_load --host mqtt1.test \\
      --port 8883 --cafile ca.crt --user alice --count 10000 --hold 30

  {"event": "connected", "accepted": 10000, ...}   all attempts done
  {"event": "held", "alive": 10000, ...}           after --hold s: PINGREQ
                                                   answered by that many
The password comes from the environment, never the command line.
"""
import argparse
import asyncio
import collections
import json
import os
import resource
import ssl
import sys
import time

from test.support.modules import load_util

# The formula's own CONNECT (_utils/mosquitto_mqtt.py), as minions build it.
connect_packet = load_util("mosquitto_mqtt").connect_packet

PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"


def raise_nofile():
    """Soft open-files limit up to the hard one (one descriptor per client)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class Load:
    def __init__(self, host, port, cafile, user, password, prefix="load", concurrency=100,
                 timeout=60.0, keepalive=120):
        self.host, self.port = host, port
        self.ctx = tls_context(cafile) if cafile else None  # None: plain MQTT (baselines)
        self.user, self.password = user, password
        self.prefix = prefix
        self.sem = asyncio.Semaphore(concurrency)
        self.timeout = timeout
        self.keepalive = keepalive
        self.outcomes = collections.Counter()
        self.errors = collections.Counter()
        self.open = []  # (reader, writer) of accepted clients

    async def _one(self, i):
        async with self.sem:
            writer = None
            try:
                tls = {"ssl": self.ctx, "server_hostname": self.host,
                       "ssl_handshake_timeout": self.timeout} if self.ctx else {}
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, **tls), self.timeout)
                writer.write(connect_packet(f"{self.prefix}-{i}", self.user, self.password,
                                            self.keepalive))
                await writer.drain()
                connack = await asyncio.wait_for(reader.readexactly(4), self.timeout)
            except asyncio.TimeoutError:
                self.outcomes["timeout"] += 1
            except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError,
                    ssl.SSLEOFError, ConnectionAbortedError) as exc:
                self.outcomes["closed"] += 1
                self.errors[type(exc).__name__] += 1
            except (OSError, ssl.SSLError) as exc:
                self.outcomes["error"] += 1
                self.errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
            else:
                if connack[0] == 0x20 and connack[3] == 0:
                    self.outcomes["accepted"] += 1
                    self.open.append((reader, writer))
                    return
                self.outcomes["rejected"] += 1
                self.errors[f"CONNACK {connack[3]}"] += 1
            if writer is not None:
                writer.close()

    async def connect(self, count, start=0):
        """Open clients start..start+count; returns seconds taken."""
        t0 = time.monotonic()
        await asyncio.gather(*(self._one(i) for i in range(start, start + count)))
        return time.monotonic() - t0

    async def _ping(self, reader, writer):
        try:
            writer.write(PINGREQ)
            await writer.drain()
            return await asyncio.wait_for(reader.readexactly(2), self.timeout) == b"\xd0\x00"
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, OSError, ssl.SSLError):
            return False

    async def alive(self):
        """How many accepted clients still answer a PINGREQ."""
        results = []
        for n in range(0, len(self.open), 500):  # bounded bursts
            results += await asyncio.gather(*(self._ping(r, w) for r, w in self.open[n:n + 500]))
        return sum(results)

    async def close(self):
        for _, writer in self.open:
            try:
                writer.write(DISCONNECT)
                writer.close()
            except (OSError, RuntimeError):
                pass
        await asyncio.gather(*(w.wait_closed() for _, w in self.open), return_exceptions=True)
        self.open = []

    def summary(self, **extra):
        out = {k: self.outcomes.get(k, 0) for k in ("accepted", "rejected", "closed", "timeout", "error")}
        out["errors"] = dict(self.errors.most_common(5))
        out.update(extra)
        return out


def _emit(event, **data):
    print(json.dumps({"event": event, **data}), flush=True)


async def _main(args):
    hard = raise_nofile()
    if args.count + 64 > hard:
        _emit("error", message=f"--count {args.count} needs more open files than the hard limit {hard}")
        return 2
    load = Load(args.host, args.port, args.cafile, args.user, os.environ.get("MQTT_LOAD_PASSWORD"),
                prefix=args.prefix, concurrency=args.concurrency, timeout=args.timeout)
    seconds = await asyncio.wait_for(load.connect(args.count), args.deadline)
    _emit("connected", **load.summary(seconds=round(seconds, 2),
                                      rate=round(args.count / seconds, 1) if seconds else None))
    if args.hold:
        await asyncio.sleep(args.hold)
        alive = await load.alive()
        _emit("held", alive=alive, hold=args.hold)
    await load.close()
    _emit("done")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m test.support.mqtt_load")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=8883)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--user")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=60.0, help="per step, seconds")
    parser.add_argument("--deadline", type=float, default=300.0, help="all connects, seconds")
    parser.add_argument("--hold", type=float, default=0.0, help="seconds to hold, then ping all")
    parser.add_argument("--prefix", default="load", help="client id prefix")
    args = parser.parse_args(argv)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
