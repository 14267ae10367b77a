"""Pillar keys of issue 8 (tls:profile, lookup:paths:bridges_dir, secrets
under bridge options) and the one renderer of bridge sections."""
import pytest
from salt.exceptions import SaltInvocationError

from test.support.config import cfg, error_of, settings
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)
from test.support.modules import load

bridge = load("_modules", "mosquitto_bridge")

BRIDGE = {"address": "b.example.com:8883", "topics": ["a/# out 1"],
          "remote_username": "u", "remote_password": "p"}


def test_profile_intermediate_is_the_default_and_sets_aead_ecdhe_ciphers():
    out = cfg.validate(settings())
    assert out["tls"]["profile"] == "intermediate"
    suites = out["tls"]["ciphers"].split(":")
    assert suites and all(s.startswith("ECDHE-") and ("GCM" in s or "CHACHA20" in s) for s in suites)
    assert out["listeners"]["mqtts"]["tls_version"] == "tlsv1.2"


def test_profile_modern_is_tls13_only_for_listener_and_bridges():
    out = cfg.validate(settings(tls={"profile": "modern"}))
    assert out["tls"]["ciphers"] == ""
    assert out["listeners"]["mqtts"]["tls_version"] == "tlsv1.3"


def test_unknown_profile_names_the_key():
    assert "mosquitto:tls:profile: must be one of intermediate, modern, got 'old'" in error_of(
        tls={"profile": "old"})


@pytest.mark.parametrize("option", ["bridge_psk", "remote_password", "connection", "bridge_cafile"])
def test_secrets_and_written_options_are_refused_under_bridge_options(option):
    message = error_of(bridges={"b": dict(BRIDGE, options={option: "x"})})
    assert f"mosquitto:bridges:b:options:{option}:" in message
    assert "'x'" not in message


@pytest.mark.parametrize("where", ["/etc/mosquitto/conf.d", "/etc/mosquitto"])
def test_bridges_dir_must_be_its_own(where):
    message = error_of(paths={"bridges_dir": where})
    assert "mosquitto:lookup:paths:bridges_dir: must be a directory of its own" in message


def test_bridge_error_messages_never_hold_the_password():
    message = error_of(bridges={"b": dict(BRIDGE, remote_password="line\nbreak-secret")})
    assert "mosquitto:bridges:b:remote_password: must not contain line breaks" in message
    assert "break-secret" not in message


def test_render_section_starts_with_its_connection_and_writes_tls():
    text = bridge.render_section("site-b", cfg.validate(settings(bridges={"site-b": BRIDGE}))["bridges"]["site-b"],
                                 ca_cert="/etc/mosquitto/certs/ca.crt", tls_version="tlsv1.3")
    lines = text.splitlines()
    assert [line for line in lines if not line.startswith("#")][:2] == [
        "connection site-b", "address b.example.com:8883"]
    assert "remote_password p" in lines and "bridge_tls_version tlsv1.3" in lines
    assert "bridge_cafile /etc/mosquitto/certs/ca.crt" in lines


def test_render_refuses_a_line_break_without_showing_the_value():
    with pytest.raises(SaltInvocationError) as exc:
        bridge.render_section("b", dict(BRIDGE, remote_password="a\nconnection evil", tls=False))
    assert "remote_password" in str(exc.value) and "evil" not in str(exc.value)
