"""Migration from the original Ansible playbook without touching a client
(issue #21), on a real systemd host from a master.

The host is built the way jpadmin/sensorberg-task's roles leave one (its
README: ../shared/seed/original-ansible-readme.txt): mosquitto from the
distribution, a root CA and server certificate made with the openssl CLI as
mosquitto-tls(7) shows (CA key passphrase-protected), its file names under
/etc/mosquitto/certs owned by mosquitto with the keys 0600, users added with
``mosquitto_passwd -b`` to a mosquitto-owned /etc/mosquitto/passwd, its
mosquitto.conf (1883 on 127.0.0.1, 8883 TLS on 0.0.0.0, no persistence) and
firewalld with 22, 8883 and 9234 open. (The Go exporter is left out: it is
built from source with Go, which these offline hosts do not have.)

A client that kept only the playbook's ca.crt subscribes with a persistent
session, and messages are queued for it while it is offline. Bad
tls:adopt_ca input is refused first, naming the key, with nothing changed.
Then the formula is applied with tls:adopt_ca and keep_existing_users: the
old ca.crt still verifies the broker by name, every old user logs in with
the old password, the queued messages arrive, the README's own command
lines work, and a second apply changes nothing.

Tests run in file order on one host per Debian release (bookworm, then
trixie), each torn down before the next.
"""
import hashlib
import json
import secrets
import shlex
import time
import warnings

import pytest

pytestmark = pytest.mark.hosts

HOST = "mosquittodemo.sensorberg.com"   # the playbook's domain, resolved by the client
LOG = "/var/log/mosquitto/mosquitto.log"
CERTS = "/etc/mosquitto/certs"
SUBJECT = "/C=DE/ST=Germany/L=Berlin/O=Sensorberg GmBH/OU=DevOps/CN=mosquittodemo.sensorberg.com"
PASSPHRASE = "ca-" + secrets.token_urlsafe(12)
OLD_USERS = {"johnpaulkj": "sensorberg2024", "sensor-7": "old pass: with spaces " + secrets.token_hex(4)}
NEW_USER, NEW_PASSWORD = "alice", "new-" + secrets.token_urlsafe(12)
DURABLE = "playbook-durable"
QUEUED = [f"queued-{i}" for i in range(20)]

PLAYBOOK_CONF = f"""allow_anonymous false
password_file /etc/mosquitto/passwd
log_dest file /var/log/mosquitto/mosquitto.log

listener 1883 127.0.0.1

listener 8883 0.0.0.0
cafile {CERTS}/ca.crt
certfile {CERTS}/{HOST}.crt
keyfile {CERTS}/{HOST}.key"""

# roles/mosquitto_configure (certificates as in mosquitto-tls(7), made once
# with the openssl CLI), mosquitto_runtime (firewall, restart). The
# playbook's server certificate has the CA's very subject and carries key
# identifiers (OpenSSL 3.2+ adds them unasked); Debian 12's OpenSSL 3.0
# must be asked, or that certificate reads as self-signed and fails.
PLAYBOOK_TLS = f"""set -e
cd {CERTS}
openssl req -new -x509 -days 1095 -extensions v3_ca -keyout ca.key -out ca.crt \
  -passout env:CAPASS -subj {shlex.quote(SUBJECT + '/emailAddress=devops@example.com')}
openssl genrsa -out {HOST}.key 2048
openssl req -out server.csr -key {HOST}.key -new -subj {shlex.quote(SUBJECT + '/emailAddress=devops@example.com')}
printf 'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' > /root/server.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -passin env:CAPASS -CAcreateserial \
  -out {HOST}.crt -days 90 -extfile /root/server.ext
chown -R mosquitto:mosquitto {CERTS}
find {CERTS}/ -type f | grep "key" | xargs chmod 600
"""

PILLAR = f"""mosquitto:
  domain: {HOST}
  keep_existing_users: true
  users:
    {NEW_USER}:
      password: {json.dumps(NEW_PASSWORD)}
  tls:
    adopt_ca:
      cert: {CERTS}/ca.crt
      key: {CERTS}/ca.key
      key_passphrase: {json.dumps(PASSPHRASE)}
"""


