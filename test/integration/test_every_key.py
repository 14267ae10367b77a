"""pillar.example's keys that the base pillar leaves at their defaults,
applied for real in one run: per-listener options, the plain listener on
IPv6 loopback (broker, exporter endpoint, listening check), ACL patterns,
persistence off, an RSA server key, the exporter from a PyPI venv and a TOFS
template override. The module puts the base pillar back at the end."""
import pathlib
import queue
import shutil
import ssl
import subprocess
import threading

import paho.mqtt.client as mqtt
import pytest
import yaml

from scripts.saltlocal import REPO, SaltLocal, changed, failed
from test.support.integration import CA, base_pillar, broker_pid
from test.support.localhost import accepts, wait_for
from test.support.modules import load
from test.support.mqtt import Client

passwd = load("_modules", "mosquitto_passwd")

pytestmark = pytest.mark.integration

VENV = "/opt/mosquitto-exporter"
MARKER = "# custom template through TOFS"


def variant_pillar(passwords):
    pillar = base_pillar(passwords)
    m = pillar["mosquitto"]
    m["listeners"] = {"mqtt": {"bind_address": "::1"},
                      "mqtts": {"max_connections": 2, "options": {"mount_point": "tls/"}}}
    m["acl_patterns"] = ["readwrite clients/%c/#"]
    m["max_keepalive"] = 600
    # A user given as a mosquitto_passwd line (hashed here, not on the host).
    m["users"]["carol"] = {"password_hash": passwd.hash_password(passwords["bob"] + "-carol")}
    m["persistence"] = {"enabled": False}
    m["tls"]["key_type"] = "rsa"
    m["tls"]["key_size"] = 3072
    m["exporter"] = {"install": "venv", "venv_dir": VENV}
    m["tofs"] = {"path_prefix": "custom", "files_switch": ["id"],
                 "source_files": {"mosquitto-configure-broker-config-file-managed": ["my.conf.jinja"]}}
    return pillar


@pytest.fixture(scope="module")
def variant(salt_local, applied, passwords, tmp_path_factory):
    _, minion_id, _ = salt_local.call("grains.get", "id", check=True)
    # TOFS: a second file root with the operator's copy of the formula's
    # files (path_prefix: custom) and, for this minion only (files_switch:
    # [id]), their own template for mosquitto.conf.
    extra = tmp_path_factory.mktemp("tofs-root")
    shutil.copytree(REPO / "mosquitto" / "files" / "default", extra / "custom" / "files" / "default")
    own = extra / "custom" / "files" / minion_id
    own.mkdir(parents=True)
    (own / "my.conf.jinja").write_text(
        "{% include 'custom/files/default/mosquitto.conf.jinja' %}\n" + MARKER + "\n")
    salt = SaltLocal(tmp_path_factory.mktemp("salt-variant"),
                     file_roots=[*salt_local.file_roots, str(extra)])
    salt.setup(variant_pillar(passwords))
    salt.sync()
    # A venv left by an earlier run would hide its creation from pip.
    shutil.rmtree(VENV, ignore_errors=True)
    pid = broker_pid()
    rc, states, err = salt.apply()
    yield salt, rc, states, err, pid
    rc, states, err = salt_local.apply()
    assert rc == 0 and not failed(states), failed(states)


def test_variant_applies_restarts_and_converges(variant):
    salt, rc, states, err, pid = variant
    assert rc == 0 and not failed(states), (failed(states), err)
    done = changed(states)
    for sid in ("mosquitto-build-exporter-deps-venv-created", "mosquitto-build-exporter-deps-pip-installed",
                "mosquitto-configure-tls-server-cert-managed", "mosquitto-runtime-service-running",
                "mosquitto-runtime-exporter-service-running"):
        assert sid in done, sid
    assert wait_for(lambda: broker_pid() != pid)
    rc, states, err = salt.apply()
    assert rc == 0 and changed(states) == {}, changed(states)


