"""`salt-call --local state.apply mosquitto` on this host, then real clients.

The module's tests share one applied host and run in file order: the
pillar-changing tests come last and put the pillar back.
"""
import hashlib
import os
import pathlib
import queue
import socket
import stat
import subprocess

import pytest

from scripts.saltlocal import changed, failed
from test.support.integration import CA, DOMAIN, base_pillar, broker_pid
from test.support.localhost import accepts, wait_for
from test.support.mqtt import Client

pytestmark = pytest.mark.integration


def owner(path):
    st = os.stat(path)
    import grp
    import pwd
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, oct(stat.S_IMODE(st.st_mode))


def test_files_are_owned_for_the_broker_and_secrets_are_private(applied):
    assert owner("/etc/mosquitto/passwd") == ("root", "mosquitto", "0o640")
    assert owner("/etc/mosquitto/acl") == ("root", "mosquitto", "0o640")
    assert owner("/etc/mosquitto/certs/server.key") == ("root", "mosquitto", "0o640")
    assert owner("/etc/mosquitto/ca/ca.key") == ("root", "root", "0o600")
    assert owner(CA)[2] == "0o644"
    text = pathlib.Path("/etc/mosquitto/passwd").read_text()
    assert "alice:$7$101$" in text and "bob:$7$101$" in text


def test_state_output_never_shows_secrets(salt_local, applied, passwords):
    # The apply's returns and the state data (show_sls); test_secrets.py
    # covers every other output and a bridge password.
    rc, shown, err = salt_local.call("state.show_sls", "mosquitto")
    assert rc == 0 and "mosquitto-configure-users-passwd-managed" in repr(shown)
    exporter_pw = pathlib.Path("/etc/mosquitto/exporter/password").read_text().strip()
    keys = [line for path in ("/etc/mosquitto/certs/server.key", "/etc/mosquitto/ca/ca.key")
            for line in pathlib.Path(path).read_text().splitlines() if not line.startswith("-----")]
    for dump in (repr(applied), repr(shown)):
        for secret in [*passwords.values(), exporter_pw, *keys]:
            assert secret and secret not in dump
        assert "PRIVATE KEY" not in dump


def test_original_pub_sub_commands_over_tls_by_name(applied, hosts_ns, passwords):
    # The playbook's README commands, verbatim but for user/password/topic.
    sub = ["mosquitto_sub", "-h", DOMAIN, "-t", "sensors/temp", "-p", "8883", "--cafile", CA,
           "-u", "alice", "-P", passwords["alice"], "-C", "1", "-W", "10"]
    pub = ["mosquitto_pub", "-h", DOMAIN, "-t", "sensors/temp", "-p", "8883", "--cafile", CA,
           "-u", "alice", "-P", passwords["alice"], "-m", "21.5", "-q", "1", "-r"]
    assert hosts_ns(pub).returncode == 0
    result = hosts_ns(sub)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "21.5"
    # The extra SAN works too.
    alt = hosts_ns([*pub[:2], "alt.integration.test", *pub[3:]])
    assert alt.returncode == 0, alt.stderr


def test_tls_fails_for_a_name_not_in_the_certificate(applied, passwords):
    # "localhost" resolves to 127.0.0.1 but is not a SAN of the certificate.
    result = subprocess.run(["mosquitto_pub", "-h", "localhost", "-p", "8883", "--cafile", CA,
                             "-u", "alice", "-P", passwords["alice"], "-t", "sensors/x", "-m", "1"],
                            capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert "TLS" in result.stderr or "certificate" in result.stderr.lower()


def test_tls_fails_against_another_ca(applied, hosts_ns, tmp_path, passwords):
    other = tmp_path / "other-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", str(tmp_path / "k"), "-out", str(other), "-subj", "/CN=other",
                    "-days", "2"], check=True, capture_output=True)
    result = hosts_ns(["mosquitto_pub", "-h", DOMAIN, "-p", "8883", "--cafile", str(other),
                       "-u", "alice", "-P", passwords["alice"], "-t", "sensors/x", "-m", "1"])
    assert result.returncode != 0


@pytest.mark.parametrize("creds", [("alice", "wrong"), ("nobody", "x"), (None, None)],
                         ids=["wrong-password", "unknown-user", "anonymous"])
@pytest.mark.parametrize("port,tls", [(1883, False), (8883, True)], ids=["mqtt", "mqtts"])
def test_bad_credentials_are_refused(applied, creds, port, tls):
    client = Client(port, *creds, cafile=CA if tls else None)
    assert client.connect() is False
    assert client.reason is not None and client.reason.is_failure


