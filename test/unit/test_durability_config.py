"""persistence:autosave_interval / autosave_on_changes: validated, rendered
into mosquitto.conf as the formula writes it, and obeyed by a real broker
that is killed with SIGKILL (a throw-away broker on loopback)."""
import os
import pathlib
import re
import time

import jinja2
import pytest

from test.support.broker import Broker
from test.support.config import cfg, error_of, settings
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)
from test.support.durability import wait_dead
from test.support.mqtt import Client

TEMPLATE = pathlib.Path(__file__).resolve().parents[2] / "mosquitto/files/default/mosquitto.conf.jinja"


def rendered(**persistence):
    data = cfg.validate(settings(persistence=persistence))
    data.pop("users")
    return jinja2.Environment().from_string(TEMPLATE.read_text()).render(mosquitto=data)


def persistence_lines(conf, location):
    """The formula's persistence lines, pointed at a temp dir."""
    lines = [line for line in conf.splitlines() if re.match(r"^(persistence|autosave_)", line)]
    return "\n".join(f"persistence_location {location}/" if line.startswith("persistence_location") else line
                     for line in lines) + "\nallow_anonymous true\n"


@pytest.mark.parametrize("persistence,message", [
    ({"autosave_on_changes": "yes"}, "mosquitto:persistence:autosave_on_changes: must be true or false"),
    ({"autosave_on_changes": True, "autosave_interval": 0},
     "mosquitto:persistence:autosave_interval: must be a count of at least 1"),
    ({"autosave_interval": -1}, "mosquitto:persistence:autosave_interval: must be between 0"),
])
def test_bad_durability_settings_name_the_key(persistence, message):
    assert message in error_of(persistence=persistence)


def test_autosave_on_changes_is_the_formulas_option():
    assert "mosquitto:config:autosave_on_changes: is managed by the formula" in \
        error_of(config={"autosave_on_changes": True})


def test_default_states_a_two_second_loss_window():
    conf = rendered()
    assert "\nautosave_interval 1\n" in conf
    assert "autosave_on_changes" not in conf
    assert "loses\n# what arrived in the last 2 s" in conf


def _queue_then_kill(extra, tmp_path, wait_s):
    """10 QoS 1 messages for an offline session, `wait_s`, kill -9, start:
    (messages that come back, saves logged before the kill)."""
    broker = Broker(extra, workdir=tmp_path).start()
    try:
        sub = Client(broker.port, client_id="durable", clean=False)
        assert sub.connect()
        sub.subscribe("d/#")
        sub.close()
        pub = Client(broker.port)
        assert pub.connect()
        for i in range(10):
            assert pub.publish(f"d/{i}", b"x").is_published()
        pub.close()
        time.sleep(wait_s)
        saves = broker.logtext().count("Saving in-memory database")
        pid = broker.proc.pid
        os.kill(pid, 9)
        broker.proc.wait()
        assert wait_dead(pid)
        broker.start()
        sub = Client(broker.port, client_id="durable", clean=False)
        assert sub.connect()
        got = []
        try:
            while len(got) < 10:
                got.append(sub.get(timeout=3))
        except Exception:  # queue.Empty: nothing more came
            pass
        sub.close()
        return len(got), saves
    finally:
        broker.stop()


def test_default_saves_within_its_window(tmp_path):
    extra = persistence_lines(rendered(), tmp_path)
    assert _queue_then_kill(extra, tmp_path, wait_s=3)[0] == 10


def test_autosave_on_changes_saves_after_that_many_changes(tmp_path):
    # A count of 1: every queued message is saved at once, no clock involved
    # (a time-based interval would have saved once at most in 0.5 s).
    conf = rendered(autosave_on_changes=True, autosave_interval=1)
    assert "\nautosave_on_changes true\n" in conf and "\nautosave_interval 1\n" in conf
    got, saves = _queue_then_kill(persistence_lines(conf, tmp_path), tmp_path, wait_s=0.5)
    assert got == 10 and saves >= 10, (got, saves)


def test_old_default_loses_everything_on_a_crash(tmp_path):
    # The reason for the new default (issue 14): 1800 s, kill -9, nothing left.
    conf = rendered(autosave_interval=1800)
    assert _queue_then_kill(persistence_lines(conf, tmp_path), tmp_path, wait_s=3) == (0, 0)
