"""Interop with the real mosquitto 2.0 tools: the broker accepts the files we
write, and we verify the entries mosquitto_passwd writes.

mosquitto_passwd has no verify mode, so the broker is the judge: a throw-away
broker on a free loopback port with `allow_anonymous false`.
"""

import shutil
import subprocess
import time

import pytest

from test.support.broker import Broker
from test.support.modules import load

passwd = load("_modules", "mosquitto_passwd")



@pytest.fixture(autouse=True)
def real_tools():
    """A missing tool fails these tests: skipped, they would prove nothing."""
    missing = [t for t in ("mosquitto", "mosquitto_passwd", "mosquitto_pub") if not shutil.which(t)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed (make setup-test installs them)")

V6 = (
    "$6$njERlZMi/7DzNB9E$iiavfuXvUm8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHG"
    "k+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw=="
)
USERS = {
    "alice": "plain",
    "bob": "with: colon and spaces ",
    "jörg": "pässwörd€",
    "a b": "x",
}


def can_publish(port, user, password):
    proc = subprocess.run(
        ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
         "-u", user, "-P", password, "-t", "test/passwd", "-m", "hello"],
        capture_output=True, text=True, timeout=20,
    )
    if proc.returncode not in (0, 5):
        # 5 is MOSQ_ERR_CONN_REFUSED; anything else is a broken test setup.
        pytest.fail(f"mosquitto_pub failed unexpectedly: {proc.returncode} {proc.stderr}")
    return proc.returncode == 0


@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("hash_args", [[], ["-H", "sha512-pbkdf2"]], ids=["default", "pbkdf2"])
def test_mosquitto_passwd_entries_verify(tmp_path, user, hash_args):
    path = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", *hash_args, "-c", "-b", str(path), user, USERS[user]],
        check=True, capture_output=True,
    )
    hashed = passwd.read_file(path)[user]
    assert hashed.startswith("$7$101$")
    assert passwd.check_hash(hashed)
    assert passwd.verify_password(USERS[user], hashed)
    assert not passwd.verify_password(USERS[user] + "x", hashed)
    # Our own run over the tool's file keeps the tool's entry as is.
    before = path.read_bytes()
    assert passwd.plan(str(path), {user: {"password": USERS[user]}})["unchanged"] == [user]
    assert path.read_bytes() == before


def test_mosquitto_passwd_sha512_entries_verify(tmp_path):
    path = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-H", "sha512", "-c", "-b", str(path), "bob", USERS["bob"]],
        check=True, capture_output=True,
    )
    hashed = passwd.read_file(path)["bob"]
    assert hashed.startswith("$6$") and passwd.check_hash(hashed)
    assert passwd.verify_password(USERS["bob"], hashed)


def test_broker_accepts_our_file(tmp_path):
    path = tmp_path / "passwd"
    users = {name: {"password": pw} for name, pw in USERS.items()}
    users["test"] = {"password_hash": V6}
    passwd.manage(str(path), users)
    conf = f"allow_anonymous false\npassword_file {path}\n"
    with Broker(extra=conf) as broker:
        for name, pw in USERS.items():
            assert can_publish(broker.port, name, pw), f"{name} refused\n{broker.logtext()}"
            assert not can_publish(broker.port, name, pw + "x"), f"{name} wrong password accepted"
        assert can_publish(broker.port, "test", "test"), broker.logtext()
        assert not can_publish(broker.port, "nobody", "plain")
        assert "removing entry" not in broker.logtext()


def test_broker_sees_update_and_removal_after_reload(tmp_path):
    path = tmp_path / "passwd"
    passwd.manage(str(path), {"alice": {"password": "one"}, "bob": {"password": "b"}})
    conf = f"allow_anonymous false\npassword_file {path}\n"
    with Broker(extra=conf) as broker:
        assert can_publish(broker.port, "alice", "one")
        passwd.manage(str(path), {"alice": {"password": "two"}})
        broker.reload()
        deadline = time.monotonic() + 10
        while can_publish(broker.port, "alice", "one") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert can_publish(broker.port, "alice", "two"), broker.logtext()
        assert not can_publish(broker.port, "alice", "one")
        assert not can_publish(broker.port, "bob", "b")


def paho_connack(port, user, password):
    """CONNACK code for a paho login; paho 1.6 (Debian) and 2.x (PyPI)."""
    import paho.mqtt.client as mqtt
    if hasattr(mqtt, "CallbackAPIVersion"):
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    else:
        client = mqtt.Client()
    client.username_pw_set(user, password)
    result = []
    # v1: (client, userdata, flags, rc); v2 adds properties; rc is 4th in both.
    client.on_connect = lambda *args: result.append(args[3])
    client.connect("127.0.0.1", port)
    deadline = time.monotonic() + 10
    while not result and time.monotonic() < deadline:
        client.loop(0.1)
    client.disconnect()
    return result[0] if result else None


def test_paho_client_authenticates(tmp_path):
    # The exporter's path: generated secret -> our hash -> paho login.
    path, secret_file = tmp_path / "passwd", str(tmp_path / "exporter.secret")
    secret = passwd.ensure_secret(secret_file)
    passwd.manage(str(path), {"exporter": {"password": secret}})
    conf = f"allow_anonymous false\npassword_file {path}\n"
    with Broker(extra=conf) as broker:
        assert paho_connack(broker.port, "exporter", secret) == 0, broker.logtext()
        refused = paho_connack(broker.port, "exporter", "wrong")
        assert refused is not None and refused != 0