def test_plain_mqtt_on_the_tls_port_is_refused(applied, passwords):
    client = Client(8883, "alice", passwords["alice"])
    with pytest.raises((TimeoutError, OSError)):
        if client.connect(timeout=5) is False:
            raise OSError("refused")


def test_plain_listener_is_bound_to_loopback_only(applied, passwords):
    listening = subprocess.run(["ss", "-Hltn", "sport = :1883"], capture_output=True, text=True).stdout
    assert "127.0.0.1:1883" in listening and "0.0.0.0:1883" not in listening and "[::]:1883" not in listening
    # Another loopback address reaches a wildcard listener, never ours.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", 1883), timeout=2)
    # 8883 is on every address.
    socket.create_connection(("127.0.0.2", 8883), timeout=2).close()
    good = Client(1883, "alice", passwords["alice"])
    assert good.connect()
    good.close()


def test_acl_limits_topics(applied, passwords):
    alice = Client(1883, "alice", passwords["alice"])
    bob = Client(1883, "bob", passwords["bob"])
    assert alice.connect() and bob.connect()
    try:
        # The broker checks read access per delivered message.
        alice.subscribe("+/acl/#")
        bob.publish("other/acl/x", b"not for alice")
        bob.publish("sensors/acl/x", b"for alice")
        assert alice.get() == ("sensors/acl/x", b"for alice", 1)
        with pytest.raises(queue.Empty):
            alice.get(timeout=1)
        # Bob (no rules: everything outside $SYS) cannot read $SYS.
        bob.subscribe("$SYS/broker/uptime")
        with pytest.raises(queue.Empty):
            bob.get(timeout=2)
    finally:
        alice.close()
        bob.close()


def test_second_apply_changes_nothing(salt_local, applied):
    rc, states, err = salt_local.apply()
    assert rc == 0 and not failed(states), failed(states)
    assert changed(states) == {}


def test_test_mode_changes_nothing_and_reports_nothing(salt_local, applied):
    rc, states, err = salt_local.apply(test=True)
    assert rc == 0, err
    assert changed(states) == {}


def test_offline_persistent_subscriber_gets_queued_messages_after_restart(salt_local, applied, passwords):
    sub = Client(1883, "bob", passwords["bob"], client_id="queue-test", clean=False)
    assert sub.connect()
    sub.subscribe("queue/#", qos=1)
    sub.close()
    pub = Client(1883, "alice", passwords["alice"])
    alice_ok = pub.connect()
    assert alice_ok
    pub.close()
    pub = Client(1883, "bob", passwords["bob"])
    assert pub.connect()
    for i in range(3):
        pub.publish(f"queue/{i}", f"m{i}".encode(), qos=1)
    pub.close()
    before = broker_pid()
    # A restart writes the in-memory store to disk and reads it back.
    subprocess.run(["service", "mosquitto", "restart"], check=True, capture_output=True, timeout=60)
    assert wait_for(lambda: broker_pid() != before)
    wait_for(lambda: accepts(1883))
    sub = Client(1883, "bob", passwords["bob"], client_id="queue-test", clean=False)
    assert sub.connect()
    try:
        got = sorted(sub.get(timeout=10)[1] for _ in range(3))
        assert got == [b"m0", b"m1", b"m2"]
    finally:
        sub.close()


def test_same_client_id_takes_over_the_session(applied, passwords):
    first = Client(1883, "bob", passwords["bob"], client_id="takeover")
    assert first.connect()
    second = Client(1883, "bob", passwords["bob"], client_id="takeover")
    assert second.connect()
    try:
        assert first.disconnected.wait(10), "the first client was not disconnected"
        second.subscribe("takeover/t")
        second.publish("takeover/t", b"x")
        assert second.get()[1] == b"x"
    finally:
        first.client.loop_stop()
        second.close()



