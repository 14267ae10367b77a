"""Debian 13 (trixie, mosquitto 2.0.21) hosts in a mixed cluster with a
Debian 12 (bookworm, 2.0.11) spoke: what differs by platform, on one fleet.

hub13.test (trixie) keeps the CA and is the hub; spoke13.test (trixie) and
spoke12.test (bookworm) bridge to it; firewalld runs on all three. One
`salt '*' state.apply mosquitto` from the master converges the mixed fleet,
a rerun changes nothing. Then, on the release that has it, what the formula
gates or works around because of 2.0.11:

- QoS 2 on a bridge (refused below 2.0.15): the pillar adds a QoS 2 topic
  on the trixie hosts; the same line on the bookworm spoke is refused,
  naming the key and the version; on trixie nothing of a QoS 2 stream is
  lost or duplicated across two hub restarts.
- the spoke's own state 0 (#2467, fixed in 2.0.15): with the hub cut off,
  the trixie spoke publishes 0 itself; what the bookworm spoke does is
  printed beside it.
- max_connections counted by the broker itself (#1460 on 2.0.11): with the
  open-files cap lifted, 2.0.21 accepts exactly N, twice in a row; the
  bookworm spoke's count is printed beside it.
- durability across `kill -9` and the renewal job, on trixie, and delivery
  across releases (trixie spoke -> hub -> bookworm spoke).

The 10,000-client capacity test and the outage/partition/orchestrate tests
stay bookworm-only (test_capacity.py, test_cluster.py): see README, "What
runs where". Tests run in file order on one module-scoped fleet.
"""
import json
import os
import re
import secrets
import sys
import time

import pytest

from scripts.saltlocal import changed
from test.support import fleet as fleetmod
from test.support.cluster import (
    KEEPALIVE,
    PASSWORD,
    REPO,
    Lines,
    finish,
    main_pid,
    metrics,
    pub_lines,
    sub,
    wait_for,
)

pytestmark = pytest.mark.hosts

HUB, SPOKE13, SPOKE12 = "hub13.test", "spoke13.test", "spoke12.test"
HOSTS = [HUB, SPOKE13, SPOKE12]
SUITES = {HUB: "trixie", SPOKE13: "trixie", SPOKE12: "bookworm"}
VERSIONS = {"trixie": "2.0.21", "bookworm": "2.0.11"}
LOG = "/var/log/mosquitto/mosquitto.log"
CA = "/etc/mosquitto/certs/ca.crt"


def pillar_sls(qos2_on_bookworm=False):
    """The cluster pillar; the QoS 2 topic only where the broker has it,
    chosen per minion by its release (Jinja on the master)."""
    qos2 = "true" if qos2_on_bookworm else "grains['oscodename'] != 'bookworm'"
    return f"""\
mosquitto:
  domain: {{{{ grains['id'] }}}}
  users:
    alice:
      password: {json.dumps(PASSWORD)}
      acl:
        - 'readwrite #'
        - 'read $SYS/broker/connection/#'
  firewall:
    enabled: true
    zone: public
  config:
    sys_interval: 1
  tls:
    ca_server: "{{{{ '' if grains['id'] == '{HUB}' else '{HUB}' }}}}"
  cluster:
    hub: {HUB}
    members: '*.test'
    topics:
      - fleet/# both 1
{{%- if {qos2} %}}
      - q2/# both 2
{{%- endif %}}
    keepalive_interval: {KEEPALIVE}
    restart_timeout: 2
"""


