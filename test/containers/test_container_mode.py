"""Container mode end to end: the formula applied with `salt-call --local`,
the broker in a container of the suite's own Docker engine, real clients
(the original's mosquitto_sub/pub, paho) against it.

Tests share one applied state and run in file order; pillar-changing tests
come later and put the pillar back; clean.sls runs last.
"""
import os
import pathlib
import signal
import socket
import subprocess
import urllib.request

import pytest

from scripts.saltlocal import changed, failed
from test.support.container import CA, DATA, DOMAIN, ETC, IMAGE, NAME, OTHER_IMAGE, PORTS, pillar, wait_for
from test.support.localhost import accepts
from test.support.mqtt import Client

pytestmark = pytest.mark.containers

MQTT, MQTTS = PORTS["mqtt"], PORTS["mqtts"]


def attrs(engine):
    return engine.client().containers.get(NAME).attrs


def proc_status(pid):
    fields = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return fields


def nofile_limit(pid):
    for line in pathlib.Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return [int(v) for v in line.split()[3:5]]
    raise AssertionError("no nofile limit")


def connects(port, user, password, **kw):
    """True once the broker accepts these credentials; None while it is down."""
    try:
        return Client(port, user, password, **kw).connect() or None
    except OSError:
        return None


def test_broker_runs_hardened_in_its_container(applied, engine):
    info = attrs(engine)
    host = info["HostConfig"]
    assert info["State"]["Running"] and info["Config"]["Image"] == IMAGE
    assert info["Config"]["User"] == "1883:1883"
    assert host["NetworkMode"] == "host"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["RestartPolicy"]["Name"] == "unless-stopped"
    assert sorted(host["Binds"]) == [f"{ETC}:{ETC}:ro", f"{DATA}:{DATA}:rw"]
    # What the kernel says about the broker process itself.
    pid = info["State"]["Pid"]
    status = proc_status(pid)
    assert status["Name"] == ["mosquitto"]
    assert status["Uid"] == ["1883"] * 4 and status["Gid"] == ["1883"] * 4
    assert status["CapEff"] == ["0000000000000000"] and status["CapBnd"] == ["0000000000000000"]
    assert status["NoNewPrivs"] == ["1"]
    assert nofile_limit(pid) == [16384, 16384]


def test_container_cannot_write_its_root_or_config_nor_see_the_ca_key(applied, engine):
    container = engine.client().containers.get(NAME)
    for path in ("/usr/local/x", f"{ETC}/x", "/tmp/x"):
        code, out = container.exec_run(["touch", path])
        assert code != 0 and b"Read-only file system" in out, (path, out)
    # The CA key and the exporter's password sit on the host inside the
    # mounted dir; an empty tmpfs hides them.
    assert os.path.exists(f"{ETC}/ca/ca.key") and os.path.exists(f"{ETC}/exporter/password")
    for hidden in ("ca", "exporter"):
        code, out = container.exec_run(["ls", "-A", f"{ETC}/{hidden}"])
        assert out.strip() == b"" or b"Permission denied" in out, out
    code, out = container.exec_run(["cat", f"{ETC}/ca/ca.key"])
    assert code != 0
    # The broker's own files are readable by its uid.
    code, out = container.exec_run(["cat", f"{ETC}/certs/server.key"])
    assert code == 0 and b"PRIVATE KEY" in out


def test_files_belong_to_the_account_with_the_containers_ids(applied):
    import grp
    import pwd
    assert pwd.getpwnam("mosquitto-ctr").pw_uid == 1883 and grp.getgrnam("mosquitto-ctr").gr_gid == 1883
    for path in (f"{ETC}/passwd", f"{ETC}/acl", f"{ETC}/mosquitto.conf", f"{ETC}/certs/server.key"):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o777)) == (0, 1883, "0o640"), path
    st = os.stat(DATA)
    assert (st.st_uid, st.st_gid) == (1883, 1883)


def test_health_check_reports_healthy(applied, engine):
    assert wait_for(lambda: attrs(engine)["State"].get("Health", {}).get("Status") == "healthy", 30), \
        attrs(engine)["State"].get("Health")


def test_state_output_never_shows_secrets(applied, passwords, engine):
    dump = repr(applied)
    for secret in passwords.values():
        assert secret not in dump
    assert "PRIVATE KEY" not in dump
    exporter_pw = pathlib.Path(f"{ETC}/exporter/password").read_text().strip()
    assert exporter_pw and exporter_pw not in dump
    # Nor in what the engine keeps about the container.
    config = repr(attrs(engine))
    assert exporter_pw not in config and not any(s in config for s in passwords.values())


