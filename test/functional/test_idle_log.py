"""How much an idle broker logs with the formula's mosquitto.conf.

The real mosquitto reads the whole file the formula renders (TLS listener,
password file, ACL, persistence with the durability default autosave
every 2 s), pointed at temp paths. Two brokers sit idle side by side for
the same stretch: the default (logging:types error, warning, notice) and
the same config with `information` added, which is where 2.0 logs each
autosave. Lines are counted, never timed: the idle stretch only turns a
count into lines per hour.
"""
import re
import time

import pytest

from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)
from test.support.formula_broker import PASSWORD, FormulaBroker
from test.support.mqtt import Client

IDLE_S = 24
# Lines an idle hour may cost with the default: the measured count is 0;
# one line a minute would still be ~1,400 a day, not the 43,000 of before.
IDLE_BOUND_PER_HOUR = 60


@pytest.fixture
def brokers(tmp_path):
    started = []
    try:
        started.append(FormulaBroker(tmp_path / "default"))
        started.append(FormulaBroker(tmp_path / "information",
                                     logging={"types": ["error", "warning", "notice", "information"]}))
        yield [b.started() for b in started]
    finally:
        for broker in started:
            broker.stop()


def test_idle_broker_logs_nothing_but_connections_stay_visible(brokers):
    quiet, chatty = brokers
    assert re.findall(r"^log_type (\w+)$", quiet.conf, re.M) == ["error", "warning", "notice"]
    assert "\nautosave_interval 1\n" in quiet.conf  # the durability default: a save every 2 s
    before = [len(b.lines()) for b in brokers]
    start = time.monotonic()
    time.sleep(IDLE_S)
    idle_s = time.monotonic() - start
    per_hour = [(len(b.lines()) - n) * 3600 / idle_s for b, n in zip(brokers, before, strict=True)]
    saves = [line for line in chatty.lines() if "Saving in-memory database" in line]
    # The measure sees the autosave line where it is logged...
    assert len(saves) >= 3 and per_hour[1] >= 360, (per_hour, chatty.lines())
    # ...and the default logs (almost) nothing while idle.
    assert per_hour[0] <= IDLE_BOUND_PER_HOUR, (per_hour, quiet.lines())
    assert not any("Saving in-memory database" in line for line in quiet.lines())

    # One login, its logout and a refused login: all in the quiet log.
    alice = Client(quiet.ports[0], "alice", PASSWORD, client_id="idle-alice")
    assert alice.connect()
    alice.close()
    assert Client(quiet.ports[0], "alice", "wrong", client_id="idle-mallory").connect() is False
    assert "u'alice'" in quiet.wait_for(r"New client connected from 127\.0\.0\.1:\d+ as idle-alice ")
    quiet.wait_for(r"Client idle-alice disconnected\.")
    # 2.0.11 names a refused client <unknown> (it never got an id).
    quiet.wait_for(r"Client <unknown> disconnected, not authorised\.")
    print(f"idle lines per hour: default {per_hour[0]:.0f}, with information {per_hour[1]:.0f}")