def build_playbook_host(h):
    """What install_mosquitto.yml leaves (Debian's package instead of EPEL's)."""
    h.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-download "
          "mosquitto mosquitto-clients openssl firewalld", timeout=600)
    h.run(["mkdir", "-p", CERTS])
    h.run(f"CAPASS={shlex.quote(PASSPHRASE)}; export CAPASS\n{PLAYBOOK_TLS}")
    h.run("touch /etc/mosquitto/passwd && chown mosquitto:mosquitto /etc/mosquitto/passwd"
          " && chmod 0600 /etc/mosquitto/passwd")
    for user, password in OLD_USERS.items():
        h.run(["mosquitto_passwd", "-b", "/etc/mosquitto/passwd", user, password])
    h.path("/etc/mosquitto/mosquitto.conf").write_text(PLAYBOOK_CONF)
    h.run("systemctl enable --now firewalld && firewall-cmd --permanent --add-port=22/tcp"
          " && firewall-cmd --permanent --add-port=8883/tcp && firewall-cmd --permanent --add-port=9234/tcp"
          " && firewall-cmd --reload", timeout=180)
    h.run("systemctl restart mosquitto && systemctl is-active mosquitto")


def minion_back(fleet, h):
    """Starting firewalld cut the minion's connection to the master (a job
    published meanwhile never arrives): restart it and wait for an answer."""
    h.run(["systemctl", "restart", "salt-minion"])
    for _ in range(60):
        if fleet.salt("test.ping", tgt=h.name, timeout=10).get(h.name) is True:
            return
    raise AssertionError(f"{h.name}: the minion did not answer after its restart")