def test_original_pub_sub_commands_over_tls_by_name(applied, hosts_ns, passwords):
    sub = ["mosquitto_sub", "-h", DOMAIN, "-t", "sensors/temp", "-p", str(MQTTS), "--cafile", CA,
           "-u", "alice", "-P", passwords["alice"], "-C", "1", "-W", "10"]
    pub = ["mosquitto_pub", "-h", DOMAIN, "-t", "sensors/temp", "-p", str(MQTTS), "--cafile", CA,
           "-u", "alice", "-P", passwords["alice"], "-m", "21.5", "-q", "1", "-r"]
    assert hosts_ns(pub).returncode == 0
    result = hosts_ns(sub)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "21.5"


@pytest.mark.parametrize("creds", [("alice", "wrong"), ("nobody", "x"), (None, None)],
                         ids=["wrong-password", "unknown-user", "anonymous"])
@pytest.mark.parametrize("port,tls", [(MQTT, False), (MQTTS, True)], ids=["mqtt", "mqtts"])
def test_bad_credentials_are_refused(applied, creds, port, tls):
    client = Client(port, *creds, cafile=CA if tls else None)
    assert client.connect() is False
    assert client.reason is not None and client.reason.is_failure


def test_plain_mqtt_on_the_tls_port_is_refused(applied, passwords):
    client = Client(MQTTS, "alice", passwords["alice"])
    with pytest.raises((TimeoutError, OSError)):
        if client.connect(timeout=5) is False:
            raise OSError("refused")


def test_plain_listener_is_on_loopback_only(applied, passwords):
    listening = subprocess.run(["ss", "-Hltn", f"sport = :{MQTT}"], capture_output=True, text=True).stdout
    assert f"127.0.0.1:{MQTT}" in listening
    assert f"0.0.0.0:{MQTT}" not in listening and f"[::]:{MQTT}" not in listening
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", MQTT), timeout=2)
    socket.create_connection(("127.0.0.2", MQTTS), timeout=2).close()
    good = Client(MQTT, "alice", passwords["alice"])
    assert good.connect()
    good.close()


def test_exporter_on_the_host_reads_the_container_broker(applied):
    def scrape():
        text = urllib.request.urlopen(f"http://127.0.0.1:{PORTS['exporter']}/metrics", timeout=5).read().decode()
        return "broker_info{version=\"2.0.11\"} 1.0" in text and text
    assert wait_for(scrape, 30), "the exporter never reported the broker"


def test_second_apply_changes_nothing(salt_local, applied):
    rc, states, err = salt_local.apply()
    assert rc == 0 and not failed(states), failed(states)
    assert changed(states) == {}


def test_test_mode_changes_nothing_and_reports_nothing(salt_local, applied):
    rc, states, err = salt_local.apply(test=True)
    assert rc == 0, err
    assert changed(states) == {}


def test_engine_restarts_the_broker_after_it_dies(applied, engine, passwords):
    before = attrs(engine)
    os.kill(before["State"]["Pid"], signal.SIGKILL)
    assert wait_for(lambda: attrs(engine)["RestartCount"] > before["RestartCount"]
                    and attrs(engine)["State"]["Running"], 30), attrs(engine)["State"]
    assert attrs(engine)["Id"] == before["Id"]
    assert wait_for(lambda: connects(MQTT, "bob", passwords["bob"]), 20)


def test_password_rotation_reloads_and_keeps_other_clients(salt_local, applied, engine, passwords):
    bob = Client(MQTTS, "bob", passwords["bob"], cafile=CA)
    assert bob.connect()
    bob.subscribe("live/#")
    before = attrs(engine)
    new = dict(passwords, alice="rotated-" + passwords["alice"])
    try:
        salt_local.write_pillar(pillar(new))
        rc, states, _ = salt_local.apply(test=True)
        assert {"mosquitto-configure-users-passwd-managed", "mosquitto-runtime-container-broker-reloaded"} \
            <= set(changed(states))
        assert Client(MQTT, "alice", passwords["alice"]).connect()  # not done yet
        rc, states, err = salt_local.apply()
        assert rc == 0 and not failed(states), failed(states)
        assert set(changed(states)) == {"mosquitto-configure-users-passwd-managed",
                                        "mosquitto-runtime-container-broker-reloaded"}
        after = attrs(engine)
        # Same container, same process: a SIGHUP, not a restart.
        assert (after["Id"], after["State"]["Pid"]) == (before["Id"], before["State"]["Pid"])
        assert wait_for(lambda: connects(MQTT, "alice", new["alice"]))
        assert Client(MQTT, "alice", passwords["alice"]).connect() is False
        assert not bob.disconnected.is_set()
        other = Client(MQTT, "alice", new["alice"])
        assert other.connect()
        other.publish("sensors/x", b"-")
        other.close()
        pub = Client(MQTT, "bob", passwords["bob"])
        assert pub.connect()
        pub.publish("live/x", b"still here")
        pub.close()
        assert bob.get(timeout=10) == ("live/x", b"still here", 1)
    finally:
        bob.close()
        salt_local.write_pillar(pillar(passwords))
        rc, states, _ = salt_local.apply()
        assert rc == 0 and not failed(states)


