"""`salt '*' state.apply mosquitto` from a real master on two systemd hosts.

mqtt1.test keeps the fleet's CA (tls:ca_server ''); mqtt2.test has none of
its own and gets its certificate signed by mqtt1 through Salt's peer
publish. Both run firewalld (firewall:enabled true). A client in its own
network namespace (198.18.0.100) talks to them by name.

Tests run in file order on one module-scoped fleet.
"""
import datetime
import json
import pathlib
import secrets
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
from cryptography import x509

from test.support import fleet as fleetmod
from test.support.zone import assert_only_wanted

pytestmark = pytest.mark.hosts

HOSTS = ["mqtt1.test", "mqtt2.test"]
CA_HOST = "mqtt1.test"
CA = "/etc/mosquitto/certs/ca.crt"
REPO = pathlib.Path(__file__).resolve().parents[2]
PASSWORD = "fleet-" + secrets.token_urlsafe(12)



@pytest.fixture(scope="module")
def fleet(fleet_factory, fleet_master, fleet_pillar_dir):
    (fleet_pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
    (fleet_pillar_dir / "mosquitto.sls").write_text(
        fleetmod.fleet_pillar_sls(PASSWORD, CA_HOST, users=("alice", "bridge")))
    # The highstate top file shown in the README.
    state_root = pathlib.Path(fleet_master.state_tree.base.write_path)
    (state_root / "top.sls").write_text((REPO / "test/salt/top.sls").read_text())
    fleet = fleet_factory(HOSTS)
    yield fleet
    (state_root / "top.sls").unlink(missing_ok=True)


def states_of(ret):
    assert isinstance(ret, dict), ret
    return ret


def changed(ret):
    return {k.split("_|-")[1]: v["changes"] for k, v in states_of(ret).items()
            if v.get("changes") or v.get("result") is None}


@pytest.fixture(scope="module")
def applied(fleet):
    # Both hosts at once, as an operator would.
    rets = fleet.salt("state.apply", "mosquitto", "sync_mods=all", timeout=900, check=True)
    assert set(rets) == set(HOSTS)
    return rets


def test_first_apply_converges_both_hosts(applied):
    for host, ret in applied.items():
        assert all(v["result"] is True for v in ret.values()), host
        assert "mosquitto-configure-tls-server-cert-managed" in changed(ret)


def test_second_apply_and_highstate_and_test_mode_change_nothing(fleet, applied):
    for args in (("state.apply", "mosquitto"), ("state.highstate",), ("state.apply", "mosquitto", "test=True")):
        rets = fleet.salt(*args, timeout=600, check=True)
        for host in HOSTS:
            assert changed(rets[host]) == {}, (args, host, changed(rets[host]))


def _pem_body_lines(path):
    return [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]


def test_master_job_cache_holds_no_secret(fleet, fleet_master, applied):
    """After the applies above and `salt '*' state.show_sls mosquitto`, no
    pillar password, generated exporter password or private key line is in
    the master's job cache (arguments and returns of every job)."""
    shown = fleet.salt("state.show_sls", "mosquitto", timeout=300)
    for host in HOSTS:
        assert "mosquitto-configure-users-passwd-managed" in json.dumps(shown[host]), host
    found = {"pillar password": PASSWORD}
    for h in fleet:
        found[f"{h.name} exporter password"] = h.path("/etc/mosquitto/exporter/password").read_text().strip()
        for key in ("/etc/mosquitto/certs/server.key",) + (("/etc/mosquitto/ca/ca.key",) if h.name == CA_HOST else ()):
            found.update({f"{h.name} {key} line {i}": line for i, line in enumerate(_pem_body_lines(h.path(key)))})
    jobs = pathlib.Path(fleet_master.config["cachedir"]) / "jobs"
    cache = b"".join(p.read_bytes() for p in jobs.rglob("*") if p.is_file())
    assert b"state.show_sls" in cache and b"mosquitto-configure-users-passwd-managed" in cache
    assert sorted(name for name, value in found.items() if value.encode() in cache) == []


def test_units_enabled_and_active(fleet, applied):
    for h in fleet:
        for unit in ("mosquitto", "mosquitto-exporter", "firewalld"):
            assert h.run(["systemctl", "is-enabled", unit]).stdout.strip() == "enabled", (h.name, unit)
            assert h.run(["systemctl", "is-active", unit]).stdout.strip() == "active", (h.name, unit)


def test_firewall_has_exactly_ssh_mqtts_and_exporter(fleet, applied):
    for h in fleet:
        assert_only_wanted(h)


def nmap_scan(fleet, host, ports="-"):
    """{port: state} for the ports nmap lists (the rest share one state).

    Linux answers at most one ICMP error per second per peer (and 1000/s in
    all): a full scan of a rejecting firewall would then wait out timeouts
    for most ports (minutes). Lifting those limits in the test host's own
    network namespace lets every reject come back at once (seconds), so
    each port gets a definite answer.
    """
    # no sysctl(8) on a minbase host (procps): write /proc/sys directly
    host.run("echo 0 > /proc/sys/net/ipv4/icmp_ratelimit && "
             "echo 100000 > /proc/sys/net/ipv4/icmp_msgs_per_sec && "
             "echo 100000 > /proc/sys/net/ipv4/icmp_msgs_burst")
    out = fleet.client.run(["nmap", "-Pn", "-n", "-sT", f"-p{ports}", "-T4", "--max-retries", "2",
                            "-oX", "-", host.ip], timeout=600).stdout
    root = ET.fromstring(out)
    return {int(p.get("portid")): p.find("state").get("state") for p in root.iter("port")}


def nmap_open_ports(fleet, host):
    return {port for port, state in nmap_scan(fleet, host).items() if state == "open"}


def test_port_scan_from_the_client_finds_only_mqtts_and_exporter(fleet, applied):
    for h in fleet:
        assert nmap_open_ports(fleet, h) == {8883, 9234}, h.name
        # 1883 is filtered (the firewall rejects it), not merely closed.
        assert nmap_scan(fleet, h, "1883")[1883] == "filtered", h.name
        # 1883 is still served inside the host, on loopback.
        inside = h.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", "1883", "-u", "alice",
                        "-P", PASSWORD, "-t", "inside/test", "-m", "x"], check=False)
        assert inside.returncode == 0, inside.stderr


