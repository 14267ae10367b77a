"""The firewall states (mosquitto_firewall) on a real firewalld, from a master.

One systemd host, its own CA, firewall:enabled true. The fleet suite
(test_fleet.py) proves the end result from outside (nmap, runtime drift
reloaded); this module proves the states themselves: a no-op reads and
never reloads, test=True plans without touching the zone, permanent drift
is pruned, a missing zone is created with exactly the wanted ports.

Tests run in file order on one module-scoped host.
"""
import json
import secrets

import pytest

from test.support import fleet as fleetmod

pytestmark = pytest.mark.hosts

HOST = "fw1.test"
ZONE_STATE = "mosquitto-configure-firewall-zone-present"
DRIFT_STATE = "mosquitto-runtime-firewall-reloaded"


@pytest.fixture(scope="module")
def host(fleet_factory, fleet_pillar_dir):
    (fleet_pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
    (fleet_pillar_dir / "mosquitto.sls").write_text(
        fleetmod.fleet_pillar_sls("fw-" + secrets.token_urlsafe(12), HOST))
    fleet = fleet_factory([HOST])
    fleet.salt("state.apply", "mosquitto", "sync_mods=all", timeout=900, check=True)
    return fleet, fleet[HOST]


def apply(host, *args):
    fleet, h = host
    return fleet.salt("state.apply", "mosquitto", *args, tgt=h.name, timeout=600, check=True)[h.name]


def changed(ret):
    return {v["__id__"]: v for v in ret.values() if v.get("changes") or v.get("result") is None}


def zone(h, name="public", permanent=False):
    """(sorted ports, sorted services) as firewall-cmd reports them."""
    scope = ["--permanent"] if permanent else []
    ports = h.run(["firewall-cmd", *scope, f"--zone={name}", "--list-ports"]).stdout.split()
    services = h.run(["firewall-cmd", *scope, f"--zone={name}", "--list-services"]).stdout.split()
    return sorted(ports), sorted(services)


WANTED = (["8883/tcp", "9234/tcp"], ["ssh"])


def test_a_noop_apply_reads_the_zone_and_does_not_reload(host):
    _, h = host
    # A runtime-only rule in a zone the formula does not manage: any
    # `firewall-cmd --reload` during the run would drop it.
    h.run(["firewall-cmd", "--zone=work", "--add-port=7/tcp"])
    ret = apply(host)
    assert changed(ret) == {}
    assert "7/tcp" in h.run(["firewall-cmd", "--zone=work", "--list-ports"]).stdout
    assert ret[next(k for k in ret if ZONE_STATE in k)]["comment"] == \
        "Zone public opens exactly ssh, 8883/tcp, 9234/tcp"
    h.run(["firewall-cmd", "--zone=work", "--remove-port=7/tcp"])


def test_permanent_drift_is_planned_under_test_then_pruned(host):
    _, h = host
    h.run(["firewall-cmd", "--permanent", "--zone=public", "--add-port=1883/tcp"])
    h.run(["firewall-cmd", "--permanent", "--zone=public", "--remove-service=ssh"])
    drifted = zone(h, permanent=True)
    assert drifted == (["1883/tcp", "8883/tcp", "9234/tcp"], [])

    planned = changed(apply(host, "test=True"))
    assert set(planned) == {ZONE_STATE}
    assert planned[ZONE_STATE]["result"] is None
    assert planned[ZONE_STATE]["changes"] == {
        "ports": {"old": ["1883/tcp", "8883/tcp", "9234/tcp"], "new": WANTED[0]},
        "services": {"old": [], "new": ["ssh"]}}
    assert zone(h, permanent=True) == drifted  # test=True changed nothing
    assert zone(h) == WANTED                    # runtime untouched too

    done = changed(apply(host))
    assert set(done) == {ZONE_STATE} and done[ZONE_STATE]["result"] is True
    assert zone(h, permanent=True) == WANTED and zone(h) == WANTED
    assert changed(apply(host)) == {}


def test_runtime_service_drift_is_planned_under_test_then_reloaded_away(host):
    _, h = host
    h.run(["firewall-cmd", "--zone=public", "--add-service=http"])  # runtime only
    planned = changed(apply(host, "test=True"))
    assert set(planned) == {DRIFT_STATE} and planned[DRIFT_STATE]["result"] is None
    assert zone(h) == (WANTED[0], ["http", "ssh"])  # still there after test=True

    done = changed(apply(host))
    assert set(done) == {DRIFT_STATE}
    assert done[DRIFT_STATE]["changes"]["runtime"]["old"]["services"] == ["http", "ssh"]
    assert zone(h) == WANTED


def test_a_missing_zone_is_created_with_exactly_the_wanted_ports(host):
    _, h = host
    pillar = "pillar=" + json.dumps({"mosquitto": {"firewall": {
        "zone": "mqtt-edge", "ssh": False, "extra_ports": ["5683/udp"]}}})
    assert "mqtt-edge" not in h.run(["firewall-cmd", "--permanent", "--get-zones"]).stdout.split()
    try:
        planned = changed(apply(host, pillar, "test=True"))
        assert planned[ZONE_STATE]["result"] is None
        assert planned[ZONE_STATE]["changes"]["zone"] == {"old": None, "new": "mqtt-edge"}
        assert "mqtt-edge" not in h.run(["firewall-cmd", "--permanent", "--get-zones"]).stdout.split()

        done = changed(apply(host, pillar))
        assert done[ZONE_STATE]["changes"]["zone"] == {"old": None, "new": "mqtt-edge"}
        want = (["5683/udp", "8883/tcp", "9234/tcp"], [])
        assert zone(h, "mqtt-edge", permanent=True) == want
        assert zone(h, "mqtt-edge") == want
        assert changed(apply(host, pillar)) == {}
    finally:
        h.run(["firewall-cmd", "--permanent", "--delete-zone=mqtt-edge"], check=False)
        h.run(["firewall-cmd", "--reload"], check=False)


# --- a zone shared with others: firewall:mode, the record, clean ------------

RECORD = "/var/lib/mosquitto-formula/firewall.json"
CLEAN_STATE = "mosquitto-clean-configure-firewall-ports-absent"
RULE = 'rule family="ipv4" source address="10.9.0.0/16" port port="5000" protocol="tcp" accept'
SHARED = "pillar=" + json.dumps({"mosquitto": {"firewall": {"mode": "shared"}}})


def rich_rules(h, permanent=False):
    scope = ["--permanent"] if permanent else []
    return [r for r in h.run(["firewall-cmd", *scope, "--zone=public", "--list-rich-rules"]).stdout.splitlines() if r]


def openings(h, permanent=False):
    """Everything the zone opens: (ports, services, rich rules)."""
    return (*zone(h, permanent=permanent), rich_rules(h, permanent))


def share_the_zone(h, ports=()):
    """Others' openings in the permanent zone (the distribution's dhcpv6-client,
    cockpit, an operator's port and rich rule), then a reload."""
    fwc = ["firewall-cmd", "--permanent", "--zone=public"]
    h.run([*fwc, "--add-service=dhcpv6-client", "--add-service=cockpit"])
    h.run([*fwc, "--add-port=5353/udp", *[f"--add-port={p}" for p in ports]])
    h.run([*fwc, f"--add-rich-rule={RULE}"])
    h.run(["firewall-cmd", "--reload"])


def clean(host, *args):
    """Only clean.sls's firewall state (the rest would purge the broker)."""
    fleet, h = host
    return fleet.salt("state.sls_id", CLEAN_STATE, "mosquitto.clean", *args,
                      tgt=h.name, timeout=300, check=True)[h.name]


def state_of(ret, sid):
    return next(v for v in ret.values() if v["__id__"] == sid)


def test_exclusive_mode_plans_then_prunes_others_openings(host):
    _, h = host
    share_the_zone(h)
    before = openings(h, permanent=True)
    assert before == (["5353/udp", "8883/tcp", "9234/tcp"], ["cockpit", "dhcpv6-client", "ssh"], [RULE])

    planned = changed(apply(host, "test=True"))
    assert set(planned) == {ZONE_STATE}
    assert planned[ZONE_STATE]["comment"] == (
        f"Zone public: would add nothing; would remove cockpit, dhcpv6-client, 5353/udp, {RULE} "
        "(permanent, then reload)")
    assert planned[ZONE_STATE]["changes"] == {
        "ports": {"old": before[0], "new": WANTED[0]},
        "services": {"old": before[1], "new": WANTED[1]},
        "rich_rules": {"old": [RULE], "new": []}}
    assert openings(h, permanent=True) == before and openings(h) == before  # test=True touched nothing

    done = changed(apply(host))
    assert set(done) == {ZONE_STATE} and done[ZONE_STATE]["result"] is True
    assert openings(h, permanent=True) == (*WANTED, []) and openings(h) == (*WANTED, [])
    assert changed(apply(host)) == {}


def test_shared_mode_adds_only_its_own_and_clean_removes_only_those(host):
    _, h = host
    # A zone the formula never saw: no record, 8883 already opened by the
    # operator (for another broker), 9234 not open, others' openings in it.
    h.run(["rm", "-f", RECORD])
    h.run(["firewall-cmd", "--permanent", "--zone=public", "--remove-port=9234/tcp"])
    share_the_zone(h)
    before = openings(h, permanent=True)
    assert before == (["5353/udp", "8883/tcp"], ["cockpit", "dhcpv6-client", "ssh"], [RULE])

    planned = changed(apply(host, SHARED, "test=True"))
    assert set(planned) == {ZONE_STATE, DRIFT_STATE}
    assert planned[ZONE_STATE]["comment"] == ("Zone public: would add 9234/tcp; would remove nothing "
                                              "(permanent and runtime)")
    assert planned[ZONE_STATE]["changes"] == {
        "ports": {"old": ["5353/udp", "8883/tcp"], "new": ["5353/udp", "8883/tcp", "9234/tcp"]}}
    assert planned[DRIFT_STATE]["changes"] == {"runtime": {"added": ["9234/tcp"]}}
    assert openings(h, permanent=True) == before and openings(h) == before

    done = changed(apply(host, SHARED))
    assert set(done) == {ZONE_STATE} and done[ZONE_STATE]["result"] is True
    after = (["5353/udp", "8883/tcp", "9234/tcp"], ["cockpit", "dhcpv6-client", "ssh"], [RULE])
    assert openings(h, permanent=True) == after and openings(h) == after
    assert json.loads(h.run(["cat", RECORD]).stdout) == {"public": {"ports": ["9234/tcp"], "services": []}}
    assert changed(apply(host, SHARED)) == {}

    planned = state_of(clean(host, SHARED, "test=True"), CLEAN_STATE)
    assert planned["result"] is None and planned["changes"] == {"removed": ["9234/tcp"]}
    assert openings(h, permanent=True) == after and openings(h) == after
    cleaned = state_of(clean(host, SHARED), CLEAN_STATE)
    assert cleaned["result"] is True and cleaned["changes"] == {"removed": ["9234/tcp"]}
    # The operator's 8883 and everyone else's openings stay; so does the
    # record's absence: a second clean has nothing to do.
    assert openings(h, permanent=True) == before and openings(h) == before
    assert h.run(["test", "-e", RECORD], check=False).returncode != 0
    assert state_of(clean(host, SHARED), CLEAN_STATE)["changes"] == {}
