"""`make apply`'s script (scripts/demo_apply.py) says which step it is on
and, when the apply fails, where the full log is. Forced to fail with a
domain validation refuses: the render stops before any state runs, so
nothing on this host changes."""
import os
import subprocess
import sys

from scripts import demo_apply
from scripts.saltlocal import REPO, SaltLocal


def test_a_failed_apply_names_the_key_and_the_log(tmp_path):
    work = tmp_path / "demo"
    env = dict(os.environ, MQTT_DEMO_DIR=str(work), DOMAIN="not a domain")
    run = subprocess.run([sys.executable, str(REPO / "scripts/demo_apply.py")], env=env,
                         capture_output=True, text=True, timeout=900, check=False)
    assert run.returncode == 1, run.stdout + run.stderr
    steps = [line.split("]")[0] + "]" for line in run.stdout.splitlines() if line.startswith("[")]
    assert steps == ["[1/3]", "[2/3]", "[3/3]"], run.stdout
    assert "state.apply failed" in run.stderr and "mosquitto:domain" in run.stderr, run.stderr
    log = work / "root/minion.log"
    assert f"Full log: {log}" in run.stderr
    assert "mosquitto:domain" in log.read_text()
    assert oct((work / "demo-password").stat().st_mode & 0o777) == "0o600"


def test_each_state_is_shown_as_it_starts(tmp_path, capsys):
    # A stand-in `mosquitto` SLS of two harmless states, from a file root
    # of its own: the same salt-call and log, none of the formula's changes.
    root = tmp_path / "roots"
    root.mkdir()
    (root / "mosquitto.sls").write_text(
        "first:\n  test.succeed_without_changes: []\nsecond:\n  test.succeed_with_changes: []\n")
    salt = SaltLocal(tmp_path / "salt", file_roots=[root]).setup({"mosquitto": {}})
    rc, states, _ = demo_apply.apply_showing_states(salt)
    assert rc == 0 and len(states) == 2, states
    shown = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert shown == ["state 1: test.succeed_without_changes first",
                     "state 2: test.succeed_with_changes second"], shown
