"""Build what the hosts suite needs before it runs: ``python -m
test.support.prepare_hosts``.

scripts/test-all starts this in the background while the fast lane and the
functional/containers phase run (they leave a core mostly idle), so the
hosts phase finds its caches ready instead of spending its first quarter
hour on them: the Debian 12 and 13 base roots (debootstrap, salt wheels for
each release's Python) and, for test/hosts/test_salt_versions.py, each
tested Salt release's wheels for its host and its venv for the master.

Every cache is built under its own lock and marked complete only at the
end (test/support/fleet.py, salt_release.py), so the hosts suite waits for
a build in progress rather than racing it, and a build that failed here is
retried there and fails with its own error. Nothing else on this machine
changes. SIGTERM (a failed fast lane) stops the current build: its
subprocess is killed and the half-built cache stays marked incomplete.
"""
import logging
import signal
import sys
import time

from test.support import fleet, salt_release


def _stop(signum, _frame):
    raise SystemExit(128 + signum)


def main():
    logging.basicConfig(level=logging.INFO, format="prepare_hosts: %(message)s", stream=sys.stdout)
    signal.signal(signal.SIGTERM, _stop)
    why = fleet.preflight()
    if why:
        print(f"prepare_hosts: nothing built: {why}")
        return 0
    t0 = time.monotonic()
    for suite in fleet.SUITES:
        timings = {}
        fleet.ensure_base(timings, suite=suite)
        print(f"prepare_hosts: {suite} base ready {timings}", flush=True)
    for version, suite in salt_release.TESTED.items():
        salt_release.wheels(version, suite)
        salt_release.local_venv(version)
        print(f"prepare_hosts: salt {version} ready (wheels for {suite}, master venv)", flush=True)
    print(f"prepare_hosts: done in {time.monotonic() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