def _queue_for_offline_subscriber(passwords, client_id, count=3):
    sub = Client(MQTT, "bob", passwords["bob"], client_id=client_id, clean=False)
    assert sub.connect()
    sub.subscribe("queue/#", qos=1)
    sub.close()
    pub = Client(MQTT, "bob", passwords["bob"])
    assert pub.connect()
    for i in range(count):
        pub.publish(f"queue/{i}", f"m{i}".encode(), qos=1)
    pub.close()



def _receive_queued(passwords, client_id, count=3):
    assert wait_for(lambda: accepts(MQTT), 20)
    sub = Client(MQTT, "bob", passwords["bob"], client_id=client_id, clean=False)
    assert sub.connect()
    try:
        return sorted(sub.get(timeout=10)[1] for _ in range(count))
    finally:
        sub.close()


def test_listener_change_restarts_the_container_and_queued_messages_survive(
        salt_local, applied, engine, passwords):
    _queue_for_offline_subscriber(passwords, "queue-restart")
    before = attrs(engine)
    changed_pillar = pillar(passwords)
    changed_pillar["mosquitto"]["max_keepalive"] = 600
    try:
        salt_local.write_pillar(changed_pillar)
        rc, states, err = salt_local.apply()
        assert rc == 0 and not failed(states), failed(states)
        assert set(changed(states)) == {"mosquitto-configure-broker-config-file-managed",
                                        "mosquitto-runtime-container-broker-restarted"}
        after = attrs(engine)
        assert after["Id"] == before["Id"] and after["State"]["StartedAt"] != before["State"]["StartedAt"]
        assert "max_keepalive 600" in pathlib.Path(f"{ETC}/mosquitto.conf").read_text()
        assert _receive_queued(passwords, "queue-restart") == [b"m0", b"m1", b"m2"]
    finally:
        salt_local.write_pillar(pillar(passwords))
        rc, states, _ = salt_local.apply()
        assert rc == 0 and not failed(states)


def test_queued_messages_survive_the_container_being_recreated(salt_local, applied, engine, passwords):
    """The operator removes the container (docker stop + rm); the next apply
    creates a new one on the same data directory."""
    _queue_for_offline_subscriber(passwords, "queue-recreate")
    before = attrs(engine)["Id"]
    engine.docker("stop", NAME)  # SIGTERM: the broker saves its database
    engine.docker("rm", NAME)
    rc, states, err = salt_local.apply()
    assert rc == 0 and not failed(states), failed(states)
    assert "mosquitto-runtime-container-broker-running" in changed(states)
    assert attrs(engine)["Id"] != before
    assert _receive_queued(passwords, "queue-recreate") == [b"m0", b"m1", b"m2"]


def test_bad_container_pillar_fails_before_anything_changes(salt_local, applied, engine, passwords):
    before = attrs(engine)["Id"]
    conf = pathlib.Path(f"{ETC}/mosquitto.conf").read_bytes()
    try:
        salt_local.write_pillar(pillar(passwords, uid=0, network="bridge"))
        rc, states, err = salt_local.apply()
        text = repr(states) + err
        assert rc != 0
        assert "mosquitto:container:uid: must not be 0" in text
        assert "mosquitto:container:network: must be host or the name" in text
        assert attrs(engine)["Id"] == before
        assert pathlib.Path(f"{ETC}/mosquitto.conf").read_bytes() == conf
    finally:
        salt_local.write_pillar(pillar(passwords))


def test_a_host_account_the_formula_did_not_make_is_refused(salt_local, applied, engine, passwords):
    import grp
    import pwd
    before = (pwd.getpwnam("nobody"), grp.getgrnam("nogroup"), attrs(engine)["Id"])
    conf = pathlib.Path(f"{ETC}/mosquitto.conf").read_bytes()
    bad = pillar(passwords)
    bad["mosquitto"]["lookup"]["service"].update({"user": "nobody", "group": "nogroup"})
    try:
        salt_local.write_pillar(bad)
        rc, states, err = salt_local.apply()
        assert rc != 0
        assert "Host account nobody (uid 65534) was not made by this formula" in repr(states)
        assert (pwd.getpwnam("nobody"), grp.getgrnam("nogroup"), attrs(engine)["Id"]) == before
        assert pathlib.Path(f"{ETC}/mosquitto.conf").read_bytes() == conf
    finally:
        salt_local.write_pillar(pillar(passwords))


