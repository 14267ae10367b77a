"""mosquitto_firewall: firewalld's D-Bus zone settings, as busctl prints them.

The replies are verbatim ``busctl --json=short`` output from firewalld 1.3.3
on a Debian 12 test host (firewalld never runs on this machine; the hosts
suite, test/hosts/test_firewall_state.py, runs the module against it).
"""
import json

from test.support.modules import load

fw = load("_modules", "mosquitto_firewall")

RUNTIME_PUBLIC = (
    '{"type":"a{sv}","data":[{"short":{"type":"s","data":"Public"},"description":{"type":"s",'
    '"data":"For use in public areas."},"target":{"type":"s","data":"default"},'
    '"services":{"type":"as","data":["ssh"]},"ports":{"type":"a(ss)","data":[["9234","tcp"],'
    '["8883","tcp"]]},"masquerade":{"type":"b","data":false},"icmp_block_inversion":{"type":"b",'
    '"data":false},"forward":{"type":"b","data":true}}]}'
)
# A zone with nothing open: firewalld leaves the empty entries out.
EMPTY_ZONE = '{"type":"a{sv}","data":[{"target":{"type":"s","data":"default"}}]}'


NOTHING_ELSE = {"rich_rules": [], "protocols": [], "source_ports": [], "forward_ports": []}
# A shared zone: other services, a port, a rich rule, a protocol, a source
# port and two forward ports (firewalld's a(ssss) with and without toaddr).
SHARED_ZONE = (
    '{"type":"a{sv}","data":[{"services":{"type":"as","data":["cockpit","dhcpv6-client","ssh"]},'
    '"ports":{"type":"a(ss)","data":[["5353","udp"]]},'
    '"rules_str":{"type":"as","data":["rule family=\\"ipv4\\" source address=\\"10.9.0.0/16\\" '
    'port port=\\"5000\\" protocol=\\"tcp\\" accept"]},'
    '"protocols":{"type":"as","data":["gre"]},"source_ports":{"type":"a(ss)","data":[["68","udp"]]},'
    '"forward_ports":{"type":"a(ssss)","data":[["80","tcp","8080",""],["443","tcp","","10.0.0.2"]]}}]}'
)


def test_ports_and_services_read_as_firewall_cmd_writes_them():
    assert fw.parse_settings(json.loads(RUNTIME_PUBLIC)) == {
        "ports": ["8883/tcp", "9234/tcp"], "services": ["ssh"], **NOTHING_ELSE}


def test_missing_entries_mean_nothing_open():
    assert fw.parse_settings(json.loads(EMPTY_ZONE)) == {"ports": [], "services": [], **NOTHING_ELSE}


def test_other_openings_read_as_firewall_cmd_takes_them():
    assert fw.parse_settings(json.loads(SHARED_ZONE)) == {
        "ports": ["5353/udp"], "services": ["cockpit", "dhcpv6-client", "ssh"],
        "rich_rules": ['rule family="ipv4" source address="10.9.0.0/16" port port="5000" protocol="tcp" accept'],
        "protocols": ["gre"], "source_ports": ["68/udp"],
        "forward_ports": ["port=443:proto=tcp:toaddr=10.0.0.2", "port=80:proto=tcp:toport=8080"]}


def test_unknown_zone_is_none_and_other_failures_raise():
    class Failed(Exception):
        pass

    assert fw._settings_or_none(False, "Call failed: INVALID_ZONE: nosuch", "nosuch", Failed) is None
    try:
        fw._settings_or_none(False, "Could not activate remote peer.", "public", Failed)
    except Failed as exc:
        assert "public" in str(exc) and "Could not activate" in str(exc)
    else:
        raise AssertionError("no error for a firewalld that does not answer")
