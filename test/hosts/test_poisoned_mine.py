"""Issue #20 end to end: a spoke's mine entry is another host's data.

The 3-host cluster of test_cluster.py (same hosts, same pillar), converged
once; then spoke-a publishes, under its own authenticated id, a
well-formed entry whose $7$ hash asks for 999,999,999 PBKDF2 rounds (a
broker would spend minutes per login of that user, on its one thread).
The hub applies: it converges, leaves that bridge user out, names the
minion in a WARNING, writes the poison into no file, and still adds and
revokes another user. Finally spoke-a publishes its real identity again and
the cluster converges back.

How the entry is poisoned: the mine keeps whatever the named function
returned on the minion (salt/modules/mine.py: ``mine.send NAME
mine_function=FUN ARGS`` stores FUN(ARGS) under NAME), so spoke-a puts the
entry in a grain and sends ``grains.get`` of it as
``mosquitto_cluster_spoke``. The master keys it by spoke-a's id, as it
would a compromised spoke's.

NOT RUN when written (the hosts tier cannot run on the machine it was
written on); written against test/support/fleet.py and test_cluster.py.
"""
import base64
import json
import time

import pytest

from scripts.saltlocal import changed
from test.support.cluster import HUB, PASSWORD, SPOKE_A, SPOKE_B, pillar_sls, start_fleet

pytestmark = pytest.mark.hosts

MINE_SPOKE = "mosquitto_cluster_spoke"
POISON = (f"$7$999999999${base64.b64encode(bytes(range(12))).decode()}"
          f"${base64.b64encode(bytes(range(64))).decode()}")
PASSWD, ACL, MINION_LOG = "/etc/mosquitto/passwd", "/etc/mosquitto/acl", "/var/log/salt/minion"


@pytest.fixture(scope="module")
def fleet(fleet_factory, fleet_pillar_dir):
    return start_fleet(fleet_factory, fleet_pillar_dir)


@pytest.fixture(scope="module")
def converged(fleet):
    fleet.salt("state.apply", "mosquitto", "sync_mods=all", timeout=900, check=True)
    assert f"bridge.{SPOKE_A}:$7$" in fleet[HUB].path(PASSWD).read_text()
    return fleet


@pytest.fixture(scope="module")
def poisoned(converged):
    """spoke-a's mine entry: right names, absurd iteration count."""
    fleet = converged
    spoke = fleet[SPOKE_A]
    entry = {"username": f"bridge.{SPOKE_A}", "clientid": f"{SPOKE_A}.cluster", "password_hash": POISON}
    assert spoke.salt_call("grains.setval", "mosquitto_poison", json.dumps(entry))
    assert spoke.salt_call("mine.send", MINE_SPOKE, "mine_function=grains.get", "mosquitto_poison") is True
    seen = fleet.salt("mine.get", SPOKE_A, MINE_SPOKE, tgt=HUB)[HUB][SPOKE_A]
    assert seen["password_hash"] == POISON  # the hub really reads the poison
    log_start = len(fleet[HUB].path(MINION_LOG).read_text())
    yield fleet, log_start
    # Back to the real identity: the spoke's own apply publishes it again.
    spoke.salt_call("grains.delkey", "mosquitto_poison", "force=True", check=False)
    fleet.salt("state.apply", "mosquitto", tgt=SPOKE_A, timeout=600, check=True)
    fleet.salt("state.apply", "mosquitto", tgt=HUB, timeout=600, check=True)


def hub_files(fleet):
    return fleet[HUB].path(PASSWD).read_text(), fleet[HUB].path(ACL).read_text()


def test_the_hub_converges_without_the_poisoned_spoke(poisoned):
    fleet, log_start = poisoned
    t0 = time.monotonic()
    ret = fleet.salt("state.apply", "mosquitto", tgt=HUB, timeout=600, check=True)[HUB]
    assert time.monotonic() - t0 < 300  # no PBKDF2 with the poisoned count ran
    users = ret["mosquitto_passwd_|-mosquitto-configure-users-passwd-managed_|-"
                f"{PASSWD}_|-managed"]
    assert users["result"] is True and users["changes"].get("removed") == [f"bridge.{SPOKE_A}"]
    passwd, acl = hub_files(fleet)
    assert f"bridge.{SPOKE_A}:" not in passwd and f"user bridge.{SPOKE_A}\n" not in acl
    assert f"bridge.{SPOKE_B}:$7$" in passwd and f"user bridge.{SPOKE_B}\n" in acl  # the other spoke stays
    assert "alice:$7$" in passwd
    # The poison reaches no file on the hub.
    hits = fleet[HUB].run(["grep", "-rlF", "999999999", "/etc/mosquitto", "/var/lib/mosquitto"], check=False)
    assert hits.stdout == "", hits.stdout
    assert POISON not in json.dumps(ret)
    # The hub's minion log names the minion and what is wrong, never the hash.
    log = fleet[HUB].path(MINION_LOG).read_text()[log_start:]
    warning = [line for line in log.splitlines() if "[WARNING" in line and f"'{SPOKE_A}'" in line]
    assert any(f"skipped mine entry {MINE_SPOKE} of minion '{SPOKE_A}'" in line
               and "iteration count" in line for line in warning), log[-3000:]
    assert POISON.split("$")[3] not in log and POISON.split("$")[4] not in log


def test_the_hub_still_adds_and_revokes_users(poisoned, fleet_pillar_dir):
    fleet, _ = poisoned
    bob = f"    bob:\n      password: {json.dumps(PASSWORD + '-bob')}"
    (fleet_pillar_dir / "mosquitto.sls").write_text(pillar_sls(bob))
    try:
        ret = fleet.salt("state.apply", "mosquitto", tgt=HUB, timeout=600, check=True)[HUB]
        assert "mosquitto-configure-users-passwd-managed" in changed(ret)
        assert "bob:$7$" in hub_files(fleet)[0]
    finally:
        (fleet_pillar_dir / "mosquitto.sls").write_text(pillar_sls())
    ret = fleet.salt("state.apply", "mosquitto", tgt=HUB, timeout=600, check=True)[HUB]
    passwd, _ = hub_files(fleet)
    assert "bob:" not in passwd and "alice:$7$" in passwd and f"bridge.{SPOKE_A}:" not in passwd
    assert "999999999" not in passwd


def test_the_hub_refuses_an_accept_for_the_poisoned_spoke(poisoned):
    fleet, _ = poisoned
    answer = fleet[SPOKE_A].salt_call("publish.publish", HUB, "mosquitto_cluster.accept", "timeout=300")
    assert str(answer.get(HUB, "")).startswith(f"refused: no bridge identity of {SPOKE_A}"), answer
    assert "999999999" not in json.dumps(answer)