def test_an_image_the_formula_did_not_build_with_another_uid(salt_local, applied, engine, passwords):
    """A second local image whose broker runs as 2883: the account, the
    files and the data follow; queued messages survive the switch."""
    _queue_for_offline_subscriber(passwords, "queue-image")
    try:
        salt_local.write_pillar(pillar(passwords, image=OTHER_IMAGE, uid=2883, gid=2883))
        rc, states, err = salt_local.apply()
        assert rc == 0 and not failed(states), failed(states)
        info = attrs(engine)
        assert info["Config"]["Image"] == OTHER_IMAGE and info["Config"]["User"] == "2883:2883"
        assert proc_status(info["State"]["Pid"])["Uid"] == ["2883"] * 4
        assert os.stat(f"{ETC}/passwd").st_gid == 2883 and os.stat(DATA).st_uid == 2883
        assert _receive_queued(passwords, "queue-image") == [b"m0", b"m1", b"m2"]
        client = Client(MQTTS, "alice", passwords["alice"], cafile=CA)
        assert client.connect()
        client.close()
        rc, states, _ = salt_local.apply()
        assert rc == 0 and changed(states) == {}
    finally:
        salt_local.write_pillar(pillar(passwords))
        rc, states, _ = salt_local.apply()
        assert rc == 0 and not failed(states)


NETWORK, SUBNET, BROKER_IP, PUBLISHED = "mqctr-net", "198.19.0.0/24", "198.19.0.10", 18884


def test_named_network_with_fixed_address_and_published_tls_port(salt_local, applied, engine,
                                                                  passwords, tmp_path):
    """The option to host networking: a network the formula creates, the
    broker at a fixed address on it, its TLS port published on the host's
    loopback. The plain listener stays inside the container. The pillar is
    left so for the clean test, which must remove the network too."""
    salt_local.write_pillar(pillar(passwords, network=NETWORK, subnet=SUBNET, ip=BROKER_IP,
                                   publish=[f"127.0.0.1:{PUBLISHED}:{MQTTS}"]))
    rc, states, err = salt_local.apply()
    assert rc == 0 and not failed(states), failed(states)
    assert "mosquitto-build-container-network-present" in changed(states)
    info = attrs(engine)
    assert info["HostConfig"]["NetworkMode"] == NETWORK
    assert list(info["NetworkSettings"]["Networks"]) == [NETWORK]
    assert info["NetworkSettings"]["Networks"][NETWORK]["IPAMConfig"]["IPv4Address"] == BROKER_IP
    assert DOMAIN in info["NetworkSettings"]["Networks"][NETWORK]["Aliases"]  # its name there
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", MQTT), timeout=2)  # not the host's any more
    for host, port in ((BROKER_IP, MQTTS), ("127.0.0.1", PUBLISHED)):
        # The certificate's name, resolved to where the broker is reached.
        hosts = tmp_path / "hosts"
        hosts.write_text(f"{host} {DOMAIN}\n")
        result = subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount --bind {hosts} /etc/hosts && exec \"$@\"", "sh",
             "mosquitto_pub", "-h", DOMAIN, "-p", str(port), "--cafile", CA, "-u", "alice",
             "-P", passwords["alice"], "-t", "sensors/net", "-m", "x", "-q", "1"],
            capture_output=True, text=True, timeout=20)
        assert result.returncode == 0, (host, port, result.stderr)
    rc, states, _ = salt_local.apply()
    assert rc == 0 and changed(states) == {}


def test_zz_clean_removes_the_container_mode(salt_local, applied, engine):
    rc, states, err = salt_local.apply("mosquitto.clean")
    assert rc == 0 and not failed(states), failed(states)
    assert engine.docker("ps", "-aq", "--filter", f"name=^{NAME}$").stdout.strip() == ""
    assert engine.docker("network", "inspect", NETWORK, check=False).returncode != 0
    import pwd
    with pytest.raises(KeyError):
        pwd.getpwnam("mosquitto-ctr")
    for path in (f"{ETC}/mosquitto.conf", f"{ETC}/passwd", f"{ETC}/acl", f"{ETC}/certs/server.key"):
        assert not os.path.exists(path)
    assert os.path.exists(CA), "clean.sls keeps the CA"
    # The image stays (the operator's), the host's own broker is untouched.
    assert engine.docker("image", "inspect", IMAGE, check=False).returncode == 0
    rc, states, _ = salt_local.apply("mosquitto.clean")
    assert rc == 0 and changed(states) == {}
