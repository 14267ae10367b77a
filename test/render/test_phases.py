"""mosquitto/init.sls includes every phase's concerns directly (sparing each
run the fetch and render of the three phase files); this checks that it
gives exactly what including the three phases would: the same states, from
the same SLS files, in the same order. (Container mode renders only with a
Docker engine to ask for the image's version: the containers suite applies
`mosquitto` in that mode.)"""
from scripts.saltlocal import REPO, SaltLocal
from test.support.render import DEBIAN12_SYSTEMD, PILLAR

# The old init.sls, from a second file root: the three phase files.
BY_PHASES = "include:\n  - mosquitto.build\n  - mosquitto.configure\n  - mosquitto.runtime\n"


def comparable(highstate):
    """Each state's SLS file, order and arguments (not the include chain)."""
    return {sid: {k: v for k, v in state.items() if k != "__sls_included_from__"}
            for sid, state in highstate.items() if isinstance(state, dict)}


def test_init_equals_the_three_phases(tmp_path):
    extra = tmp_path / "phases"
    extra.mkdir()
    (extra / "by_phases.sls").write_text(BY_PHASES)
    salt = SaltLocal(tmp_path / "salt", file_roots=[REPO, extra]).setup(
        PILLAR, extra_opts={"grains": DEBIAN12_SYSTEMD})
    salt.sync()
    shown = {}
    for sls in ("mosquitto", "by_phases"):
        rc, highstate, err = salt.call("state.show_sls", sls)
        assert rc == 0 and isinstance(highstate, dict), (highstate, err)
        shown[sls] = comparable(highstate)
    assert len(shown["mosquitto"]) >= 30
    assert shown["mosquitto"] == shown["by_phases"]
    assert any(s["__sls__"] == "mosquitto.runtime.service" for s in shown["mosquitto"].values())
