"""Salt 3006 LTS and 3007, from PyPI as 3008 is: the versions FORMULA claims.

One bare host per release (booted together, no 3008 minion on them):
3006.29 on Debian 12 (Python 3.11), 3007.16 on Debian 13 (Python 3.13).
A salt-master of that release on 198.18.0.1 (own ports, this machine's
Python 3.11) and its minion on the host (/opt/salt-<release>, wheels for
the host's Python) run the first `state.apply mosquitto` and a rerun that
changes nothing; then masterless `salt-call --local` of the same release
on the same host, same pillar, changes nothing either. tls:auto_renew is
off here: under a master it is a schedule entry, masterless a cron job
(the cron package is not in the hosts' apt cache); test_fleet.py covers
both with 3008.

Releases: the newest of each line that installs from the index here
(3006.30 needs a newer certifi than the index serves: FACTS.md).
"""
import json
import secrets
import time

import pytest

from scripts.saltlocal import changed
from test.support import fleet as fleetmod
from test.support import salt_release
from test.support.parallel import each

pytestmark = pytest.mark.hosts

RELEASES = {f"salt{v.split('.')[0]}.test": v for v in salt_release.TESTED}
SUITES = {host: salt_release.TESTED[v] for host, v in RELEASES.items()}
PASSWORD = "rel-" + secrets.token_urlsafe(12)


def pillar_text(host):
    return json.dumps({"mosquitto": {
        "domain": host,
        "users": {"alice": {"password": PASSWORD}},
        "firewall": {"enabled": True, "zone": "public"},
        "tls": {"auto_renew": False},
    }})


@pytest.fixture(scope="module")
def hosts(fleet_lab):
    """The hosts, each with its release installed (in parallel)."""
    fleet = fleetmod.Fleet(fleet_lab, list(RELEASES), master=None, suites=SUITES)
    try:
        t0 = time.monotonic()
        fleet.start()
        each(lambda h: salt_release.install_on_host(h, RELEASES[h.name]), list(fleet))
        print(f"\nsalt release hosts booted and installed in {time.monotonic() - t0:.1f} s")
        yield fleet
    finally:
        fleet.teardown()


@pytest.fixture(scope="module", params=sorted(RELEASES))
def release(request, hosts, fleet_lab):
    name = request.param
    version = RELEASES[name]
    master = salt_release.ReleaseMaster(fleet_lab, version)
    try:
        (master.dir / "pillar").mkdir(parents=True, exist_ok=True)
        (master.dir / "pillar/top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
        (master.dir / "pillar/mosquitto.sls").write_text(pillar_text(name))
        master.start()
        salt_release.start_minion(hosts[name], master)
        yield {"host": hosts[name], "master": master, "version": version}
    finally:
        salt_release.stop_minion(hosts[name], version)
        master.stop()


def test_master_first_apply_rerun_and_masterless_rerun(release):
    h, master, version = release["host"], release["master"], release["version"]
    got = master.salt("test.version", tgt=h.name, timeout=30)[h.name]
    assert got == version, got
    grains = master.salt("grains.item", "osfinger", "pythonversion", tgt=h.name, timeout=30)[h.name]
    assert grains["osfinger"] == {"bookworm": "Debian-12", "trixie": "Debian-13"}[h.suite], grains
    t0 = time.monotonic()
    ret = master.salt("state.apply", "mosquitto", "sync_mods=all", tgt=h.name)[h.name]
    first = time.monotonic() - t0
    assert isinstance(ret, dict), ret
    failed = {k: v.get("comment") for k, v in ret.items() if v.get("result") is not True}
    assert not failed, failed
    assert "mosquitto-configure-tls-server-cert-managed" in changed(ret)
    for unit in ("mosquitto", "mosquitto-exporter", "firewalld"):
        assert h.run(["systemctl", "is-active", unit]).stdout.strip() == "active", unit

    ret = master.salt("state.apply", "mosquitto", tgt=h.name)[h.name]
    assert changed(ret) == {}, changed(ret)

    salt_release.copy_formula(h, pillar_text(h.name))
    ret = salt_release.salt_call_local(h, version, "state.apply", "mosquitto", "sync_mods=all")
    assert changed(ret) == {}, changed(ret)
    print(f"\nsalt {version} on {grains['osfinger']} (Python {grains['pythonversion'][:3]}): first apply from its "
          f"master {first:.1f} s; rerun and masterless rerun: no changes")
