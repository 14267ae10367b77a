"""The two opt-ins that give up a guarantee (issue #20), on a real broker:

- ``listeners:mqtt:allow_remote_plain``: without it, plain MQTT on an
  address other hosts reach is refused naming the key; with it the broker
  the formula configures really listens there, in clear text.
- ``allow_plugins``: without it a plugin option is refused naming the key;
  with it the plugin line is rendered (and only then), and the broker
  really loads the plugin: Debian's mosquitto ships the dynamic security
  plugin, whose own accounts then log in although the formula's password
  file does not know them (what the opt-in gives up).

validate runs through Salt's real loader (the ``modules`` fixture);
mosquitto.conf and the ACL file are rendered as the SLS files render them
(test/support/property.py: Salt's Jinja renderer, the SLS's YAML), the
password file by mosquitto_passwd. The broker runs in a network namespace
of its own (test/support/netns_broker.py says why).
"""
import copy
import glob
import subprocess

import pytest
from salt.exceptions import CommandExecutionError

from test.support import mapdata
from test.support.netns_broker import ADDRESS, NetnsBroker
from test.support.property import render_acl, render_conf

# Debian's mosquitto package (make test installs it) ships this plugin;
# not found means the package is missing or being reinstalled: a failure.
DYNSEC = next(iter(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so")), "mosquitto_dynamic_security.so not found")
MQTT, MQTTS = 1883, 8883  # the namespace's own ports
ALICE = ("alice", "alice-pw-7f3a")


def _pillar(tmp_path, **extra):
    """A pillar whose files all live under tmp_path (the broker runs as root
    here, the test's user: lookup:service:user root)."""
    for name in ("bridges.d", "data"):
        (tmp_path / name).mkdir(exist_ok=True)
    pillar = {
        "domain": "mqtt.example.com",
        "ports": {"mqtt": MQTT, "mqtts": MQTTS, "exporter": 9234},
        "users": {ALICE[0]: {"password": ALICE[1], "acl": ["readwrite test/#"]}},
        "exporter": {"enabled": False},
        "persistence": {"location": str(tmp_path / "data")},
        "tls": {"ca_cert": str(tmp_path / "cert.pem"), "cert": str(tmp_path / "cert.pem"),
                "key": str(tmp_path / "key.pem")},
        # No log file and no drop-in directory: the broker logs to stderr
        # (the test reads it) and reads nothing of this host's /etc.
        "lookup": {"paths": {"passwd": str(tmp_path / "passwd"), "acl": str(tmp_path / "acl"),
                             "bridges_dir": str(tmp_path / "bridges.d"), "log_file": "", "include_dir": ""},
                   "service": {"user": "root", "group": "root"}},
    }
    pillar.update(copy.deepcopy(extra))
    return pillar


def _validate(modules, pillar):
    return modules.mosquitto_config.validate(mapdata.built(pillar), minion_id="mqtt1", broker_version=None)


def _refusal(modules, pillar):
    with pytest.raises(CommandExecutionError) as exc:
        _validate(modules, pillar)
    return str(exc.value)


def _write_files(modules, tmp_path, data):
    """The files the formula writes for ``data``; returns mosquitto.conf's text."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-subj", "/CN=mqtt.example.com", "-days", "2", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    modules.mosquitto_passwd.manage(data["paths"]["passwd"], {ALICE[0]: {"password": ALICE[1]}},
                                    user=None, group=None, mode="0640")
    (tmp_path / "acl").write_text(render_acl(data))
    conf = render_conf(data)
    (tmp_path / "mosquitto.conf").write_text(conf)
    assert "/etc/" not in conf and "/var/" not in conf, conf
    return conf


def _broker(tmp_path):
    return NetnsBroker(tmp_path / "mosquitto.conf", tmp_path / "broker.log")


def _round_trip(broker, host, user, password):
    """Subscribe, publish and receive one message as ``user`` over plain MQTT."""
    sub = ["mosquitto_sub", "-h", host, "-p", str(MQTT), "-u", user, "-P", password, "-t", "test/opt-in",
           "-C", "1", "-W", "15"]
    pub = ["mosquitto_pub", "-h", host, "-p", str(MQTT), "-u", user, "-P", password, "-t", "test/opt-in",
           "-m", "clear text", "-q", "1", "-r"]
    sent = broker.run(*pub)
    got = broker.run(*sub)
    return sent, got


# --------------------------------------------------------------------------
# listeners:mqtt:allow_remote_plain
# --------------------------------------------------------------------------


def test_plain_mqtt_off_loopback_is_refused_naming_the_key(modules, tmp_path):
    message = _refusal(modules, _pillar(tmp_path, listeners={"mqtt": {"bind_address": ADDRESS}}))
    assert f"mosquitto:listeners:mqtt:bind_address: '{ADDRESS}' is not a loopback address" in message
    assert "listeners:mqtt:allow_remote_plain: true" in message
    assert not (tmp_path / "mosquitto.conf").exists()


def test_with_allow_remote_plain_the_broker_listens_plain_there(modules, tmp_path):
    pillar = _pillar(tmp_path, listeners={"mqtt": {"bind_address": ADDRESS, "allow_remote_plain": True}})
    conf = _write_files(modules, tmp_path, _validate(modules, pillar))
    assert f"\nlistener {MQTT} {ADDRESS}\n" in conf
    with _broker(tmp_path) as broker:
        sent, got = _round_trip(broker, ADDRESS, *ALICE)
        assert sent.returncode == 0, sent.stderr
        assert got.returncode == 0 and got.stdout == "clear text\n", (got.stdout, got.stderr)
        # Bound to that address only: not on loopback.
        local = broker.run("mosquitto_pub", "-h", "127.0.0.1", "-p", str(MQTT), "-u", ALICE[0],
                           "-P", ALICE[1], "-t", "test/x", "-m", "x")
        assert local.returncode != 0 and "refused" in local.stderr.lower(), local.stderr
        # The formula's authentication still holds on that listener.
        wrong = broker.run("mosquitto_pub", "-h", ADDRESS, "-p", str(MQTT), "-u", ALICE[0],
                           "-P", "wrong", "-t", "test/x", "-m", "x")
        assert wrong.returncode != 0 and "not authorised" in wrong.stderr.lower(), wrong.stderr


# --------------------------------------------------------------------------
# allow_plugins
# --------------------------------------------------------------------------


def _dynsec_pillar(tmp_path, allow):
    config = {"plugin": DYNSEC, "plugin_opt_config_file": str(tmp_path / "dynsec.json")}
    return _pillar(tmp_path, config=config, allow_plugins=allow)


def test_a_plugin_without_allow_plugins_is_refused_naming_the_key(modules, tmp_path):
    message = _refusal(modules, _dynsec_pillar(tmp_path, allow=False))
    for key in ("plugin", "plugin_opt_config_file"):
        assert f"mosquitto:config:{key}: loads or configures a broker plugin" in message
    assert "set allow_plugins: true" in message


def test_allow_plugins_alone_renders_no_plugin_line(modules, tmp_path):
    conf = render_conf(_validate(modules, _pillar(tmp_path, allow_plugins=True)))
    assert not [line for line in conf.splitlines() if line.startswith(("plugin", "auth_plugin", "global_plugin"))]


def test_with_allow_plugins_the_broker_loads_the_plugin_and_its_accounts_log_in(modules, tmp_path):
    data = _validate(modules, _dynsec_pillar(tmp_path, allow=True))
    conf = _write_files(modules, tmp_path, data)
    plugin_lines = [line for line in conf.splitlines() if line.startswith("plugin")]
    assert plugin_lines == [f"plugin {DYNSEC}", f"plugin_opt_config_file {tmp_path / 'dynsec.json'}"]
    # The plugin's own account, which the formula's password file never heard of.
    subprocess.run(["mosquitto_ctrl", "dynsec", "init", str(tmp_path / "dynsec.json"), "admin", "dynsec-pw-51c"],
                   check=True, capture_output=True)
    assert "admin:" not in (tmp_path / "passwd").read_text()
    with _broker(tmp_path) as broker:
        assert "Loading plugin: " + DYNSEC in broker.logtext()
        asked = broker.run("mosquitto_rr", "-h", "127.0.0.1", "-p", str(MQTT), "-u", "admin", "-P", "dynsec-pw-51c",
                           "-t", "$CONTROL/dynamic-security/v1", "-e", "$CONTROL/dynamic-security/v1/response",
                           "-m", '{"commands":[{"command":"listClients"}]}', "-W", "15")
        assert asked.returncode == 0, asked.stderr
        assert '"listClients"' in asked.stdout and '"admin"' in asked.stdout, asked.stdout
