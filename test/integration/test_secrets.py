"""No secret leaves the pillar, and the TLS profile, on this host.

This module applies its own pillar: the suite's users, a user given by
password_hash and a bridge with a remote_password to a real broker on
loopback (started here, plain MQTT, password auth). Every secret of that
pillar, the exporter's generated password and the server and CA private
keys are then looked for in everything Salt shows or keeps: the show_*
functions, apply returns (real and test=True), a `-l debug` log of a run
that changes passwords, and the local minion's cache directory.

At the end the suite's own pillar is applied again (the later modules
expect it).
"""
import json
import pathlib
import re
import secrets
import stat
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from scripts.saltlocal import REPO, SALT_CALL, SaltLocal, changed, failed
from test.support.broker import Broker
from test.support.integration import base_pillar, broker_pid
from test.support.localhost import wait_for
from test.support.mqtt import Client

pytestmark = pytest.mark.integration

BRIDGE = "int-remote"
BRIDGE_USER = "bridge-int"
BRIDGES_DIR = pathlib.Path("/etc/mosquitto/bridges.d")
AEAD_ECDHE = {  # what tls:profile intermediate allows on TLS 1.2
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
}


def _hash(password):
    # Loaded as Salt would give it its _utils (its hash rules live there).
    from test.support.modules import load
    return load("_modules", "mosquitto_passwd").hash_password(password)


class Remote:
    """The bridge's remote: a real broker on loopback with one user."""

    def __init__(self, password):
        self.broker = Broker()
        self.passwd = self.broker.dir / "passwd"
        self.set_password(password, reload=False)
        self.broker.extra = f"allow_anonymous false\npassword_file {self.passwd}\n"

    def set_password(self, password, reload=True):
        self.passwd.write_text(f"{BRIDGE_USER}:{_hash(password)}\n")
        self.password = password
        if reload:
            self.broker.reload()

    def receives_from_the_bridge(self, local_password, timeout=60):
        """A message published on this host's broker arrives at the remote:
        the bridge logged in with its password."""
        sub = Client(self.broker.port, BRIDGE_USER, self.password)
        assert sub.connect()
        try:
            sub.subscribe("bridged/#")
            pub = Client(1883, "bob", local_password)
            assert pub.connect()
            try:
                deadline = time.monotonic() + timeout  # the bridge reconnects with backoff
                token = secrets.token_hex(4)
                while time.monotonic() < deadline:
                    pub.publish("bridged/probe", token)
                    try:
                        while True:
                            topic, payload, _ = sub.get(timeout=2)
                            if payload.decode() == token:
                                return True
                    except Exception:
                        pass
                return False
            finally:
                pub.close()
        finally:
            sub.close()


def secret_pillar(passwords, extra):
    pillar = base_pillar(passwords)
    m = pillar["mosquitto"]
    m["users"]["carol"] = {"password_hash": extra["carol_hash"]}
    m["bridges"] = {BRIDGE: {
        "address": f"127.0.0.1:{extra['remote_port']}",
        "topics": ["bridged/# out 1"],
        "remote_username": BRIDGE_USER,
        "remote_password": extra["bridge"],
        "tls": False,
        "cleansession": False,
        "notifications": True,
        "keepalive_interval": 30,
        "options": {"remote_clientid": "int-remote-bridge", "restart_timeout": 1},
    }}
    m["tls"]["profile"] = extra.get("profile", "intermediate")
    return pillar


@pytest.fixture(scope="module")
def extra():
    return {"bridge": "br:" + secrets.token_urlsafe(12), "carol_hash": _hash(secrets.token_urlsafe(12))}


@pytest.fixture(scope="module")
def remote(extra):
    r = Remote(extra["bridge"])
    with r.broker:
        extra["remote_port"] = r.broker.port
        yield r