@pytest.fixture(scope="module")
def fleet(fleet_factory, fleet_pillar_dir):
    (fleet_pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
    (fleet_pillar_dir / "mosquitto.sls").write_text(pillar_sls())
    t0 = time.monotonic()
    fleet = fleet_factory(HOSTS, suites=SUITES)
    print(f"\nmixed fleet booted in {time.monotonic() - t0:.1f} s: {fleet.timings}")
    yield fleet
    for name in ("top.sls", "mosquitto.sls"):
        (fleet_pillar_dir / name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def applied(fleet, tmp_path_factory):
    t0 = time.monotonic()
    rets = fleet.salt("state.apply", "mosquitto", "sync_mods=all", timeout=900, check=True)
    took = round(time.monotonic() - t0, 1)
    ca = tmp_path_factory.mktemp("ca13") / "ca.crt"
    ca.write_text(fleet[HUB].path(CA).read_text())
    print(f"\nmixed fleet first apply: {took} s")
    return {"rets": rets, "ca": ca}


def state_series(spoke):
    return f'broker_connection_state{{connection="{spoke}.cluster"}}'


def wait_bridges_up(fleet, timeout=120):
    wait_for(lambda: all(metrics(fleet, HUB).get(state_series(s)) == 1 for s in (SPOKE13, SPOKE12)),
             "both bridges' state 1 on the hub", timeout)


# ------------------------------------------------------------------ converge


def test_trixie_hosts_are_as_bare_as_bookworms(fleet):
    """Before the apply: no procps, curl or compiler (the wheel build's gcc
    stayed in its throwaway overlay), none of the formula's packages
    installed, their .debs cached for the offline apply."""
    for host in (HUB, SPOKE13):
        h = fleet[host]
        assert h.run(["cat", "/etc/debian_version"]).stdout.startswith("13."), host
        for tool in ("/bin/kill", "/usr/bin/ps", "/usr/sbin/sysctl", "/usr/bin/curl", "/usr/bin/gcc"):
            assert not h.path(tool).exists(), (host, tool)
        for pkg in ("procps", "curl", "gcc", "python3-dev",
                    *(p for p in fleetmod.FORMULA_PACKAGES if p != "ca-certificates")):
            status = h.run(["dpkg-query", "-W", "-f=${Status}", pkg], check=False).stdout
            assert "install ok installed" not in status, (host, pkg, status)
        for pkg in fleetmod.FORMULA_PACKAGES:
            assert list(h.path("/var/cache/apt/archives").glob(f"{pkg}_*.deb")), (host, pkg)


def test_mixed_fleet_converges_and_bridges(fleet, applied):
    assert set(applied["rets"]) == set(HOSTS)
    for host, suite in SUITES.items():
        h = fleet[host]
        release = {"trixie": "Debian-13", "bookworm": "Debian-12"}[suite]
        assert fleet.salt("grains.get", "osfinger", tgt=host)[host] == release
        version = h.run(["dpkg-query", "-W", "-f", "${Version}", "mosquitto"]).stdout
        assert version.startswith(VERSIONS[suite] + "-"), (host, version)
        for unit in ("mosquitto", "mosquitto-exporter", "firewalld"):
            assert h.run(["systemctl", "is-active", unit]).stdout.strip() == "active", (host, unit)
    # From 2.0.16 the broker warns on stderr (the journal) about a password
    # or ACL file others can read, or that its own user does not own.
    for host in (HUB, SPOKE13):
        assert "mosquitto version 2.0.21" in fleet[host].path(LOG).read_text()
        warned = [x for x in fleet[host].journal("mosquitto", 400).splitlines() if "Warning: File" in x]
        print(f"\n{host} file warnings: {warned}")
        assert not any("world readable" in x for x in warned), warned
    q2 = "topic q2/# both 2"
    assert q2 in fleet[SPOKE13].path("/etc/mosquitto/bridges.d/cluster.conf").read_text()
    assert q2 not in fleet[SPOKE12].path("/etc/mosquitto/bridges.d/cluster.conf").read_text()
    wait_bridges_up(fleet)


def test_rerun_changes_nothing(fleet, applied):
    t0 = time.monotonic()
    rets = fleet.salt("state.apply", "mosquitto", timeout=600, check=True)
    for host in HOSTS:
        assert changed(rets[host]) == {}, (host, changed(rets[host]))
    print(f"\nmixed fleet rerun: {time.monotonic() - t0:.1f} s, no changes")


def test_firewall_has_exactly_mqtts_and_exporter_on_both_releases(fleet, applied):
    for h in fleet:
        for scope in ([], ["--permanent"]):
            ports = h.run(["firewall-cmd", *scope, "--zone=public", "--list-ports"]).stdout.split()
            services = h.run(["firewall-cmd", *scope, "--zone=public", "--list-services"]).stdout.split()
            assert sorted(ports) == ["8883/tcp", "9234/tcp"], (h.name, scope, ports)
            assert services == ["ssh"], (h.name, scope, services)
    # From the client: the plain listener is filtered on trixie's firewalld
    # 2.3 too, TLS and the exporter answer.
    h = fleet[HUB]
    assert fleet.client.tcp_open(h.ip, 8883) and fleet.client.tcp_open(h.ip, 9234)
    assert not fleet.client.tcp_open(h.ip, 1883)
    print("\nfirewalld:", {x.name: x.run(["firewall-cmd", "--version"]).stdout.strip() for x in fleet})


# ------------------------------------------------------------------ QoS 2


def test_qos2_bridge_topic_is_refused_on_2_0_11_only(fleet, applied, fleet_pillar_dir):
    """The version gate, per minion: the same pillar line with QoS 2 is
    refused on the bookworm spoke (naming the key and the version it
    found), nothing there changes."""
    (fleet_pillar_dir / "mosquitto.sls").write_text(pillar_sls(qos2_on_bookworm=True))
    conf = fleet[SPOKE12].path("/etc/mosquitto/bridges.d/cluster.conf").read_text()
    try:
        ret = fleet.salt("state.apply", "mosquitto", tgt=SPOKE12, timeout=600)[SPOKE12]
    finally:
        (fleet_pillar_dir / "mosquitto.sls").write_text(pillar_sls())
    text = json.dumps(ret)
    assert isinstance(ret, list), ret  # a render error, no state ran
    assert "cluster:topics:1" in text and "QoS 2" in text and "2.0.11" in text, text
    assert fleet[SPOKE12].path("/etc/mosquitto/bridges.d/cluster.conf").read_text() == conf


@pytest.mark.xfail(strict=True, reason=(
    "measured on 2.0.21 (2026-12-06): 256 of 600 delivered, 344 lost, 0 duplicates; not yet "
    "known whether the bridge or the offline QoS 2 session across hub restarts loses them: "
    "see README, What mosquitto 2.0.21 does"))
def test_qos2_stream_across_two_hub_restarts_arrives_exactly_once(fleet, applied):
    """QoS 2 from a client on the trixie spoke, over its QoS 2 bridge line,
    to a persistent QoS 2 subscriber on the hub, the hub restarted twice
    mid-stream (2.0.11 lost 690-1,068 of 3,000 that way: BRIDGES.md).
    Stays under max_queued_messages (1000) for the offline subscriber."""
    wait_bridges_up(fleet)
    ca, run, n, chunk = applied["ca"], secrets.token_hex(4), 600, 100
    topic, client_id = f"q2/{run}", f"q2-{run}"
    finish(sub(fleet, ca, HUB, f"{topic}/#", 0, client_id=client_id, timeout=30, qos=2))
    for start in range(0, n, chunk):
        pub_lines(fleet, ca, SPOKE13, f"{topic}/x", [f"m{i}" for i in range(start, start + chunk)], qos=2)
        if start // chunk in (1, 3):  # right behind the 2nd and 4th chunk
            fleet[HUB].run("systemctl restart mosquitto")
    wait_bridges_up(fleet)
    proc = sub(fleet, ca, HUB, f"{topic}/#", n + 1, client_id=client_id, timeout=30, qos=2, show_qos=True)
    got, err = finish(proc)
    want = [f"q2 {topic}/x m{i}" for i in range(n)]
    missing = sorted(set(want) - set(got))
    dups = len(got) - len(set(got))
    print(f"\nQoS 2 over the bridge, 2 hub restarts: {len(set(got) & set(want))} of {n} delivered, "
          f"{len(missing)} lost, {dups} duplicates")
    assert not missing, (missing[:5], err)
    assert sorted(got) == sorted(want), (dups, sorted(set(got) - set(want))[:5])


# ------------------------------------------------------------------ state 0


def test_the_trixie_spoke_publishes_its_own_0_state(fleet, applied):
    """The hub cut off (its link down): 2.0.21's spoke publishes state 0
    for its own bridge; 2.0.11's may never do (#2467): printed, not
    asserted."""
    wait_bridges_up(fleet)
    ca = applied["ca"]
    watch = {s: Lines(sub(fleet, ca, s, f"$SYS/broker/connection/{s}.cluster/state", 100, timeout=120,
                          stamp=True)) for s in (SPOKE13, SPOKE12)}
    state = r"^([0-9.]+) \$SYS/broker/connection/\S+/state "
    try:
        wait_for(lambda: all(w.find(state + "1$") for w in watch.values()), "both spokes' own state 1", 30)
        t_cut = time.time()
        fleet[HUB].run("ip link set host0 down")
        try:
            zero = wait_for(lambda: watch[SPOKE13].find(state + "0$"), "spoke13's own state 0",
                            timeout=3 * KEEPALIVE + 15)
            time.sleep(5)
            other = watch[SPOKE12].find(state + "0$")
            print(f"\nhub cut off: spoke13 (2.0.21) state 0 after {float(zero.group(1)) - t_cut:.1f} s; "
                  f"spoke12 (2.0.11): " + (f"0 after {float(other.group(1)) - t_cut:.1f} s" if other
                                           else f"no 0 in {time.time() - t_cut:.0f} s"))
        finally:
            fleet[HUB].run(f"ip link set host0 up && ip addr replace {fleet[HUB].ip}/24 dev host0", check=False)
    finally:
        for w in watch.values():
            w.proc.kill()  # our own subscribers, by their Popen
            w.proc.wait(timeout=30)
    wait_bridges_up(fleet)


# ------------------------------------------------------------------ max_connections


def load_round(fleet, ca, host, tries, prefix):
    """test/support/mqtt_load.py from the client: tries clients, held 3 s,
    then all disconnected; returns its 'connected' event."""
    env = dict(os.environ, MQTT_LOAD_PASSWORD=PASSWORD, PYTHONPATH=str(REPO))
    res = fleet.client.run([sys.executable, "-m", "test.support.mqtt_load", "--host", host, "--port", "8883",
                            "--cafile", str(ca), "--user", "alice", "--count", str(tries), "--hold", "3",
                            "--prefix", prefix, "--deadline", "120"], env=env, cwd=REPO, timeout=240)
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    return next(e for e in events if e["event"] == "connected")


def test_max_connections_is_enforced_by_2_0_21_itself(fleet, applied):
    """max_connections 20 written by hand, the open-files limit left at the
    formula's default (the host's hard limit, 20000: no cap near 20): two
    rounds of 50 clients, the second after the first one's disconnects.
    2.0.21 accepts exactly 20 both times, its own count no longer drifts
    (#1460); 2.0.11's figures are printed beside it. The apply at the end
    puts the formula's config back."""
    limit, tries, ca = 20, 50, applied["ca"]
    seen = {}
    try:
        for host in (SPOKE13, SPOKE12):
            h = fleet[host]
            h.run(["sed", "-i", f"s/^max_connections .*/max_connections {limit}/", "/etc/mosquitto/mosquitto.conf"])
            h.run("systemctl restart mosquitto")
            nofile = h.run(["cat", f"/proc/{main_pid(h)}/limits"]).stdout
            soft = int(re.search(r"^Max open files\s+([0-9]+)\s", nofile, re.M).group(1))
            assert soft > 10 * tries, nofile
            seen[host] = [load_round(fleet, ca, host, tries, f"mc{n}") for n in range(2)]
    finally:
        rets = fleet.salt("state.apply", "mosquitto", tgt=f"{SPOKE13},{SPOKE12}", tgt_type="list",
                          timeout=600, check=True)
    print(f"\nmax_connections {limit}, open files {soft}, {tries} clients twice: accepted "
          + ", ".join(f"{h} {[r['accepted'] for r in rounds]}" for h, rounds in seen.items()))
    for r in seen[SPOKE13]:
        assert r["accepted"] == limit and r["closed"] == tries - limit, r
        assert r["timeout"] == r["error"] == r["rejected"] == 0, r
    for host in (SPOKE13, SPOKE12):  # the formula put its config back
        assert changed(rets[host]), host
        assert f"max_connections {limit}\n" not in fleet[host].path("/etc/mosquitto/mosquitto.conf").read_text()
    wait_bridges_up(fleet)


# ------------------------------------------------------------------ durability, renewal


def test_trixie_spoke_killed_holding_a_backlog_delivers_to_the_bookworm_spoke(fleet, applied):
    """Hub down, 300 QoS 1 messages queued on spoke13's bridge, two
    autosaves, `kill -9` of spoke13's broker; systemd restarts it from
    its persistence file, the hub comes back, and spoke12's persistent
    subscriber (2.0.11, across the mixed cluster) gets every message."""
    wait_bridges_up(fleet)
    ca, run, n = applied["ca"], secrets.token_hex(4), 300
    topic, client_id = f"fleet/k13/{run}", f"k13-{run}"
    finish(sub(fleet, ca, SPOKE12, f"{topic}/#", 0, client_id=client_id, timeout=30))
    spoke = fleet[SPOKE13]
    db = spoke.path("/var/lib/mosquitto/mosquitto.db")
    fleet[HUB].run("systemctl stop mosquitto")
    try:
        pub_lines(fleet, ca, SPOKE13, f"{topic}/x", [f"m{i}" for i in range(n)])
        acked, saves = time.time(), []

        def saved_twice():
            mtime = db.stat().st_mtime
            if mtime > acked and mtime not in saves:
                saves.append(mtime)
            return len(saves) >= 2
        wait_for(saved_twice, "two autosaves of spoke13 after the last ack", timeout=30, interval=0.2)
        pid = main_pid(spoke)
        spoke.run(f"kill -9 {pid}")
        wait_for(lambda: spoke.run(["systemctl", "is-active", "mosquitto"], check=False).stdout.strip() == "active"
                 and main_pid(spoke) not in (0, pid), "spoke13's broker restarted by systemd", timeout=60)
    finally:
        fleet[HUB].run("systemctl start mosquitto")
    wait_bridges_up(fleet)
    want = {f"{topic}/x m{i}" for i in range(n)}
    proc = sub(fleet, ca, SPOKE12, f"{topic}/#", 10 * n, client_id=client_id, timeout=150)
    lines = Lines(proc)
    try:
        wait_for(lambda: want <= set(lines.lines), f"all {n} at spoke12", timeout=120)
        time.sleep(3)  # duplicates, if any, are counted
    finally:
        proc.kill()
        proc.wait(timeout=30)
    got = list(lines.lines)
    assert set(got) == want, sorted(set(got) - want)[:5]
    print(f"\ntrixie spoke killed with a {n}-message backlog: all {n} at the bookworm spoke, "
          f"{len(got) - n} duplicates")


def test_renewal_job_renews_on_trixie_with_a_reload(fleet, applied):
    """The daily schedule entry, run now on the trixie hub (the CA host):
    a 10-day certificate is renewed, the broker reloads (same PID) and
    serves it; the bridges stay up."""
    h, cert = fleet[HUB], "/etc/mosquitto/certs/server.crt"
    fleet.salt("mosquitto_ca.issue_cert", cert, "/etc/mosquitto/certs/server.key", f"ca_cert_path={CA}",
               "ca_key_path=/etc/mosquitto/ca/ca.key", f"common_name={HUB}", "days_valid=10",
               tgt=HUB, timeout=60, check=True)
    h.run(["systemctl", "reload", "mosquitto"])
    pid = main_pid(h)

    def days_left():
        return fleet.salt("mosquitto_ca.cert_info", cert, tgt=HUB, timeout=60, check=True)[HUB]["days_remaining"]
    assert days_left() < 30
    fleet.salt("schedule.run_job", "mosquitto-tls-renew", tgt=HUB, timeout=60, check=True)
    wait_for(lambda: days_left() > 800, "the renewed certificate", timeout=180, interval=2)
    assert main_pid(h) == pid
    served = h.run(["sh", "-c", f"openssl s_client -connect 127.0.0.1:8883 -servername {HUB} "
                               f"-CAfile {CA} </dev/null 2>/dev/null | openssl x509 -noout -enddate"]).stdout
    on_disk = h.run(["openssl", "x509", "-noout", "-enddate", "-in", cert]).stdout
    assert served.strip() == on_disk.strip() != ""
    wait_bridges_up(fleet)
