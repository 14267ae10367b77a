"""The config model: global options before the listeners, per-listener options
under listeners:<name>:options (an allowlist), formula-owned keys refused in
both places, and one username rule shared with mosquitto_passwd."""
import pathlib

import jinja2
import pytest
from salt.exceptions import SaltInvocationError

from test.support.config import cfg, error_of, settings
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)
from test.support.modules import load

passwd = load("_modules", "mosquitto_passwd")
ROOT = pathlib.Path(__file__).resolve().parents[2]


def render(**pillar):
    """mosquitto.conf.jinja rendered from a validated pillar, as lines."""
    data = cfg.validate(settings(**pillar))
    data.pop("users")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / "mosquitto/files/default")),
                             extensions=["jinja2.ext.do"])
    return env.get_template("mosquitto.conf.jinja").render(mosquitto=data).splitlines()


@pytest.mark.parametrize("where", [{"config": {"per_listener_settings": True}},
                                   {"listeners": {"mqtt": {"options": {"per_listener_settings": True}}}},
                                   {"listeners": {"mqtts": {"options": {"per_listener_settings": True}}}}],
                         ids=["config", "mqtt", "mqtts"])
def test_per_listener_settings_is_refused_everywhere(where):
    key = ":".join(list(where)[:1] + (["mqtt" if "mqtt" in where.get("listeners", {}) else "mqtts", "options"]
                                      if "listeners" in where else [])) + ":per_listener_settings"
    assert f"mosquitto:{key}: is managed by the formula" in error_of(**where)


@pytest.mark.parametrize("option", ["listener", "port", "bind_address", "certfile", "keyfile",
                                    "cafile", "tls_version", "password_file", "allow_anonymous"])
def test_formula_owned_options_are_refused_per_listener(option):
    text = error_of(listeners={"mqtts": {"options": {option: "x"}}})
    assert f"mosquitto:listeners:mqtts:options:{option}: is managed by the formula" in text


@pytest.mark.parametrize("option", ["protocol", "mount_point", "use_username_as_clientid",
                                    "max_qos", "http_dir", "socket_domain", "require_certificate"])
def test_per_listener_options_are_refused_under_config(option):
    text = error_of(config={option: 1})
    assert f"mosquitto:config:{option}: is a per-listener option: set it under listeners:" in text


def test_global_options_are_refused_per_listener():
    text = error_of(listeners={"mqtt": {"options": {"sys_interval": 5}}})
    assert "mosquitto:listeners:mqtt:options:sys_interval: is not a per-listener option" in text
    assert "global options go under config" in text


def test_tls_options_only_on_the_tls_listener():
    text = error_of(listeners={"mqtt": {"options": {"crlfile": "/etc/mosquitto/crl.pem"}}})
    assert "mosquitto:listeners:mqtt:options:crlfile: is not a per-listener option" in text
    cfg.validate(settings(listeners={"mqtts": {"options": {"ciphers_tls1.3": "TLS_AES_256_GCM_SHA384"}}}))


def test_listener_option_values_are_single_lines():
    text = error_of(listeners={"mqtts": {"options": {"mount_point": "a/\nlistener 1 0.0.0.0"}}})
    assert "mosquitto:listeners:mqtts:options:mount_point: must not contain line breaks" in text


def test_globals_come_before_the_first_listener_and_options_after_their_own():
    lines = render(config={"sys_interval": 2}, logging={"types": ["error", "notice"]},
                   listeners={"mqtt": {"options": {"max_qos": 1}},
                              "mqtts": {"max_connections": 500, "options": {"mount_point": "tls/"}}})
    listeners = [i for i, line in enumerate(lines) if line.startswith("listener ")]
    assert len(listeners) == 2
    first, second = listeners
    assert lines.index("sys_interval 2") < first
    assert lines.index("log_type error") < first and lines.index("log_type notice") < first
    assert first < lines.index("max_qos 1") < second
    assert lines.index("max_connections 500") > second and lines.index("mount_point tls/") > second
    assert lines.count("per_listener_settings false") == 1


def test_defaults_render_no_listener_options():
    lines = render()
    after = lines[[i for i, line in enumerate(lines) if line.startswith("listener ")][-1]:]
    assert [line.split()[0] for line in after if line and not line.startswith("#")] == \
        ["listener", "cafile", "certfile", "keyfile", "tls_version", "ciphers", "max_connections",
         "include_dir", "include_dir"]


def test_ipv6_loopback_listener_renders():
    assert "listener 1883 ::1" in render(listeners={"mqtt": {"bind_address": "::1"}})


@pytest.mark.parametrize("name", ["#ops", "", "a:b", " a", "a\tb", "a\x85b"])
def test_one_username_rule_for_validation_and_the_passwd_file(name):
    """Whatever mosquitto_passwd refuses, validation refuses at render time,
    with mosquitto_passwd's own reason and the key path."""
    with pytest.raises(Exception) as refused:
        passwd.check_username(name)
    text = error_of(users={name: {"password": "x"}})
    assert f"mosquitto:users:{name}: bad user name: {refused.value}" in text


def test_exporter_user_follows_the_same_rule():
    assert "mosquitto:exporter:user: must be a valid MQTT user name: username '#exp' starts with '#'" \
        in error_of(exporter={"user": "#exp"})


def test_validation_has_no_username_rule_of_its_own(monkeypatch):
    """Validation asks mosquitto_passwd.check_username and nothing else:
    with another rule in its place, names the real rule refuses pass and
    the other rule's refusal is the one reported."""
    def other_rule(name):
        if name.startswith("stub-"):
            raise SaltInvocationError(f"username {name!r} refused by the stand-in rule")
    monkeypatch.setitem(cfg.__salt__, "mosquitto_passwd.check_username", other_rule)
    users = {name: {"password": "x"} for name in ("#ops", "a:b", " a")}
    assert set(users) <= set(cfg.validate(settings(users=users))["users"])
    assert ("mosquitto:users:stub-u: bad user name: username 'stub-u' refused by the stand-in rule"
            in error_of(users={"stub-u": {"password": "x"}}))
    assert ("mosquitto:exporter:user: must be a valid MQTT user name: username 'stub-e' refused by the stand-in rule"
            in error_of(exporter={"user": "stub-e"}))