def _digest(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def test_password_change_reloads_and_keeps_other_clients(salt_local, applied, passwords):
    bob = Client(1883, "bob", passwords["bob"])
    assert bob.connect()
    bob.subscribe("live/#")
    pid = broker_pid()
    new = dict(passwords, alice="new-" + passwords["alice"])
    passwd_before = _digest("/etc/mosquitto/passwd")
    try:
        # test=True: reported, not done.
        salt_local.write_pillar(base_pillar(new))
        rc, states, _ = salt_local.apply(test=True)
        planned = changed(states)
        assert "mosquitto-configure-users-passwd-managed" in planned
        assert _digest("/etc/mosquitto/passwd") == passwd_before
        # For real: a reload (same PID), bob stays connected.
        rc, states, err = salt_local.apply()
        assert rc == 0 and not failed(states), failed(states)
        done = changed(states)
        assert set(done) == {"mosquitto-configure-users-passwd-managed", "mosquitto-runtime-service-reloaded"}
        assert done["mosquitto-configure-users-passwd-managed"]["updated"] == ["alice"]
        assert broker_pid() == pid
        assert wait_for(lambda: Client(1883, "alice", new["alice"]).connect() or False)
        old = Client(1883, "alice", passwords["alice"])
        assert old.connect() is False
        assert not bob.disconnected.is_set()
        publisher = Client(1883, "alice", new["alice"])
        assert publisher.connect()
        publisher.publish("sensors/live", b"after reload")  # alice may not write live/#
        publisher.close()
        other = Client(1883, "bob", passwords["bob"])
        assert other.connect()
        other.publish("live/x", b"still here")
        other.close()
        assert bob.get() == ("live/x", b"still here", 1)
    finally:
        bob.close()
        salt_local.write_pillar(base_pillar(passwords))
        rc, states, _ = salt_local.apply()
        assert rc == 0 and not failed(states)


def test_listener_change_restarts_the_broker(salt_local, applied, passwords):
    pid = broker_pid()
    pillar = base_pillar(passwords)
    # A listener's own setting (read only at start).
    pillar["mosquitto"]["listeners"] = {"mqtts": {"options": {"max_qos": 1}}}
    try:
        salt_local.write_pillar(pillar)
        rc, states, err = salt_local.apply()
        assert rc == 0 and not failed(states), failed(states)
        assert "mosquitto-runtime-service-running" in changed(states)
        assert "mosquitto-runtime-service-reloaded" not in changed(states)
        assert wait_for(lambda: broker_pid() != pid)
        lines = pathlib.Path("/etc/mosquitto/mosquitto.conf").read_text().splitlines()
        assert lines.index("max_qos 1") > lines.index("listener 8883")
    finally:
        salt_local.write_pillar(base_pillar(passwords))
        rc, states, _ = salt_local.apply()
        assert rc == 0 and not failed(states)


def test_user_removed_from_pillar_is_removed_and_disconnected(salt_local, applied, passwords):
    bob = Client(1883, "bob", passwords["bob"])
    assert bob.connect()
    pillar = base_pillar(passwords)
    del pillar["mosquitto"]["users"]["bob"]
    try:
        salt_local.write_pillar(pillar)
        rc, states, err = salt_local.apply()
        assert rc == 0 and not failed(states)
        assert changed(states)["mosquitto-configure-users-passwd-managed"]["removed"] == ["bob"]
        assert "bob:" not in pathlib.Path("/etc/mosquitto/passwd").read_text()
        assert bob.disconnected.wait(10)
    finally:
        bob.client.loop_stop()
        salt_local.write_pillar(base_pillar(passwords))
        rc, states, _ = salt_local.apply()
        assert rc == 0 and not failed(states)


def _tree_digest(root="/etc/mosquitto"):
    out = {}
    for path in sorted(pathlib.Path(root).rglob("*")):
        if path.is_file():
            st = path.stat()
            out[str(path)] = (_digest(path), st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
    return out


@pytest.mark.parametrize("bad,message", [
    ({"ports": {"mqtts": 70000}}, "mosquitto:ports:mqtts: must be between 1 and 65535"),
    ({"domain": ""}, "mosquitto:domain: must be a DNS name"),
    ({"users": {"eve:il": {"password": "x"}}}, "mosquitto:users:eve:il: bad user name"),
    ({"users": {"carol": {}}}, "mosquitto:users:carol:password: missing"),
    ({"colour": "blue"}, "mosquitto:colour: unknown key"),
    # mosquitto_passwd's rule, applied while rendering (before any state).
    ({"users": {"#ops": {"password": "x"}}}, "mosquitto:users:#ops: bad user name: username"),
    ({"config": {"per_listener_settings": True}}, "mosquitto:config:per_listener_settings: is managed by the formula"),
    ({"config": {"max_connections": 10}}, "mosquitto:config:max_connections: is managed by the formula"),
    ({"config": {"max_qos": 1}}, "mosquitto:config:max_qos: is a per-listener option"),
])
def test_bad_pillar_fails_before_anything_changes(salt_local, applied, passwords, bad, message):
    pillar = base_pillar(passwords)
    pillar["mosquitto"].update(bad)
    before, pid = _tree_digest(), broker_pid()
    try:
        salt_local.write_pillar(pillar)
        rc, out, err = salt_local.apply()
        assert rc != 0
        assert message in str(out)
        for secret in passwords.values():
            assert secret not in str(out)
        assert _tree_digest() == before
        assert broker_pid() == pid
    finally:
        salt_local.write_pillar(base_pillar(passwords))
