"""Hand-written bridges get remote_clientid <minion id>.<bridge> unless the
pillar sets one (issue 9: "a remote_clientid unique per host and bridge");
mosquitto 2.0's own default, <hostname>.<bridge>, collides between
containers and cloned hosts."""
from test.support.config import BRIDGE, validate
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)
from test.support.modules import load

bridge_mod = load("_modules", "mosquitto_bridge")


def test_default_is_minion_id_dot_bridge_name_and_is_rendered():
    bridges = validate(minion="mqtt2.example.com", bridges={"site-b": BRIDGE, "site-c": BRIDGE | {
        "address": "c.example.com:8883"}})["bridges"]
    assert bridges["site-b"]["options"]["remote_clientid"] == "mqtt2.example.com.site-b"
    assert bridges["site-c"]["options"]["remote_clientid"] == "mqtt2.example.com.site-c"
    text = bridge_mod.render_section("site-b", bridges["site-b"], ca_cert="/etc/mosquitto/certs/ca.crt")
    assert "\nremote_clientid mqtt2.example.com.site-b\n" in text
    assert text.count("remote_clientid") == 1


def test_a_pillar_remote_clientid_is_kept():
    b = dict(BRIDGE, options={"remote_clientid": "edge-7.uplink"})
    bridges = validate(minion="mqtt2", bridges={"up": b})["bridges"]
    assert bridges["up"]["options"] == {"remote_clientid": "edge-7.uplink"}
    text = bridge_mod.render_section("up", bridges["up"], ca_cert="/etc/mosquitto/certs/ca.crt")
    assert "\nremote_clientid edge-7.uplink\n" in text and "mqtt2.up" not in text


def test_no_minion_id_leaves_it_to_mosquitto():
    """validate called outside Salt (no id): nothing invented."""
    bridges = validate(minion=None, bridges={"b": BRIDGE})["bridges"]
    assert "remote_clientid" not in bridges["b"]["options"]
