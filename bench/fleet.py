"""Benchmark `salt '*' state.apply mosquitto` from a master on 1 and 3 hosts.

Prints, in one run on this machine, per host count (1, then 3 at once; the
first host keeps the fleet CA and signs the others' certificates through
peer publish; firewalld managed, as in the fleet suite):

  - the cold apply (fresh hosts from the cached base, `sync_mods=all`);
  - the no-op re-apply of the converged hosts, plain and under test=True,
    each beside the one-state baseline
    `salt '*' state.single test.succeed_without_changes name=x` through the
    same master in the same run (what Salt itself costs per job), and the
    ratio of the two medians;
  - `state.show_sls mosquitto` (render only: mosquitto_map, pillar, the SLS
    files; no state runs), so the no-op splits into Salt's floor, render
    and the states themselves;
  - the five slowest states of the no-op (median over the repeats of the
    slowest host's duration), plain and under test=True;
  - on 3 hosts, the baseline and the no-op of one broker of the same fleet
    alone (the others idle): what three minions working at once on the
    shared cores cost each other.

Every figure is the wall time of one `salt` CLI run, measured around it;
medians of ROUNDS interleaved repeats (baseline, apply, apply test=True,
show_sls), after one unmeasured warm-up no-op.

Run as root: `.venv/bin/python bench/fleet.py` (after `make setup-test`).
`BENCH_FLEET_HOSTS=1` runs one host count only. It uses the test-host
harness of test/hosts (systemd-nspawn hosts on a 198.18.0.0/24 bridge, a
salt-factories master on 198.18.0.1) through pytest, because the master
comes from salt-factories' pytest fixtures, and tears every host down again.
That master keeps Salt's default 20 s fileserver list cache (salt-factories
sets 0: then every listing, one per `state.apply`, waits on a lock file and
a second of sleep whenever two minions list at once).
"""
import os
import pathlib
import secrets
import statistics
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from test.support.fleet import fleet_pillar_sls  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_FLEET_ROUNDS", "5"))
COUNTS = [int(c) for c in os.environ.get("BENCH_FLEET_HOSTS", "1,3").split(",")]
BASELINE = ("state.single", "test.succeed_without_changes", "name=x")

COLD, NOOP, ONE = [], [], []


def _timed(fleet, hosts, *args, tgt="*"):
    t0 = time.perf_counter()
    rets = fleet.salt(*args, tgt=tgt, timeout=1200, check=True)
    wall = time.perf_counter() - t0
    assert set(rets) == set(hosts), rets.keys()
    return wall, rets


def _changed(rets):
    return sum(1 for ret in rets.values() for v in ret.values()
               if v.get("changes") or v.get("result") is None)


def _durations(rets):
    """{state id: slowest host's duration in s} and the slowest host's sum."""
    per_state = {}
    for ret in rets.values():
        for key, v in ret.items():
            sid = v.get("__id__", key)
            per_state[sid] = max(per_state.get(sid, 0.0), (v.get("duration") or 0) / 1000)
    total = max(sum((v.get("duration") or 0) for v in ret.values()) / 1000 for ret in rets.values())
    return per_state, total


