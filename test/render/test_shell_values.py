"""Hostile pillar values never become shell or systemd syntax (issue #20),
rendered through real Salt (`state.show_sls`): the exporter's environment
file (systemd EnvironmentFile= and `. file` as root in the init script),
the exporter's unit and init script, the broker's drop-in. A value either
fails the render with its pillar key named (by the pillar's validation or
by mosquitto_shell at the point it is written), or is quoted so the real
/bin/sh reads back exactly the value and runs nothing."""
import subprocess

import pytest

from scripts.saltlocal import SaltLocal

DEBIAN12_SYSTEMD = {"os": "Debian", "os_family": "Debian", "osfinger": "Debian-12",
                    "osmajorrelease": 12, "init": "systemd", "kernel": "Linux"}
DEBIAN12_SYSV = dict(DEBIAN12_SYSTEMD, init="sysvinit")
BASE = {"domain": "mqtt.example.com", "users": {"alice": {"password": "pw"}}}
ENV_STATE = "mosquitto-configure-exporter-env-file-managed"

_SYNCED = {}


def show(tmp_path, grains, overrides, sls):
    key = repr(sorted(grains.items()))
    if key not in _SYNCED:
        salt = SaltLocal(tmp_path / "salt").setup({"mosquitto": BASE}, extra_opts={"grains": grains})
        salt.sync()
        _SYNCED[key] = salt
    salt = _SYNCED[key]
    salt.write_pillar({"mosquitto": {**BASE, **overrides}})
    return salt.call("state.show_sls", sls)


def env_contents(highstate):
    for item in highstate[ENV_STATE]["file"]:
        if isinstance(item, dict) and "contents" in item:
            return item["contents"]
    raise AssertionError(highstate[ENV_STATE])


HOSTILE = [
    ({"exporter": {"user": "x; touch /tmp/pwned"}}, "mosquitto:exporter:user"),
    ({"exporter": {"bind_address": "0.0.0.0\nExecStartPre=/bin/sh -c id"}}, "mosquitto:exporter:bind_address"),
    ({"tls": {"cert": "/etc/mosquitto/certs/$(id).crt"}}, "mosquitto:tls:cert"),
    ({"tls": {"ca_cert": "/etc/mosquitto/certs/it's.crt"}}, "mosquitto:tls:ca_cert"),
    ({"tls": {"cert": "/etc/mosquitto/certs/`id`.crt"}}, "mosquitto:tls:cert"),
    ({"exporter": {"install": "venv", "venv_dir": "/opt/x; id"}}, "mosquitto:exporter:venv_dir"),
]


@pytest.mark.parametrize("grains", [DEBIAN12_SYSTEMD, DEBIAN12_SYSV], ids=["systemd", "sysv"])
@pytest.mark.parametrize("overrides, key", HOSTILE, ids=[k for _, k in HOSTILE])
def test_hostile_value_is_refused_naming_its_key(tmp_path, grains, overrides, key):
    sls = "mosquitto.configure.exporter,mosquitto.configure.service"
    rc, out, err = show(tmp_path, grains, overrides, sls)
    text = f"{out}\n{err}"
    assert rc != 0 or not isinstance(out, dict), text
    assert key in text, text
    assert not __import__("os").path.exists("/tmp/pwned")


def test_blank_in_a_path_of_the_drop_in_is_refused(tmp_path):
    """ReadWritePaths= splits at blanks: two paths, one of them the broker's
    user's to write. (Without systemd no unit names that path.)"""
    rc, out, err = show(tmp_path, DEBIAN12_SYSTEMD, {"persistence": {"location": "/var/lib/mosq uitto/"}},
                        "mosquitto.configure.service")
    assert rc != 0 or not isinstance(out, dict), (out, err)
    assert "mosquitto:persistence:location" in f"{out}\n{err}"


def test_quotable_value_reads_back_exactly_from_the_env_file(tmp_path):
    """A path with a blank and a semicolon cannot break out of its quotes."""
    cert = "/etc/mosquitto/certs/a b;touch pwned.crt"
    rc, out, err = show(tmp_path, DEBIAN12_SYSV, {"tls": {"cert": cert}}, "mosquitto.configure.exporter")
    if rc != 0:
        # The pillar's validation may refuse such a path outright: that is fine too.
        assert "mosquitto:tls:cert" in f"{out}\n{err}", (out, err)
        return
    env = tmp_path / "exporter.env"
    env.write_text(env_contents(out))
    read = subprocess.run(["/bin/sh", "-c", f'. {env}; printf %s "$SERVER_CERT_FILE"'], cwd=tmp_path,
                          capture_output=True, text=True, timeout=10)
    assert read.returncode == 0 and read.stdout == cert, read
    assert not (tmp_path / "pwned").exists()


def test_default_env_file_is_quoted_and_sources_cleanly(tmp_path):
    rc, out, err = show(tmp_path, DEBIAN12_SYSTEMD, {}, "mosquitto.configure.exporter")
    assert rc == 0 and isinstance(out, dict), (out, err)
    lines = [line for line in env_contents(out).splitlines() if line and not line.startswith("#")]
    assert "BROKER_ENDPOINT='tcp://127.0.0.1:1883'" in lines
    assert "BIND_ADDRESS='0.0.0.0:9234'" in lines
    assert all(line.count("'") == 2 and line.endswith("'") for line in lines), lines
    env = tmp_path / "exporter.env"
    env.write_text(env_contents(out))
    read = subprocess.run(["/bin/sh", "-c", f'. {env}; printf %s "$MQTT_USER|$MAX_CONNECTIONS"'],
                          capture_output=True, text=True, timeout=10)
    assert read.stdout.startswith("mosquitto-exporter|") and read.stdout.split("|")[1].isdigit(), read
