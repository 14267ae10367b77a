"""Benchmark `salt '*' state.apply mosquitto` from a master on 1 and 3 hosts.

Prints, in one run on this machine, the wall time of the salt CLI for:
  - a cold apply (fresh hosts from the cached base: packages present but
    disabled, no CA, no config) and a no-op re-apply, on 1 host;
  - the same on 3 hosts at once (the first keeps the fleet CA and signs the
    other two hosts' certificates through peer publish).
Firewalld is managed on every host (firewall:enabled true), as in the fleet
suite. Each figure is one run of the `salt` CLI, measured around it.

Run as root: `.venv/bin/python bench/fleet.py` (after `make setup-test`).
It uses the test-host harness of test/hosts (systemd-nspawn hosts on a
198.18.0.0/24 bridge, a salt-factories master on 198.18.0.1) through
pytest, because the master comes from salt-factories' pytest fixtures, and
tears every host down again.
"""
import pathlib
import secrets
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from test.hosts.fleet import fleet_pillar_sls  # noqa: E402


RESULTS = []


def _apply(fleet, label, hosts):
    t0 = time.perf_counter()
    rets = fleet.salt("state.apply", "mosquitto", "sync_mods=all", timeout=1200, check=True)
    wall = time.perf_counter() - t0
    assert set(rets) == set(hosts), rets.keys()
    changed = sum(1 for ret in rets.values() for v in ret.values() if v.get("changes"))
    # Where the time goes: the longest single state on any host (ms).
    slowest = max(((v.get("duration") or 0, f"{host}: {v.get('__id__', key)}")
                   for host, ret in rets.items() for key, v in ret.items()), default=(0, "-"))
    RESULTS.append((label, len(hosts), wall, changed, slowest))


@pytest.mark.hosts
def test_fleet_apply_wall_time(fleet_factory, fleet_pillar_dir):
    for count in (1, 3):
        names = [f"bench{i}.test" for i in range(1, count + 1)]
        (fleet_pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
        (fleet_pillar_dir / "mosquitto.sls").write_text(
            fleet_pillar_sls(secrets.token_urlsafe(12), names[0]))
        fleet = fleet_factory(names)
        try:
            _apply(fleet, "cold", names)
            _apply(fleet, "no-op", names)
        finally:
            fleet.teardown()
    # pytest imports this file as its own module: print from here.
    print("\n\n| hosts | apply | wall time (s) | states with changes (all hosts) | slowest state |")
    print("| --- | --- | --- | --- | --- |")
    for label, count, wall, changed, (ms, where) in RESULTS:
        print(f"| {count} | {label} | {wall:.1f} | {changed} | {where} ({ms / 1000:.1f} s) |")


def main():
    return pytest.main(["-p", "no:cacheprovider", "-p", "test.hosts.conftest", "-q", "-s",
                        "--rootdir", str(ROOT), str(pathlib.Path(__file__).resolve())])


if __name__ == "__main__":
    sys.exit(main())