def test_runtime_drift_is_reloaded_away(fleet, applied):
    h = fleet["mqtt2.test"]
    h.run(["firewall-cmd", "--zone=public", "--add-port=1883/tcp"])  # runtime only
    ret = fleet.salt("state.apply", "mosquitto", tgt=h.name, timeout=600, check=True)[h.name]
    assert "mosquitto-runtime-firewall-reloaded" in changed(ret)
    assert "1883/tcp" not in h.run(["firewall-cmd", "--zone=public", "--list-ports"]).stdout


def test_one_ca_signs_both_and_its_key_stays_on_the_ca_host(fleet, applied, tmp_path):
    ca = fleet[CA_HOST].path(CA).read_bytes()
    for h in fleet:
        assert h.path(CA).read_bytes() == ca, h.name
        cert = tmp_path / f"{h.name}.crt"
        cert.write_bytes(h.path("/etc/mosquitto/certs/server.crt").read_bytes())
        (tmp_path / "ca.crt").write_bytes(ca)
        verify = subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(cert)],
                                capture_output=True, text=True)
        assert verify.returncode == 0, verify.stdout + verify.stderr
    assert fleet[CA_HOST].path("/etc/mosquitto/ca/ca.key").exists()
    assert not fleet["mqtt2.test"].path("/etc/mosquitto/ca").exists()


def test_brokers_need_no_answer_from_the_ca_host_when_nothing_changes(fleet, applied):
    """The CA certificate is in the mine: a no-op run of mqtt2 succeeds with
    mqtt1's salt-minion stopped (a busy or down CA host stalls nobody)."""
    mined = fleet.salt("mine.get", CA_HOST, "mosquitto_ca_cert", tgt="mqtt2.test", check=True)
    pem = mined["mqtt2.test"][CA_HOST]
    assert x509.load_pem_x509_certificate(pem.encode()) == x509.load_pem_x509_certificate(
        fleet[CA_HOST].path(CA).read_bytes())
    ca_host = fleet[CA_HOST]
    ca_host.run(["systemctl", "stop", "salt-minion"])
    try:
        ret = fleet.salt("state.apply", "mosquitto", tgt="mqtt2.test", timeout=300, check=True)["mqtt2.test"]
        assert changed(ret) == {}
    finally:
        after = time.time()
        ca_host.run(["systemctl", "start", "salt-minion"])
        fleet.wait_minions([ca_host], after=after)


