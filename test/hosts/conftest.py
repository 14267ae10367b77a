"""Fixtures for the fleet suite (see fleet.py for what they build).

Use from a test module::

    import pytest
    pytestmark = pytest.mark.hosts

    @pytest.fixture(scope="module")
    def fleet(fleet_factory):
        return fleet_factory(["mqtt1.test", "mqtt2.test", "mqtt3.test"])

    def test_apply(fleet, fleet_pillar):
        fleet_pillar({"top.sls": "base:\\n  '*':\\n    - mosquitto\\n",
                      "mosquitto.sls": "mosquitto: {}\\n"})
        ret = fleet.salt("state.apply", "mosquitto", "sync_mods=all", timeout=600, check=True)

A fleet made by ``fleet_factory`` lives until the end of the scope that
asked for it (module above) and then is torn down; the master, the bridge
and the client netns live for the session.

Master options: override the ``fleet_master_config`` fixture (session
scope) in a conftest to merge extra options over ``fleet.master_overrides()``.
"""
import logging
import os
import time

import pytest

from test.support import fleet as fleetmod
from test.support import saltlog

log = logging.getLogger(__name__)


def pytest_collection_modifyitems(config, items):
    """The fleet suite proves the systemd path: a machine that cannot run it
    fails (fleet_lab errors). Only an explicit SKIP_HOSTS=1 skips it, and
    says so in the summary."""
    if os.environ.get("SKIP_HOSTS") != "1":
        return
    skip = pytest.mark.skip(reason="SKIP_HOSTS=1: the fleet suite was NOT run")
    for item in items:
        if "hosts" in item.keywords:
            item.add_marker(skip)


def pytest_unconfigure(config):
    saltlog.drop_salt_temp_handler()


@pytest.fixture(scope="session")
def fleet_lab():
    """Bridge mqtbr0 (198.18.0.1), client netns, cached base root, lock."""
    why = fleetmod.preflight()
    if why:
        pytest.fail(f"fleet hosts cannot run here: {why} (SKIP_HOSTS=1 skips the suite)")
    lab = fleetmod.Lab()
    t0 = time.monotonic()
    try:
        lab.setup()
        lab.timings["lab_setup_s"] = round(time.monotonic() - t0, 1)
        log.info("fleet lab ready: %s", lab.timings)
        yield lab
    finally:
        lab.teardown()


@pytest.fixture(scope="session")
def fleet_master_config():
    """Extra master options, merged over fleet.master_overrides()."""
    return {}


@pytest.fixture(scope="session")
def fleet_master(fleet_lab, salt_factories, fleet_master_config):
    """salt-master on 198.18.0.1; file_roots link the repo, pillar tree empty."""
    master = salt_factories.salt_master_daemon(
        "fleet-master",
        # inside the lab's run dir: removed with it, or as a stale leftover
        defaults={"root_dir": fleet_lab.run_dir / "master"},
        overrides=fleetmod.master_overrides(fleet_master_config, lab=fleet_lab),
    )
    fleetmod.link_formula_tree(master.state_tree.base.write_path)
    with master.started(start_timeout=120):
        yield master


@pytest.fixture(scope="session")
def fleet_pillar_dir(fleet_master):
    return fleet_master.pillar_tree.base.write_path


@pytest.fixture
def fleet_pillar(fleet_pillar_dir):
    """Write pillar files for one test: fleet_pillar({"top.sls": ..., ...}).

    The files are removed after the test.
    """
    written = []

    def write(files):
        for name, text in files.items():
            path = fleet_pillar_dir / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            written.append(path)
        return fleet_pillar_dir

    yield write
    for path in written:
        path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def fleet_factory(request, fleet_lab, fleet_master):
    """fleet_factory(names, **Fleet kwargs) -> started Fleet, torn down with the module."""
    made = []

    def make(names, start_timeout=90, **kwargs):
        f = fleetmod.Fleet(fleet_lab, list(names), master=fleet_master, **kwargs)
        made.append(f)
        try:
            f.start(timeout=start_timeout)
        except BaseException:
            for h in f.hosts.values():
                log.error("%s console:\n%s", h.name, h.console_tail())
            raise
        log.info("fleet %s ready: %s %s", list(names), f.timings,
                 {h.name: h.timings for h in f})
        return f

    yield make
    for f in made:
        f.teardown()
