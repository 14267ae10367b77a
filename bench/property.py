"""Benchmark: issue #20's property test with a long, random budget.

The same properties as test/unit/test_property_render.py (pillars valid and
hostile, mine entries), 20 times `make test`'s examples by default, with a
random seed that is printed first and with every failure: rerun one with
``--seed N`` (same --factor) to get the same examples, or paste the
printed ``@reproduce_failure`` line above the test to replay that one
example. Prints examples/s and outcomes per property. Changes nothing
outside a temporary directory.

`make test` runs the same properties derandomized (the same examples in
every process, see test_property_render.BUDGET); this run explores.

    .venv/bin/python bench/property.py [--factor 20] [--seed N]
"""
import argparse
import collections
import pathlib
import random
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402

from test.support import property as prop  # noqa: E402

BASE_EXAMPLES = 150  # test/unit/test_property_render.py's BUDGET
HUB = {"domain": "hub1.example", "users": {"alice": {"password": "pw", "acl": ["read a/#"]}},
       "cluster": {"hub": "hub1", "topics": ["fleet/# both 1"]}}


def hub_data():
    with prop.loader_globals():
        return prop.cfg.validate(prop.built(HUB), minion_id="hub1", broker_version=prop.VERSION)


def properties():
    data = hub_data()

    def pillar(p):
        with tempfile.TemporaryDirectory() as tmp:
            return prop.check_pillar(p, pathlib.Path(tmp))

    def hostile(case):
        with tempfile.TemporaryDirectory() as tmp:
            return prop.check_pillar(case[0], pathlib.Path(tmp))

    def mine_files(mine):
        with tempfile.TemporaryDirectory() as tmp:
            return prop.check_mine_files(mine, pathlib.Path(tmp), data)

    return [
        ("valid pillars", prop.pillars(), pillar),
        ("hostile pillars", prop.mutated_pillars(), hostile),
        ("mine entries reach the hub's files", prop.mine_entries(), mine_files),
        ("mine accepts only strict entries", prop.mine_entries(), prop.check_mine_accepted_strict),
    ]


def run(name, strategy, check, examples, run_seed, factor):
    outcomes = collections.Counter()

    def counted(value):
        out = check(value)
        outcomes[out[0] if isinstance(out, tuple) else str(out)] += 1

    # Random (not derandomized) from run_seed; no database, so the seed
    # alone decides the examples; print_blob adds @reproduce_failure.
    @seed(run_seed)
    @settings(max_examples=examples, deadline=None, database=None, derandomize=False, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def prop_test(value):
        counted(value)

    start = time.monotonic()
    failure = None
    try:
        prop_test()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        parts = list(getattr(exc, "exceptions", None) or [exc])
        # Each failure with its shrunk input (hypothesis' "Falsifying
        # example" note) and the line that replays it.
        failure = "\n".join(
            f"  - {type(e).__name__}: {str(e)[:400]}\n    " + "\n    ".join(getattr(e, "__notes__", []))[:6000]
            for e in parts)
    took = time.monotonic() - start
    done = sum(outcomes.values())
    print(f"{name}: {done} examples in {took:.1f} s ({done / took:.0f}/s); outcomes {dict(outcomes)}")
    if failure:
        print(f"  FAILED (seed {run_seed}; replay: .venv/bin/python bench/property.py --seed {run_seed} "
              f"--factor {factor}):\n{failure}")
    return failure is None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--factor", type=int, default=20, help="times make test's examples (150)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    run_seed = args.seed if args.seed is not None else random.randrange(2**32)
    examples = BASE_EXAMPLES * args.factor
    print(f"seed {run_seed}, {examples} examples per property")
    results = [run(name, strat, check, examples, run_seed, args.factor) for name, strat, check in properties()]
    ok = all(results)
    print(f"all properties held (seed {run_seed})" if ok else f"a property failed (seed {run_seed}, see above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