def test_renewal_schedule_renews_a_near_expiry_certificate_with_a_reload(fleet, applied):
    """tls:auto_renew under a master: each minion carries the daily schedule
    entry (no cron entry), and running it renews a certificate within
    renew_days of expiry and reloads the broker (same main PID)."""
    schedules = fleet.salt("schedule.list", "return_yaml=False", timeout=60, check=True)
    for host in HOSTS:
        job = schedules[host]["mosquitto-tls-renew"]
        # schedule.present stores job_args as args.
        shape = {k: job.get(k) for k in ("function", "args", "hours", "splay")}
        assert shape == {"function": "state.apply", "args": ["mosquitto.runtime.certificate"],
                         "hours": 24, "splay": 3600}, job
        # Never at once beside the apply that added it; waits for an operator's run.
        assert job.get("run_on_start") is False and job.get("kwargs") == {"queue": True}, job
        assert fleet[host].run(["test", "!", "-e", "/etc/cron.d/mosquitto-tls-renew"], check=False).returncode == 0

    h, cert = fleet[CA_HOST], "/etc/mosquitto/certs/server.crt"
    fleet.salt("mosquitto_ca.issue_cert", cert, "/etc/mosquitto/certs/server.key", f"ca_cert_path={CA}",
               "ca_key_path=/etc/mosquitto/ca/ca.key", f"common_name={CA_HOST}", "days_valid=10",
               tgt=CA_HOST, timeout=60, check=True)
    h.run(["systemctl", "reload", "mosquitto"])
    pid = _main_pid(h, "mosquitto")

    def days_left():
        info = fleet.salt("mosquitto_ca.cert_info", cert, tgt=CA_HOST, timeout=60, check=True)[CA_HOST]
        return info["days_remaining"]
    assert days_left() < 30
    # What the scheduler runs once a day, run now (the splay does not apply).
    fleet.salt("schedule.run_job", "mosquitto-tls-renew", tgt=CA_HOST, timeout=60, check=True)
    deadline = time.monotonic() + 180
    while days_left() < 800 and time.monotonic() < deadline:
        time.sleep(2)
    assert days_left() > 800
    assert _main_pid(h, "mosquitto") == pid
    assert h.run(["systemctl", "is-active", "mosquitto"]).stdout.strip() == "active"
    # The renewed certificate is served: the TLS listener presents it.
    served = h.run(["sh", "-c", f"openssl s_client -connect 127.0.0.1:8883 -servername {CA_HOST} "
                               f"-CAfile {CA} </dev/null 2>/dev/null | openssl x509 -noout -enddate"]).stdout
    on_disk = h.run(["openssl", "x509", "-noout", "-enddate", "-in", cert]).stdout
    assert served.strip() == on_disk.strip() != ""
    # The exporter (hardened unit, its own user) serves the new notAfter.
    not_after = datetime.datetime.strptime(on_disk.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z")
    metrics = fleet.client.run(["curl", "-s", f"http://{CA_HOST}:9234/metrics"]).stdout
    series = f'mosquitto_certificate_expiry_timestamp_seconds{{path="{cert}",role="server"}} '
    (line,) = [x for x in metrics.splitlines() if x.startswith(series)]
    assert float(line.split()[-1]) == not_after.replace(tzinfo=datetime.timezone.utc).timestamp()


def test_original_commands_from_the_client_by_name(fleet, applied, tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_bytes(fleet[CA_HOST].path(CA).read_bytes())
    for h in fleet:
        topic = f"fleet/{h.name}"
        base = ["-h", h.name, "-t", topic, "-p", "8883", "--cafile", str(ca), "-u", "alice", "-P", PASSWORD]
        pub = fleet.client.run(["mosquitto_pub", *base, "-m", "hello " + h.name, "-r", "-q", "1"], check=False)
        assert pub.returncode == 0, pub.stderr
        sub = fleet.client.run(["mosquitto_sub", *base, "-C", "1", "-W", "10"], check=False)
        assert sub.returncode == 0 and sub.stdout.strip() == "hello " + h.name, sub.stderr


def test_wrong_ca_or_wrong_name_fail(fleet, applied, tmp_path):
    other = tmp_path / "other.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(tmp_path / "k"), "-out", str(other), "-subj", "/CN=other",
                    "-days", "2"], check=True, capture_output=True)
    ca = tmp_path / "ca.crt"
    ca.write_bytes(fleet[CA_HOST].path(CA).read_bytes())
    for h in fleet:
        common = ["-p", "8883", "-u", "alice", "-P", PASSWORD, "-t", "x", "-m", "1"]
        wrong_ca = fleet.client.run(["mosquitto_pub", "-h", h.name, "--cafile", str(other), *common], check=False)
        assert wrong_ca.returncode != 0, h.name
        wrong_name = fleet.client.run(["mosquitto_pub", "-h", h.ip, "--cafile", str(ca), *common], check=False)
        assert wrong_name.returncode != 0, h.name


