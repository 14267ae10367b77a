"""Every SLS file of the formula applies on its own
(`state.apply mosquitto.<phase>.<file>`) on a host that has had the phases
before it: each renders (every requisite it names is included), succeeds
and, the host being converged, changes nothing. The list is read from the
tree, so a new file is covered without touching this test."""
import pathlib

import pytest

from scripts.saltlocal import changed, failed

pytestmark = pytest.mark.integration

ROOT = pathlib.Path(__file__).resolve().parents[2]


def sls_names():
    names = []
    for path in sorted((ROOT / "mosquitto").rglob("*.sls")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "init":
            parts.pop()
        name = ".".join(parts)
        # mosquitto itself is test_apply's; clean undoes everything (its own test).
        if name not in ("mosquitto", "mosquitto.clean"):
            names.append(name)
    return names


def test_the_tree_has_the_files_we_expect():
    names = sls_names()
    assert "mosquitto.configure.broker" in names and "mosquitto.runtime" in names
    assert len(names) == 31, names


# Files with nothing to do under the integration pillar on Debian: no extra
# repository (EPEL is RedHat's), firewall:enabled false, no container mode
# (its files render to nothing on a host broker). Salt answers an
# SLS without states with an error ("No states found"), so for these the
# test checks that they render to nothing instead.
EMPTY_HERE = {"mosquitto.build.repo", "mosquitto.build.firewall", "mosquitto.runtime.firewall",
              "mosquitto.build.container", "mosquitto.runtime.container",
              # no mosquitto:cluster in the integration pillar
              "mosquitto.configure.cluster", "mosquitto.runtime.cluster",
              # SELinux is RedHat's; swarm mode is off
              "mosquitto.configure.selinux",
              "mosquitto.swarm", "mosquitto.swarm.files", "mosquitto.swarm.stack", "mosquitto.swarm.clean"}
# Files that refuse to render when their mode is off, naming the key that
# turns it on (an operator who applies one by hand learns why).
REFUSED_HERE = {"mosquitto.kubernetes": "mosquitto:kubernetes:enabled"}


@pytest.mark.parametrize("sls", sls_names())
def test_sls_applies_alone_on_a_converged_host(salt_local, applied, sls):
    if sls in EMPTY_HERE:
        rc, shown, err = salt_local.call("state.show_sls", sls)
        assert rc == 0 and shown == {}, (shown, err)
        return
    if sls in REFUSED_HERE:
        rc, shown, err = salt_local.call("state.show_sls", sls)
        assert rc != 0 and REFUSED_HERE[sls] in f"{shown}{err}", (shown, err)
        return
    rc, states, err = salt_local.apply(sls)
    assert rc == 0 and not failed(states), (failed(states), err)
    assert isinstance(states, dict) and states, states
    assert changed(states) == {}