# Each Debian release the formula runs on, with its own mosquitto (2.0.11,
# 2.0.21), OpenSSL (3.0, 3.5) and firewalld (1.3, 2.3): one host at a time
# under the playbook's one domain name.
@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def host(request, fleet_factory, fleet_pillar_dir, tmp_path_factory):
    (fleet_pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
    (fleet_pillar_dir / "mosquitto.sls").write_text(PILLAR)
    fleet = fleet_factory([HOST], suites={HOST: request.param})
    h = fleet[HOST]
    build_playbook_host(h)
    minion_back(fleet, h)
    # What a client of the playbook's broker holds: its ca.crt, nothing else.
    ca = tmp_path_factory.mktemp("client") / "ca.crt"
    ca.write_bytes(h.path(f"{CERTS}/ca.crt").read_bytes())
    yield fleet, h, str(ca)
    fleet.teardown()   # now, not with the module: the next release's host takes the same name


def client_args(h, ca, user, password, by="name"):
    """The playbook README's options: by name, or by IP with --insecure."""
    where = ["-h", HOST] if by == "name" else ["-h", h.ip, "--insecure"]
    return [*where, "-p", "8883", "--cafile", ca, "-u", user, "-P", password]


def original_commands_work(fleet, h, ca, user, password, by="name"):
    """The README's mosquitto_pub and mosquitto_sub lines, one retained message."""
    base = client_args(h, ca, user, password, by)
    topic, message = f"original/{user}/{by}", f"hello from {user} by {by}"
    pub = fleet.client.run(["mosquitto_pub", *base[:2], "-t", topic, *base[2:], "-m", message, "-r"], check=False)
    sub = fleet.client.run(["mosquitto_sub", *base[:2], "-t", topic, *base[2:], "-C", "1", "-W", "10"],
                           check=False)
    return (pub.returncode, sub.returncode, sub.stdout.strip()) == (0, 0, message), (pub.stderr, sub.stderr)


def snapshot(h):
    """Owner, mode and content hash of everything the migration could touch,
    and the broker process (a restart would lose the in-memory queue)."""
    listing = h.run("find /etc/mosquitto /var/lib/mosquitto /etc/systemd/system -printf '%p %U:%G %m %y\\n'"
                    " | sort", check=False).stdout
    sums = h.run("find /etc/mosquitto /var/lib/mosquitto -type f -exec sha256sum {} + | sort",
                 check=False).stdout
    pid = h.run(["systemctl", "show", "--property=MainPID", "--value", "mosquitto"]).stdout.strip()
    zone = h.run(["firewall-cmd", "--permanent", "--zone=public", "--list-all"]).stdout
    return listing, sums, pid, zone


def apply(fleet, h, *args, check=True):
    return fleet.salt("state.apply", "mosquitto", "sync_mods=all", *args, tgt=h.name, timeout=900,
                      check=check)[h.name]


def changed(ret):
    return {v["__id__"]: v.get("changes") for v in ret.values() if v.get("changes") or v.get("result") is None}


def old_secrets(h):
    """Every old password and hash, and the CA key's passphrase."""
    hashes = [line.split(":", 1)[1] for line in h.path("/etc/mosquitto/passwd").read_text().splitlines() if ":" in line]
    return [PASSPHRASE, NEW_PASSWORD, *OLD_USERS.values(), *hashes]


def test_playbook_host_serves_the_original_commands(host):
    fleet, h, ca = host
    assert "persistence" not in h.path("/etc/mosquitto/mosquitto.conf").read_text()
    assert "ENCRYPTED" in h.path(f"{CERTS}/ca.key").read_text()
    for user, password in OLD_USERS.items():
        for by in ("name", "ip"):
            ok, why = original_commands_work(fleet, h, ca, user, password, by)
            assert ok, (user, by, why)


@pytest.fixture(scope="module")
def queued(host):
    """A persistent QoS 1 subscriber (clean session false), then offline
    while messages are published for it: held in the broker's memory only."""
    fleet, h, ca = host
    user, password = "johnpaulkj", OLD_USERS["johnpaulkj"]
    sub = ["mosquitto_sub", *client_args(h, ca, user, password), "-q", "1", "-i", DURABLE, "-t", "durable/#"]
    fleet.client.run([*sub, "-c", "-E"])
    fleet.client.run(["mosquitto_pub", *client_args(h, ca, "sensor-7", OLD_USERS["sensor-7"]), "-q", "1",
                      "-t", "durable/x", "-l"], input="".join(f"{m}\n" for m in QUEUED))
    return sub


@pytest.mark.parametrize("bad, key", [
    ({"key": "/root/other-ca.key"}, "mosquitto:tls:adopt_ca:key"),
    ({"cert": "/etc/mosquitto/certs/missing-ca.crt"}, "mosquitto:tls:adopt_ca:cert"),
    ({"key_passphrase": "not-the-passphrase"}, "mosquitto:tls:adopt_ca:key_passphrase"),
], ids=["key-of-another-ca", "cert-missing", "wrong-passphrase"])
def test_bad_adopt_input_is_refused_naming_the_key_and_nothing_changes(host, queued, bad, key):
    fleet, h, _ = host
    h.run("test -e /root/other-ca.key || openssl genrsa -out /root/other-ca.key 2048")
    before = snapshot(h)
    pillar = json.dumps({"mosquitto": {"tls": {"adopt_ca": bad}}})
    ret = apply(fleet, h, f"pillar={pillar}", check=False)
    text = json.dumps(ret)
    assert f"{key}: " in text, text[:3000]
    assert not (isinstance(ret, dict) and any(v.get("result") is True for v in ret.values())), "states ran"
    assert snapshot(h) == before
    for secret in old_secrets(h):
        assert secret not in text


@pytest.fixture(scope="module")
def migrated(host, queued):
    fleet, h, _ = host
    passwd_before = h.path("/etc/mosquitto/passwd").read_text()
    ret = apply(fleet, h)
    return ret, passwd_before


def test_first_apply_adopts_the_ca_and_shows_no_secret(host, migrated):
    _, h, _ = host
    ret, passwd_before = migrated
    text = json.dumps(ret)
    for secret in old_secrets(h) + [line.split(":", 1)[1] for line in passwd_before.splitlines()]:
        assert secret not in text
    states = changed(ret)
    assert "mosquitto-configure-tls-ca-adopted" in states
    assert "mosquitto-configure-broker-persistence-handed-over" in states
    # The formula's own copy of the CA key: unencrypted, root-only, the old CA's.
    key = "/etc/mosquitto/ca/ca.key"
    assert h.run(["stat", "-c", "%U:%G %a", key]).stdout.split() == ["root:root", "600"]
    assert "ENCRYPTED" not in h.path(key).read_text()
    modulus = "openssl {} -noout -modulus -in {}"
    assert h.run(modulus.format("rsa", key)).stdout == h.run(modulus.format("x509", f"{CERTS}/ca.crt")).stdout
    # The broker serves the formula's certificate, issued by the old CA for the domain.
    issued = h.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", "/etc/mosquitto/certs/server.crt"])
    assert f"DNS:{HOST}" in issued.stdout
    h.run(["openssl", "verify", "-CAfile", f"{CERTS}/ca.crt", "/etc/mosquitto/certs/server.crt"])


def test_old_ca_and_old_users_with_the_original_commands(host, migrated):
    fleet, h, ca = host
    for user, password in OLD_USERS.items():
        for by in ("name", "ip"):
            ok, why = original_commands_work(fleet, h, ca, user, password, by)
            assert ok, (user, by, why)
    ok, why = original_commands_work(fleet, h, ca, NEW_USER, NEW_PASSWORD)
    assert ok, why
    wrong = fleet.client.run(["mosquitto_pub", *client_args(h, ca, "johnpaulkj", "wrong"), "-t", "x", "-m", "1"],
                             check=False)
    assert wrong.returncode != 0


def test_old_password_entries_are_kept_byte_for_byte(host, migrated):
    _, h, _ = host
    _, passwd_before = migrated
    now = h.path("/etc/mosquitto/passwd").read_text().splitlines()
    for line in passwd_before.splitlines():
        assert line in now, line.split(":")[0]
    assert {line.split(":")[0] for line in now} >= {*OLD_USERS, NEW_USER, "mosquitto-exporter"}


def test_messages_queued_before_the_migration_are_delivered(host, migrated, queued):
    fleet, _, _ = host
    got = fleet.client.run([*queued, "-c", "-C", str(len(QUEUED)), "-W", "30"], check=False, timeout=60)
    assert got.stdout.split() == QUEUED, (got.stdout, got.stderr)


def broker_settled(h, quiet=3.0):
    """Active with one MainPID for `quiet` seconds (systemd's restart after a
    crash takes a moment; a PID that still changes is not settled)."""
    pid, since = None, time.monotonic()
    deadline = since + 60
    while time.monotonic() < deadline:
        show = dict(line.split("=", 1) for line in
                    h.run(["systemctl", "show", "--property=ActiveState,MainPID", "mosquitto"]).stdout.split())
        now = show.get("MainPID") if show.get("ActiveState") == "active" else None
        if now != pid:
            pid, since = now, time.monotonic()
        elif pid and time.monotonic() - since >= quiet:
            return pid
        time.sleep(0.2)
    raise AssertionError(h.journal("mosquitto", 40))


def test_second_apply_changes_nothing(host, migrated):
    """No change, and the broker neither restarted nor reloaded by it (its
    unit's journal over the apply: systemd logs "Stopping" or "Reloading").

    Debian 12's mosquitto 2.0.11 has been seen (3 of 7 runs, and once in CI
    during this very apply) to segfault a few seconds after the playbook's
    persistent client disconnects from its queued messages with "Protocol
    error" (the test before this one), on a following connection; systemd's
    Restart=on-failure starts it again. That crash is the broker's, not the
    apply's. So one client connects first and the broker is left to settle;
    should it still crash during the apply (SEGV in the unit's journal), the
    only changes allowed are the service's running states starting the
    stopped broker, reported as a warning with the journal and the broker's log, and
    one more apply must change nothing. README's migration section names it."""
    fleet, h, ca = host
    since = h.run(["date", "+%s"]).stdout.strip()
    original_commands_work(fleet, h, ca, NEW_USER, NEW_PASSWORD)   # the following connection, before the apply
    broker_settled(h)
    if "status=11/SEGV" in (early := h.journal("mosquitto", lines=None, since=since)):
        warnings.warn(f"mosquitto crashed before the second apply:\n{early}\n"
                      f"broker log:\n{h.path(LOG).read_text()[-2000:]}", stacklevel=1)
    since = h.run(["date", "+%s"]).stdout.strip()
    ret = apply(fleet, h)
    states = changed(ret)
    journal = h.journal("mosquitto", lines=None, since=since)
    assert "Stopping mosquitto" not in journal and "Reloading mosquitto" not in journal, journal
    if states and "status=11/SEGV" in journal:
        starts = {v["__id__"] for k, v in ret.items()
                  if k.startswith("mosquitto_service_|-") and k.endswith("_|-running")
                  and v.get("changes", {}) in ({}, {"mosquitto": True})}
        assert set(states) <= starts, (states, journal)
        warnings.warn(f"mosquitto crashed during the second apply (not caused by it), which started it:\n"
                      f"{states}\n{journal}\nbroker log:\n{h.path(LOG).read_text()[-2000:]}", stacklevel=1)
        broker_settled(h)
        since = h.run(["date", "+%s"]).stdout.strip()
        states = changed(apply(fleet, h))
        journal = h.journal("mosquitto", lines=None, since=since)
    assert states == {}, journal
    broker_settled(h)
    digest = hashlib.sha256(h.path("/etc/mosquitto/ca/ca.key").read_bytes()).hexdigest()
    assert changed(apply(fleet, h, "test=True")) == {}
    assert hashlib.sha256(h.path("/etc/mosquitto/ca/ca.key").read_bytes()).hexdigest() == digest