def test_tofs_template_from_the_operators_file_root(variant):
    text = pathlib.Path("/etc/mosquitto/mosquitto.conf").read_text()
    assert text.rstrip().endswith(MARKER)
    assert "listener 1883 ::1" in text  # the included default template rendered too


def test_plain_listener_on_ipv6_loopback_end_to_end(variant, passwords):
    listening = subprocess.run(["ss", "-Hltn", "sport = :1883"], capture_output=True, text=True).stdout
    assert "[::1]:1883" in listening and "127.0.0.1:1883" not in listening, listening
    with pytest.raises(ConnectionRefusedError):
        Client(1883, "alice", passwords["alice"]).connect()
    client = Client(1883, "alice", passwords["alice"], host="::1")
    assert client.connect()
    client.close()
    env = pathlib.Path("/etc/default/mosquitto-exporter").read_text()
    assert "BROKER_ENDPOINT='tcp://[::1]:1883'" in env
    # The exporter parsed that endpoint and is connected over IPv6.
    assert wait_for(lambda: "mosquitto_exporter_connected 1.0" in _metrics(), timeout=30), _metrics()


def test_exporter_runs_from_the_pypi_venv(variant):
    pid = int(pathlib.Path("/run/mosquitto-exporter.pid").read_text())
    argv = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert argv[0].decode() == f"{VENV}/bin/python", argv
    out = subprocess.run([f"{VENV}/bin/python", "-c", "import paho.mqtt, prometheus_client; "
                          "print(paho.mqtt.__file__, prometheus_client.__file__)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.count(VENV) == 2, out  # from the venv, not Debian's packages
    # exactly the versions exporter:pip_pkgs asks for (defaults.yaml's)
    wanted = yaml.safe_load((REPO / "mosquitto/parameters/defaults.yaml").read_text())["values"]["exporter"]["pip_pkgs"]
    check = subprocess.run([f"{VENV}/bin/pip", "install", "--dry-run", "--no-index", *wanted],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_rsa_server_key_and_ip_address_san(variant, passwords):
    text = subprocess.run(["openssl", "x509", "-in", "/etc/mosquitto/certs/server.crt", "-noout", "-text"],
                          capture_output=True, text=True, check=True).stdout
    assert "Public-Key: (3072 bit)" in text and "rsaEncryption" in text
    assert "IP Address:127.0.0.1" in text
    # 127.0.0.1 verifies through its IP SAN; 127.0.0.2 reaches the same
    # listener but is not in the certificate.
    good = Client(8883, "alice", passwords["alice"], cafile=CA, host="127.0.0.1")
    assert good.connect()
    good.close()
    with pytest.raises(ssl.SSLCertVerificationError):
        Client(8883, "alice", passwords["alice"], cafile=CA, host="127.0.0.2").connect()


def test_listener_options_apply_to_their_listener_only(variant, passwords):
    # mosquitto 2.0.11 miscounts max_connections after a TLS handshake the
    # client aborted (seen: the 127.0.0.2 check above lets a 3rd and 4th in
    # afterwards): count from a fresh broker.
    pid = broker_pid()
    subprocess.run(["service", "mosquitto", "restart"], check=True, capture_output=True, timeout=60)
    assert wait_for(lambda: _pid_or_none() not in (None, pid))
    assert wait_for(lambda: accepts(8883), timeout=20)  # plain TCP: not miscounted
    tls = [Client(8883, "bob", passwords["bob"], cafile=CA) for _ in range(3)]
    plain = [Client(1883, "bob", passwords["bob"], host="::1") for _ in range(3)]
    try:
        assert tls[0].connect() and tls[1].connect()
        # max_connections 2 on mqtts: the third is turned away...
        assert _refused(tls[2])
        # ...while the plain listener takes three (besides the exporter).
        assert all(c.connect() for c in plain)
        # mount_point tls/ on mqtts: its topics live under tls/ for others.
        plain[0].subscribe("tls/#")
        tls[0].publish("sensors/mounted", b"via tls")
        assert plain[0].get(timeout=10)[:2] == ("tls/sensors/mounted", b"via tls")
    finally:
        for c in tls[:2] + plain:
            c.close()


def test_acl_pattern_gives_each_client_its_own_tree(variant, passwords):
    alice = Client(1883, "alice", passwords["alice"], client_id="dev1", host="::1")
    bob = Client(1883, "bob", passwords["bob"], host="::1")
    assert alice.connect() and bob.connect()
    try:
        alice.subscribe("clients/+/cmd")
        bob.publish("clients/dev2/cmd", b"for dev2")
        bob.publish("clients/dev1/cmd", b"for dev1")
        # alice's own rules (sensors/#, status/#) do not cover clients/; the
        # pattern lets client id dev1 read clients/dev1/# and nothing else.
        assert alice.get(timeout=10)[:2] == ("clients/dev1/cmd", b"for dev1")
        with pytest.raises(queue.Empty):
            alice.get(timeout=1)
    finally:
        alice.close()
        bob.close()


def test_password_hash_user_and_max_keepalive(variant, passwords):
    carol = passwords["bob"] + "-carol"
    assert "carol:$7$101$" in pathlib.Path("/etc/mosquitto/passwd").read_text()
    ok = Client(1883, "carol", carol, host="::1", keepalive=600)
    assert ok.connect()
    ok.close()
    assert Client(1883, "carol", "wrong", host="::1").connect() is False
    # max_keepalive (2.0: MQTT v5 only): a client asking for more is told
    # to use max_keepalive, in the CONNACK's Server Keep Alive.
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set("carol", carol)
    connack = {}
    done = threading.Event()

    def on_connect(c, userdata, flags, reason, props):
        connack.update(reason=reason, keepalive=getattr(props, "ServerKeepAlive", None))
        done.set()
    client.on_connect = on_connect
    client.connect("::1", 1883, keepalive=1200)
    client.loop_start()
    try:
        assert done.wait(10)
        assert not connack["reason"].is_failure and connack["keepalive"] == 600, connack
    finally:
        client.disconnect()
        client.loop_stop()


def test_persistence_off_loses_queued_messages_on_restart(variant, passwords):
    conf = pathlib.Path("/etc/mosquitto/mosquitto.conf").read_text()
    assert "persistence false" in conf and "persistence_location" not in conf
    sub = Client(1883, "bob", passwords["bob"], client_id="no-persist", clean=False, host="::1")
    assert sub.connect()
    sub.subscribe("volatile/#", qos=1)
    sub.close()
    pub = Client(1883, "bob", passwords["bob"], host="::1")
    assert pub.connect()
    pub.publish("volatile/1", b"queued", qos=1)
    pub.close()
    pid = broker_pid()
    subprocess.run(["service", "mosquitto", "restart"], check=True, capture_output=True, timeout=60)
    assert wait_for(lambda: _pid_or_none() not in (None, pid))
    sub = Client(1883, "bob", passwords["bob"], client_id="no-persist", clean=False, host="::1")
    assert wait_for(lambda: _connects(sub), timeout=20)
    try:
        # Without persistence the session and its queue died with the broker.
        with pytest.raises(queue.Empty):
            sub.get(timeout=2)
    finally:
        sub.close()


def _metrics():
    return subprocess.run(["curl", "-s", "http://127.0.0.1:9234/metrics"], capture_output=True, text=True).stdout


def _refused(client):
    try:
        return client.connect(timeout=5) is False
    except (OSError, TimeoutError):
        return True



def _pid_or_none():
    try:
        return broker_pid()
    except (OSError, ValueError):
        return None


def _connects(client):
    try:
        return client.connect(timeout=5)
    except (OSError, TimeoutError):
        return False
