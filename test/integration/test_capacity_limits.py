"""Open-files limit and max_connections where systemd is not PID 1 (this
machine: Debian's init script). The init script reads no defaults file; the
formula's hook in /lib/lsb/init-functions.d sets the limit for it."""
import pathlib
import re

from scripts.saltlocal import changed, failed
from test.support.integration import base_pillar, broker_pid
from test.support.localhost import wait_for
from test.support.modules import load

HOOK = pathlib.Path("/lib/lsb/init-functions.d/60-mosquitto-formula-limits")
CONF = pathlib.Path("/etc/mosquitto/mosquitto.conf")
RESERVE = load("_modules", "mosquitto_config").FD_RESERVE


def nofile(pid):
    limits = pathlib.Path(f"/proc/{pid}/limits").read_text()
    soft, hard = re.search(r"^Max open files\s+(\d+)\s+(\d+)", limits, re.M).groups()
    return int(soft), int(hard)


def own_hard_limit():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def test_default_limit_is_the_hosts_hard_limit_and_sizes_max_connections(applied):
    # 65536 wanted; salt (and so the init script) may have no more than its hard limit
    want = min(65536, own_hard_limit())
    assert f"ulimit -n '{want}' " in HOOK.read_text()
    assert nofile(broker_pid()) == (want, want)
    assert f"max_connections {want - RESERVE}\n" in CONF.read_text()


def test_open_files_from_pillar_reach_the_broker(salt_local, applied, passwords):
    pid = broker_pid()
    pillar = base_pillar(passwords)
    pillar["mosquitto"]["limits"] = {"open_files": 8192}
    try:
        salt_local.write_pillar(pillar)
        rc, states, err = salt_local.apply()
        assert rc == 0 and not failed(states), failed(states)
        done = changed(states)
        # the limit applies at start: the hook changed, the broker restarted
        assert "mosquitto-configure-service-limits-file-managed" in done
        assert "mosquitto-runtime-service-running" in done
        assert wait_for(lambda: broker_pid() != pid)
        assert nofile(broker_pid()) == (8192, 8192)
        assert f"max_connections {8192 - RESERVE}\n" in CONF.read_text()
        # a lower max_connections lowers the limit: the kernel enforces it
        pid = broker_pid()
        pillar["mosquitto"]["listeners"] = {"mqtts": {"max_connections": 1000}}
        salt_local.write_pillar(pillar)
        rc, states, err = salt_local.apply()
        assert rc == 0 and not failed(states), failed(states)
        assert wait_for(lambda: broker_pid() != pid)
        assert nofile(broker_pid()) == (1000 + RESERVE, 1000 + RESERVE)
        assert "max_connections 1000\n" in CONF.read_text()
    finally:
        salt_local.write_pillar(base_pillar(passwords))
        rc, states, _ = salt_local.apply()
        assert rc == 0 and not failed(states)


def test_max_connections_above_the_limit_fails_before_anything_changes(salt_local, applied, passwords):
    before = CONF.read_text(), HOOK.read_text(), broker_pid()
    pillar = base_pillar(passwords)
    pillar["mosquitto"]["limits"] = {"open_files": 4096}
    pillar["mosquitto"]["listeners"] = {"mqtts": {"max_connections": 5000}}
    try:
        salt_local.write_pillar(pillar)
        rc, states, err = salt_local.apply()
        assert rc != 0
        assert "mosquitto:listeners:mqtts:max_connections: 5000 is more than the broker can hold open" \
            in str(states) + err
    finally:
        salt_local.write_pillar(base_pillar(passwords))
    assert (CONF.read_text(), HOOK.read_text(), broker_pid()) == before
