"""Container mode renders nothing for the host's mosquitto service: no
systemd drop-in (and no daemon-reload), no init-script limits hook, no log
file; host mode still does. clean.sls in container mode still removes what
an earlier host-mode run left. Rendered with a systemd host's grains (this
machine has no systemd) against the suite's engine: build/container.sls
asks the engine about the container while it renders.
"""
import copy

import pytest

from test.support.container import engine_salt

pytestmark = pytest.mark.containers

SYSTEMD_GRAINS = {"os": "Debian", "os_family": "Debian", "osfinger": "Debian-12",
                  "osmajorrelease": 12, "init": "systemd", "kernel": "Linux"}
SYSV_GRAINS = dict(SYSTEMD_GRAINS, init="sysvinit")
DROPIN = "/etc/systemd/system/mosquitto.service.d/mosquitto-formula.conf"
HOOK = "/etc/default/mosquitto-render-limits"
LOG = "/var/log/mosquitto-render/mosquitto.log"
HOST_ONLY = {"mosquitto-configure-service-dropin-file-managed",
             "mosquitto-configure-service-systemd-reloaded",
             "mosquitto-configure-service-limits-file-managed",
             "mosquitto-configure-service-log-file-managed",
             "mosquitto-configure-logrotate-pkg-installed"}

PILLAR = {"mosquitto": {
    "domain": "mqtt.example.com",
    "users": {"alice": {"password": "pw"}},
    "firewall": {"enabled": False},
    "lookup": {"paths": {"sysv_limits_hook": HOOK, "log_file": LOG},
               # Names not in use here: the render only reads them.
               "service": {"user": "mosquitto-render", "group": "mosquitto-render"}},
}}


def pillar(container):
    data = copy.deepcopy(PILLAR)
    data["mosquitto"]["container"] = {"enabled": container, "name": "mosquitto-render",
                                      "image": "local/mosquitto:1883"}
    return data


@pytest.fixture(scope="module")
def salts(tmp_path_factory, engine):
    """One synced salt-call config per init system, pointed at the engine."""
    out = {}
    for init, grains in (("systemd", SYSTEMD_GRAINS), ("sysvinit", SYSV_GRAINS)):
        out[init] = engine_salt(tmp_path_factory.mktemp(f"render-{init}"), pillar(True), engine,
                                grains=grains)
    return out


def show(salt, container, sls="mosquitto"):
    salt.write_pillar(pillar(container))
    rc, highstate, err = salt.call("state.show_sls", sls)
    assert rc == 0 and isinstance(highstate, dict), (highstate, err)
    return highstate


def managed(highstate):
    """The name(s) of every state in a show_sls result."""
    out = set()
    for sid, body in highstate.items():
        for key, value in body.items():
            if key.startswith("__") or not isinstance(value, list):
                continue
            args = {k: v for item in value if isinstance(item, dict) for k, v in item.items()}
            out.add(args.get("name", sid))
            out.update(args.get("names", []))
    return out


@pytest.mark.parametrize("init", ["systemd", "sysvinit"])
def test_container_mode_renders_nothing_for_the_host_service(salts, init):
    host = show(salts[init], container=False)
    want = ({"mosquitto-configure-service-dropin-file-managed",
             "mosquitto-configure-service-systemd-reloaded"} if init == "systemd"
            else {"mosquitto-configure-service-limits-file-managed"})
    # the log file and its rotation (docker logs in a container)
    want |= {"mosquitto-configure-service-log-file-managed", "mosquitto-configure-logrotate-pkg-installed"}
    assert HOST_ONLY & set(host) == want
    container = show(salts[init], container=True)
    assert "mosquitto-runtime-container-broker-running" in container
    assert not HOST_ONLY & set(container), sorted(HOST_ONLY & set(container))
    # No other state manages those host paths either.
    assert not {DROPIN, HOOK, LOG, "/var/log/mosquitto-render"} & managed(container)


def test_clean_in_container_mode_still_removes_what_host_mode_left(salts):
    clean = show(salts["systemd"], container=True, sls="mosquitto.clean")
    absent = clean["mosquitto-clean-configure-files-absent"]["file"]
    names = next(item["names"] for item in absent if isinstance(item, dict) and "names" in item)
    assert DROPIN in names and HOOK in names and LOG in names