@pytest.fixture(scope="module")
def host(tmp_path_factory, salt_local, passwords, extra, remote):
    """This module's salt-call, with a top file (for show_highstate) and the secret pillar."""
    top = tmp_path_factory.mktemp("top")
    (top / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
    sl = SaltLocal(tmp_path_factory.mktemp("salt-secrets"), file_roots=[REPO, top])
    sl.setup(secret_pillar(passwords, extra))
    sl.sync()
    rc, states, err = sl.apply()
    assert rc == 0 and not failed(states), (failed(states), err)
    sl.first_apply = states
    yield sl
    # The later modules expect the suite's own pillar.
    rc, states, err = salt_local.apply()
    assert rc == 0 and not failed(states), failed(states)


def all_secrets(passwords, extra):
    """Every secret of the pillar and of the host, by name."""
    found = {f"user {k}": v for k, v in passwords.items()}
    found["carol's hash"] = extra["carol_hash"]
    found["bridge remote_password"] = extra["bridge"]
    found.update(extra.get("old", {}))
    found["exporter password"] = pathlib.Path("/etc/mosquitto/exporter/password").read_text().strip()
    for path in ("/etc/mosquitto/certs/server.key", "/etc/mosquitto/ca/ca.key"):
        body = [line for line in pathlib.Path(path).read_text().splitlines() if not line.startswith("-----")]
        found[path] = "".join(body)
        for i, line in enumerate(body):
            found[f"{path} line {i}"] = line
    assert all(found.values())
    return found


def leaks(text, passwords, extra):
    return sorted(name for name, value in all_secrets(passwords, extra).items() if value in text)


def test_no_secret_in_show_functions_or_returns(host, passwords, extra):
    outputs = {"first apply": json.dumps(host.first_apply)}
    for fun in ("state.show_sls mosquitto", "state.show_low_sls mosquitto",
                "state.show_highstate", "state.show_lowstate"):
        rc, out, err = host.call(*fun.split())
        assert rc == 0, (fun, out, err)
        outputs[fun] = json.dumps(out) + err
    rc, out, err = host.apply(test=True)
    outputs["test=True"] = json.dumps(out) + err
    for name, text in outputs.items():
        assert leaks(text, passwords, extra) == [], name
    # What the states get instead: pillar keys, read while they run.
    show = outputs["state.show_sls mosquitto"]
    assert '"password_pillar": "mosquitto:users:alice:password"' in show
    assert '"password_hash_pillar": "mosquitto:users:carol:password_hash"' in show
    assert f'"remote_password_pillar": "mosquitto:bridges:{BRIDGE}:remote_password"' in show
    assert "mosquitto-configure-bridges-bridge-managed" in outputs["state.show_lowstate"]


def test_bridge_file_is_private_and_the_bridge_logs_in(host, remote, passwords):
    conf = pathlib.Path("/etc/mosquitto/mosquitto.conf").read_text()
    assert f"include_dir {BRIDGES_DIR}" in conf and "remote_password" not in conf
    st = BRIDGES_DIR.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, _gid("mosquitto"), 0o750)
    path = BRIDGES_DIR / f"{BRIDGE}.conf"
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, _gid("mosquitto"), 0o640)
    text = path.read_text()
    assert text.splitlines()[2] == f"connection {BRIDGE}"
    assert f"remote_password {remote.password}\n" in text
    for line in ("cleansession false", "notifications true", "keepalive_interval 30",
                 "remote_clientid int-remote-bridge", "restart_timeout 1"):
        assert line in text.splitlines(), line
    assert "bridge_cafile" not in text  # tls: false
    assert remote.receives_from_the_bridge(passwords["bob"])


def _gid(name):
    import grp
    return grp.getgrnam(name).gr_gid


