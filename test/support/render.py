"""Render the formula with salt-call --local and another platform's grains
(no such host is reachable here), for the render suite's modules."""
import json
import pathlib

from scripts.saltlocal import SaltLocal

# A Rocky Linux 9 minion's grains as Salt's own grains code computes them
# from Rocky's release files (scripts/platform-grains says where they come
# from and regenerates the file).
ROCKY9 = json.loads((pathlib.Path(__file__).resolve().parents[1] / "render" / "grains" / "rocky-9.json").read_text())
DEBIAN12_SYSTEMD = {"os": "Debian", "os_family": "Debian", "osfinger": "Debian-12",
                    "osmajorrelease": 12, "init": "systemd", "kernel": "Linux"}
PILLAR = {"mosquitto": {"domain": "mqtt.example.com", "users": {"alice": {"password": "pw"}}}}


_SYNCED = {}


def local(tmp_path, grains, pillar):
    """One synced salt-call config per platform, kept for the whole run
    (every render module shares it); the pillar is rewritten per call."""
    key = repr(sorted(grains.items()))
    if key not in _SYNCED:
        salt = SaltLocal(tmp_path / "salt").setup(pillar, extra_opts={"grains": grains})
        salt.sync()
        _SYNCED[key] = salt
    _SYNCED[key].write_pillar(pillar)
    return _SYNCED[key]


def render(tmp_path, grains, pillar=PILLAR, sls="mosquitto"):
    salt = local(tmp_path, grains, pillar)
    rc, highstate, err = salt.call("state.show_sls", sls)
    assert rc == 0 and isinstance(highstate, dict), (highstate, err)
    return salt, highstate


def args(state):
    """The state's arguments as one dict (show_sls gives a list of 1-key dicts)."""
    out = {}
    for key, value in state.items():
        if isinstance(value, list) and not key.startswith("__"):
            for item in value:
                if isinstance(item, dict):
                    out.update(item)
                else:
                    out["_function"] = f"{key}.{item}"
    return out
