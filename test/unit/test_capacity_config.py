"""Capacity settings: limits:open_files and listeners:mqtts:max_connections.

The broker holds one file descriptor per client; validate caps the
open-files limit at the host's hard limit and refuses a max_connections the
limit cannot hold, naming the key and the numbers.
"""
import resource

import pytest
from salt.exceptions import CommandExecutionError

from test.support.config import cfg, settings
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)


def validate(nofile_hard_limit=None, **pillar):
    return cfg.validate(settings(**pillar), nofile_hard_limit=nofile_hard_limit)


def error(nofile_hard_limit=None, **pillar):
    with pytest.raises(CommandExecutionError) as exc:
        validate(nofile_hard_limit, **pillar)
    return str(exc.value)


def test_defaults_size_max_connections_to_the_limit():
    out = validate()
    assert out["limits"]["open_files_effective"] == 65536
    assert out["listeners"]["mqtts"]["max_connections"] == 65536 - cfg.FD_RESERVE


def test_a_lower_host_hard_limit_caps_both():
    # the reference machine: hard 20000 that root cannot raise
    out = validate(nofile_hard_limit=20000)
    assert out["limits"]["open_files_effective"] == 20000
    assert out["listeners"]["mqtts"]["max_connections"] == 20000 - cfg.FD_RESERVE
    assert out["listeners"]["mqtts"]["max_connections"] >= 10000


def test_explicit_max_connections_within_the_limit_is_kept():
    out = validate(nofile_hard_limit=20000, listeners={"mqtts": {"max_connections": 50}})
    assert out["listeners"]["mqtts"]["max_connections"] == 50
    # the open-files limit enforces it (2.0.11 miscounts its own max_connections)
    assert out["limits"]["open_files_effective"] == 50 + cfg.FD_RESERVE


def test_max_connections_above_the_limit_is_refused_plainly():
    msg = error(limits={"open_files": 4096}, listeners={"mqtts": {"max_connections": 5000}})
    assert "mosquitto:listeners:mqtts:max_connections: 5000 is more than the broker can hold open" in msg
    assert "limits:open_files is 4096" in msg and f"room for {4096 - cfg.FD_RESERVE} clients" in msg


def test_max_connections_above_the_host_cap_names_the_cap():
    msg = error(nofile_hard_limit=20000, listeners={"mqtts": {"max_connections": 30000}})
    assert "mosquitto:listeners:mqtts:max_connections: 30000" in msg
    assert "limits:open_files is 65536, lowered to 20000 by this host's hard limit" in msg


@pytest.mark.parametrize("pillar, message", [
    ({"limits": {"open_files": 100}}, "mosquitto:limits:open_files: must be between 1024 and 1048576"),
    ({"limits": {"open_files": "lots"}}, "mosquitto:limits:open_files: must be an integer"),
    ({"limits": {"nofile": 1}}, "mosquitto:limits:nofile: unknown key"),
    ({"listeners": {"mqtts": {"max_connections": 0}}}, "mosquitto:listeners:mqtts:max_connections: must be between 1"),
    ({"listeners": {"mqtts": {"max_connections": "many"}}},
     "mosquitto:listeners:mqtts:max_connections: must be an integer"),
    ({"config": {"max_connections": 10}}, "mosquitto:config:max_connections: is managed by the formula"),
])
def test_bad_capacity_pillar_names_the_key(pillar, message):
    assert message in error(**pillar)


def test_nofile_hard_reads_pid1_under_systemd_and_own_limit_elsewhere():
    with open("/proc/1/limits") as fh:
        line = next(row for row in fh if row.startswith("Max open files"))
    want = line.split()[4]
    assert cfg.nofile_hard("systemd") == (int(want) if want.isdigit() else None)
    assert cfg.nofile_hard("sysvinit") == resource.getrlimit(resource.RLIMIT_NOFILE)[1]