def _noop(fleet, hosts):
    runs = {"baseline": [], "apply": [], "test": [], "render": []}
    states = {"apply": [], "test": []}
    sums = {"apply": [], "test": []}
    for _ in range(ROUNDS):
        runs["baseline"].append(_timed(fleet, hosts, *BASELINE)[0])
        for label, extra in (("apply", ()), ("test", ("test=True",))):
            wall, rets = _timed(fleet, hosts, "state.apply", "mosquitto", *extra)
            assert _changed(rets) == 0, (label, rets)
            runs[label].append(wall)
            per_state, total = _durations(rets)
            states[label].append(per_state)
            sums[label].append(total)
        runs["render"].append(_timed(fleet, hosts, "state.show_sls", "mosquitto")[0])
        if len(hosts) > 1:
            # The same fleet, one broker (not the CA) alone: what the
            # three minions rendering and running at once on these shared
            # cores add to each other.
            one = [hosts[-1]]
            runs.setdefault("one_baseline", []).append(_timed(fleet, one, *BASELINE, tgt=one[0])[0])
            wall, rets = _timed(fleet, one, "state.apply", "mosquitto", tgt=one[0])
            assert _changed(rets) == 0, rets
            runs.setdefault("one_apply", []).append(wall)
    med = {k: statistics.median(v) for k, v in runs.items()}
    if len(hosts) > 1:
        ONE.append((len(hosts), med["one_baseline"], med["one_apply"],
                    runs["one_apply"], runs["one_baseline"]))
    for label in ("apply", "test"):
        ids = set().union(*states[label])
        slowest = sorted(((statistics.median(s.get(i, 0.0) for s in states[label]), i) for i in ids),
                         reverse=True)[:5]
        NOOP.append((len(hosts), label, med["baseline"], med[label], med["render"],
                     statistics.median(sums[label]), slowest, runs[label], runs["baseline"]))


@pytest.mark.hosts
def test_fleet_apply_wall_time(fleet_factory, fleet_pillar_dir):
    for count in COUNTS:
        # Names new to the master per host count: a CA minion re-created under
        # an id the master already knew leaves that id's old CA certificate
        # in the mine until it publishes its new one, and brokers racing it
        # on a cold apply would take the stale one.
        names = [f"bench{count}-{i}.test" for i in range(1, count + 1)]
        (fleet_pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
        (fleet_pillar_dir / "mosquitto.sls").write_text(
            fleet_pillar_sls(secrets.token_urlsafe(12), names[0]))
        fleet = fleet_factory(names)
        try:
            wall, rets = _timed(fleet, names, "state.apply", "mosquitto", "sync_mods=all")
            COLD.append((count, wall, _changed(rets)))
            _timed(fleet, names, "state.apply", "mosquitto")  # warm-up, not measured
            _noop(fleet, names)
        finally:
            fleet.teardown()
    # pytest imports this file as its own module: print from here.
    print(f"\n\nNo-op apply through the master, medians of {ROUNDS} interleaved runs (s):\n")
    print("| hosts | apply | baseline | no-op | ratio | render only (show_sls) "
          "| sum of state durations | five slowest states (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for count, label, base, noop, render, total, slowest, _, _ in NOOP:
        top = ", ".join(f"{sid.removeprefix('mosquitto-')} {s:.2f}" for s, sid in slowest)
        name = "no-op" if label == "apply" else "no-op test=True"
        print(f"| {count} | {name} | {base:.2f} | {noop:.2f} | {noop / base:.2f} "
              f"| {render:.2f} | {total:.2f} | {top} |")
    print("\nEvery run (s):")
    for count, label, _, _, _, _, _, runs, base in NOOP:
        print(f"  {count} host(s) {label}: {' '.join(f'{x:.2f}' for x in runs)}"
              f"  baseline: {' '.join(f'{x:.2f}' for x in base)}")
    for count, base, noop, runs, bases in ONE:
        print(f"\nOne broker of the {count} alone (same fleet, same rounds): baseline {base:.2f}, "
              f"no-op {noop:.2f}, ratio {noop / base:.2f} (no-op {' '.join(f'{x:.2f}' for x in runs)}; "
              f"baseline {' '.join(f'{x:.2f}' for x in bases)})")
    print("\n| hosts | cold apply (s) | states changed (all hosts) |")
    print("| --- | --- | --- |")
    for count, wall, changed in COLD:
        print(f"| {count} | {wall:.1f} | {changed} |")


def main():
    return pytest.main(["-p", "no:cacheprovider", "-p", "test.hosts.conftest", "-q", "-s",
                        "--rootdir", str(ROOT), str(pathlib.Path(__file__).resolve())])


if __name__ == "__main__":
    sys.exit(main())