def test_exporter_scraped_from_the_client(fleet, applied):
    for h in fleet:
        out = fleet.client.run(["curl", "-s", "-D", "-", f"http://{h.name}:9234/metrics"]).stdout
        assert "text/plain; version=0.0.4" in out
        assert "mosquitto_exporter_connected 1.0" in out or _eventually_connected(fleet, h)


def _eventually_connected(fleet, h, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = fleet.client.run(["curl", "-s", f"http://{h.name}:9234/metrics"]).stdout
        if "mosquitto_exporter_connected 1.0" in out:
            return True
        time.sleep(1)
    return False


def _main_pid(h, unit):
    return int(h.run(["systemctl", "show", "-p", "MainPID", "--value", unit]).stdout.strip())


def _wait_active(h, unit, timeout=60, not_pid=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = h.run(["systemctl", "is-active", unit], check=False).stdout.strip()
        if state == "active" and (not_pid is None or _main_pid(h, unit) not in (0, not_pid)):
            return True
        time.sleep(0.5)
    return False


def test_broker_comes_back_after_kill_9(fleet, applied):
    h = fleet["mqtt1.test"]
    pid = _main_pid(h, "mosquitto")
    h.run(f"kill -9 {pid}")  # the shell's kill: no /bin/kill (procps) on a minbase host
    assert _wait_active(h, "mosquitto", not_pid=pid), h.run(["systemctl", "status", "mosquitto"], check=False).stdout
    assert fleet.client.tcp_open(h.ip, 8883)


def test_queued_messages_survive_systemctl_kill(fleet, applied, tmp_path):
    """Issue 14 under systemd: 100 QoS 1 messages queued for an offline
    persistent subscriber outlive SIGKILL; Restart=on-failure starts it."""
    h = fleet["mqtt1.test"]
    ca = tmp_path / "ca.crt"
    ca.write_bytes(fleet[CA_HOST].path(CA).read_bytes())
    base = ["-h", h.name, "-p", "8883", "--cafile", str(ca), "-u", "alice", "-P", PASSWORD, "-q", "1"]
    sub = ["mosquitto_sub", *base, "-i", "durable-100", "-t", "durable/#"]
    fleet.client.run([*sub, "-c", "-E"])  # persistent session, subscribed, offline
    try:
        fleet.client.run(["mosquitto_pub", *base, "-t", "durable/x", "-l"],
                         input="".join(f"{i}\n" for i in range(100)))
        time.sleep(3)  # longer than the loss window (autosave_interval 1: a save every 2 s)
        pid = _main_pid(h, "mosquitto")
        h.run(["systemctl", "kill", "-s", "KILL", "mosquitto"])
        active = _wait_active(h, "mosquitto", not_pid=pid)
        assert active, h.run(["systemctl", "status", "mosquitto"], check=False).stdout
        got = fleet.client.run([*sub, "-c", "-C", "100", "-W", "30"], check=False, timeout=60)
        assert got.stdout.split() == [str(i) for i in range(100)], (got.stdout, got.stderr)
    finally:
        fleet.client.run([*sub, "-E"], check=False)  # clean session: drop it


def test_everything_is_back_after_a_reboot_without_apply(fleet, applied, tmp_path):
    h = fleet["mqtt2.test"]
    h.restart()
    for unit in ("mosquitto", "mosquitto-exporter", "firewalld"):
        assert _wait_active(h, unit), unit
    ca = tmp_path / "ca.crt"
    ca.write_bytes(fleet[CA_HOST].path(CA).read_bytes())
    deadline = time.monotonic() + 30
    while True:
        pub = fleet.client.run(["mosquitto_pub", "-h", h.name, "-p", "8883", "--cafile", str(ca),
                                "-u", "alice", "-P", PASSWORD, "-t", "after/reboot", "-m", "1"], check=False)
        if pub.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert pub.returncode == 0, pub.stderr
    assert nmap_open_ports(fleet, h) == {8883, 9234}


def test_firewall_disabled_in_pillar_changes_no_firewall(fleet, applied):
    h = fleet["mqtt1.test"]
    before = h.run(["firewall-cmd", "--permanent", "--zone=public", "--list-all"]).stdout
    pillar = json.dumps({"mosquitto": {"firewall": {"enabled": False}}})
    ret = fleet.salt("state.apply", "mosquitto", f"pillar={pillar}", tgt=h.name, timeout=600, check=True)[h.name]
    note = [v["comment"] for k, v in ret.items() if "mosquitto-configure-firewall-unmanaged" in k]
    assert note and "firewall:enabled is false in pillar" in note[0]
    assert not [k for k in ret if "mosquitto_firewall_|-" in k]
    assert changed(ret) == {}
    assert h.run(["firewall-cmd", "--permanent", "--zone=public", "--list-all"]).stdout == before


def test_firewall_extra_ports_are_opened_then_pruned(fleet, applied):
    """firewall:extra_ports opens more ports in the zone, permanently and at
    runtime; gone from pillar, they are closed again."""
    h = fleet["mqtt1.test"]
    pillar = json.dumps({"mosquitto": {"firewall": {"extra_ports": ["9100/tcp", "5000-5001/udp"]}}})
    ret = fleet.salt("state.apply", "mosquitto", f"pillar={pillar}", tgt=h.name, timeout=600, check=True)[h.name]
    assert "mosquitto-configure-firewall-zone-present" in changed(ret)
    for scope in ([], ["--permanent"]):
        ports = h.run(["firewall-cmd", *scope, "--zone=public", "--list-ports"]).stdout.split()
        assert sorted(ports) == ["5000-5001/udp", "8883/tcp", "9100/tcp", "9234/tcp"], (scope, ports)
    # Open in the firewall, nothing listening: the client sees "closed", not "filtered".
    assert nmap_scan(fleet, h, "9100")[9100] == "closed"
    ret = fleet.salt("state.apply", "mosquitto", tgt=h.name, timeout=600, check=True)[h.name]
    assert "mosquitto-configure-firewall-zone-present" in changed(ret)
    for scope in ([], ["--permanent"]):
        ports = h.run(["firewall-cmd", *scope, "--zone=public", "--list-ports"]).stdout.split()
        assert sorted(ports) == ["8883/tcp", "9234/tcp"], (scope, ports)
    assert nmap_scan(fleet, h, "9100")[9100] == "filtered"


def test_clean_on_a_systemd_host_leaves_nothing_but_the_ca_and_ssh(fleet, applied):
    """mosquitto.clean on a real systemd host with firewalld (last test: it
    undoes mqtt2): units, files, users, packages and the zone's ports go;
    firewalld keeps running with ssh; the CA certificate stays."""
    h = fleet["mqtt2.test"]
    pillar = json.dumps({"mosquitto": {"firewall": {"extra_ports": ["9100/tcp"]}}})
    fleet.salt("state.apply", "mosquitto", f"pillar={pillar}", tgt=h.name, timeout=600, check=True)
    ret = fleet.salt("state.apply", "mosquitto.clean", f"pillar={pillar}", tgt=h.name,
                     timeout=600, check=True)[h.name]
    assert all(v["result"] is True for v in ret.values()), {k: v["comment"] for k, v in ret.items()
                                                              if v["result"] is not True}
    for scope in ([], ["--permanent"]):
        assert h.run(["firewall-cmd", *scope, "--zone=public", "--list-ports"]).stdout.split() == [], scope
        assert h.run(["firewall-cmd", *scope, "--zone=public", "--list-services"]).stdout.split() == ["ssh"]
    assert h.run(["systemctl", "is-active", "firewalld"]).stdout.strip() == "active"
    for unit in ("mosquitto", "mosquitto-exporter"):
        load = h.run(["systemctl", "show", "-p", "LoadState", "--value", unit], check=False).stdout.strip()
        assert load == "not-found", (unit, load)
    for path in ("/etc/mosquitto/mosquitto.conf", "/etc/mosquitto/passwd", "/etc/mosquitto/acl",
                 "/etc/mosquitto/certs/server.key", "/etc/mosquitto/exporter", "/etc/default/mosquitto-exporter",
                 "/etc/systemd/system/mosquitto-exporter.service", "/usr/local/sbin/mosquitto_exporter",
                 "/var/lib/mosquitto", "/var/log/mosquitto", "/usr/sbin/mosquitto"):
        assert not h.path(path).exists(), path
    assert h.path(CA).exists()
    assert h.run(["getent", "passwd", "mosquitto-exporter"], check=False).returncode == 2
    assert nmap_open_ports(fleet, h) == set()
    again = fleet.salt("state.apply", "mosquitto.clean", tgt=h.name, timeout=600, check=True)[h.name]
    assert changed(again) == {}