def test_password_changes_restart_without_diff_or_secret_in_a_debug_log(host, remote, passwords, extra):
    """A new bridge password and a new user password, applied with
    `salt-call -l debug`: the broker restarts, the bridge logs in with the
    new password, and neither old nor new values are in the log, the
    returns or the minion's cache."""
    extra["old"] = {"old bridge password": extra["bridge"], "old alice": passwords["alice"]}
    new_alice = "a:" + secrets.token_urlsafe(12)
    extra["bridge"] = "br:" + secrets.token_urlsafe(12)
    pillar = secret_pillar(dict(passwords, alice=new_alice), extra)
    host.write_pillar(pillar)
    remote.set_password(extra["bridge"])
    pid = broker_pid()
    try:
        log_file = host.dir / "debug-run.log"
        cmd = [str(SALT_CALL), "--config-dir", str(host.dir), "--local", "--retcode-passthrough",
               "--out=json", "-l", "debug", "--log-file", str(log_file), "--log-file-level=debug",
               "state.apply", "mosquitto"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        states = json.loads(proc.stdout)["local"]
        bridge_change = changed(states)["mosquitto-configure-bridges-bridge-managed"]
        assert bridge_change == {"bridges": {"updated": [BRIDGE]}}
        assert changed(states)["mosquitto-configure-users-passwd-managed"] == {"updated": ["alice"]}
        assert wait_for(lambda: broker_pid() != pid, timeout=30), "a bridge change restarts the broker"
        log = proc.stdout + proc.stderr + log_file.read_text()
        assert re.search(r"\[DEBUG\s*\]", log) and "mosquitto_bridge" in log, "not a debug log of the run"
        all_out = dict(passwords, alice=new_alice)
        assert leaks(log, all_out, extra) == []
        assert "remote_password" not in json.dumps(states)  # no diff text of the bridge file
        assert "---" not in json.dumps(bridge_change) and "+++" not in json.dumps(bridge_change)
        cache = b"".join(p.read_bytes() for p in (host.dir / "cache").rglob("*") if p.is_file())
        assert leaks(cache.decode("utf-8", "replace"), all_out, extra) == []
        assert remote.receives_from_the_bridge(passwords["bob"])
        # The real values reached the files (not Salt's masked "**********").
        client = Client(1883, "alice", new_alice)
        assert client.connect()
        client.close()
    finally:
        passwords_restore = dict(passwords)
        host.write_pillar(secret_pillar(passwords_restore, extra))


def sslscan(port=8883):
    """{protocol: set of accepted ciphers} and the enabled protocols, by sslscan."""
    out = subprocess.run(["sslscan", "--no-colour", "--no-heartbleed", "--no-fallback",
                          "--no-renegotiation", "--no-compression", "--xml=-", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    root = ET.fromstring(out.stdout[out.stdout.index("<?xml"):])
    enabled = {f"{p.get('type')}v{p.get('version')}".upper() for p in root.iter("protocol")
               if p.get("enabled") == "1"}
    ciphers = {}
    for c in root.iter("cipher"):
        if c.get("status") in ("accepted", "preferred"):
            ciphers.setdefault(c.get("sslversion"), set()).add(c.get("cipher"))
    return enabled, ciphers


def test_intermediate_profile_offers_only_aead_ecdhe_on_tls12(host):
    enabled, ciphers = sslscan()
    assert enabled == {"TLSV1.2", "TLSV1.3"}, enabled
    assert ciphers.get("TLSv1.2") and ciphers["TLSv1.2"] <= AEAD_ECDHE, ciphers
    assert not any("CBC" in c or c.endswith("-SHA") for c in ciphers["TLSv1.2"])
    assert ciphers.get("TLSv1.3"), "TLS 1.3 keeps OpenSSL's suites"


def test_modern_profile_is_tls13_only(host, passwords, extra):
    host.write_pillar(secret_pillar(passwords, dict(extra, profile="modern")))
    try:
        rc, states, err = host.apply()
        assert rc == 0 and not failed(states), failed(states)
        assert "mosquitto-configure-broker-config-file-managed" in changed(states)
        enabled, ciphers = sslscan()
        assert enabled == {"TLSV1.3"}, (enabled, ciphers)
        assert set(ciphers) == {"TLSv1.3"}
        bridge = (BRIDGES_DIR / f"{BRIDGE}.conf").read_text()
        assert "bridge_tls_version" not in bridge  # this test bridge is plain
    finally:
        host.write_pillar(secret_pillar(passwords, extra))
