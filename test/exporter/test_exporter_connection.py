"""Session handling: broker down, restarts, and password authentication."""
import subprocess

from test.exporter.helpers import ANON, EXPORTER, SYS_FAST, broker_series
from test.support.broker import Broker, free_port

PASSWORD = "s3cret: with spaces"  # ':' and blanks are legal in mosquitto passwords


def test_up_at_once_and_connects_when_the_broker_appears(exporter_factory):
    broker = Broker(extra=ANON + SYS_FAST)
    exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{broker.port}")
    # Served with no broker at all, and honest about it.
    _, values = exporter.metrics()
    assert values["mosquitto_exporter_connected"] == 0
    assert broker_series(values) == []
    with broker:
        exporter.wait_connected(timeout=35)  # within one backoff cap (30 s)


def test_reconnects_after_restart_and_never_serves_stale_values(exporter_factory):
    with Broker(extra=ANON + SYS_FAST) as broker:
        exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{broker.port}")
        exporter.wait_connected()
        exporter.wait_for(lambda t, v: v.get("broker_uptime", 0) >= 3, "uptime of 3 s")

        broker.stop()
        # /metrics still answers; every broker value is gone, not frozen.
        types, values = exporter.wait_for(
            lambda t, v: v["mosquitto_exporter_connected"] == 0, "the disconnect")
        assert broker_series(values) == []
        assert "broker_info" not in str(values)
        assert "mosquitto_exporter_last_update_timestamp_seconds" in values

        broker.start()  # same port
        _, values = exporter.wait_connected(timeout=15)  # first retry after ~1 s
        # Values come from the new broker: its uptime started again.
        assert values["broker_uptime"] < 3
        assert "lost connection" in exporter.log()


def password_broker(tmp_path):
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "exporter", PASSWORD],
                   check=True, capture_output=True)
    return Broker(extra=SYS_FAST + f"allow_anonymous false\npassword_file {passwd}\n")


def test_password_from_pass_file(exporter_factory, tmp_path):
    pass_file = tmp_path / "exporter.pass"
    pass_file.write_text(PASSWORD + "\n")
    with password_broker(tmp_path) as broker:
        exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{broker.port}",
                                    "--user", "exporter", "--pass-file", str(pass_file))
        exporter.wait_connected()
        with open(f"/proc/{exporter.proc.pid}/cmdline", "rb") as cmdline:
            assert PASSWORD.encode() not in cmdline.read()
    assert PASSWORD not in exporter.log()


def test_pass_file_from_environment(exporter_factory, tmp_path):
    pass_file = tmp_path / "exporter.pass"
    pass_file.write_text(PASSWORD)  # no trailing newline either
    with password_broker(tmp_path) as broker:
        exporter = exporter_factory(env={
            "BROKER_ENDPOINT": f"tcp://127.0.0.1:{broker.port}",
            "MQTT_USER": "exporter", "MQTT_PASS_FILE": str(pass_file)})
        exporter.wait_connected()


def test_wrong_password_serves_no_broker_values(exporter_factory, tmp_path):
    pass_file = tmp_path / "exporter.pass"
    pass_file.write_text("not the password\n")
    with password_broker(tmp_path) as broker:
        exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{broker.port}",
                                    "--user", "exporter", "--pass-file", str(pass_file))
        exporter.wait_for(lambda t, v: "refused" in exporter.log(), "the refusal in the log")
        _, values = exporter.metrics()
        assert values["mosquitto_exporter_connected"] == 0
        assert broker_series(values) == []
    assert "not the password" not in exporter.log()


def test_password_on_the_command_line_still_works_but_warns(exporter_factory, tmp_path):
    with password_broker(tmp_path) as broker:
        exporter = exporter_factory("-e", f"tcp://127.0.0.1:{broker.port}",
                                    "-u", "exporter", "-p", PASSWORD)
        exporter.wait_connected()
    assert "visible to every local user" in exporter.log()
    assert PASSWORD not in exporter.log()


def test_unreadable_pass_file_is_a_clear_error(python, tmp_path):
    missing = tmp_path / "missing.pass"
    result = subprocess.run(
        [python, str(EXPORTER), "--bind-address",
         f"127.0.0.1:{free_port()}", "--user", "exporter", "--pass-file", str(missing)],
        capture_output=True, text=True, timeout=20)
    assert result.returncode == 2
    assert str(missing) in result.stderr
