"""Issue #20: what a spoke, the broker user or a pillar typo sends is data,
never a lever. The strict hash shape (pillar and mine), a poisoned spoke's
mine entry skipped while the hub's password file is still written, `acl: []`
on a real broker, the opt-ins for plain MQTT off loopback and for plugins,
the bounded accept, and every value regex refusing a trailing newline."""
import base64
import logging
import os
import queue
import time

import jinja2
import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

from test.support.broker import Broker, wait_port
from test.support.config import ROOT, cfg, error_of, settings, validate
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)
from test.support.modules import load, load_util
from test.support.mqtt import Client

hashes = load_util("mosquitto_hashes")
names = load_util("mosquitto_names")
shell = load_util("mosquitto_shell")
passwd = load("_modules", "mosquitto_passwd")
passwd_state = load("_states", "mosquitto_passwd")
cluster = load("_modules", "mosquitto_cluster")
bridge = load("_modules", "mosquitto_bridge")
MINE_SPOKE = names.MINE_NAMES["cluster_spoke"]

SALT16 = base64.b64encode(bytes(range(12))).decode()
HASH88 = base64.b64encode(bytes(range(64))).decode()
V6 = "$6$njERlZMi/7DzNB9E$iiavfuXvUm8iyDZArTy7smTxh07GXXOrOsqxfW6gkOYVXHGk+W+i/8d3xDxrMwEPygEBhoA8A/gjQC0N2M4Lkw=="


# ------------------------------------------------------------ the hash shape


@pytest.mark.parametrize("good", [f"$7$101${SALT16}${HASH88}", f"$7$1000${SALT16}${HASH88}",
                                  f"$7${hashes.MAX_ITERATIONS}${SALT16}${HASH88}", V6])
def test_accepted_hash_shapes(good):
    assert hashes.problem(good) is None
    assert passwd.check_hash(good)


@pytest.mark.parametrize("bad, why", [
    (f"$7$0${SALT16}${HASH88}", "iteration count"),
    (f"$7${hashes.MAX_ITERATIONS + 1}${SALT16}${HASH88}", "iteration count"),
    (f"$7$999999999${SALT16}${HASH88}", "iteration count"),
    (f"$7$99999999999999999999${SALT16}${HASH88}", "iteration count"),
    (f"$7$0101${SALT16}${HASH88}", "iteration count"),
    (f"$7$+101${SALT16}${HASH88}", "iteration count"),
    (f"$7$ 101${SALT16}${HASH88}", "iteration count"),
    (f"$7$101${SALT16[:-1]}${HASH88}", "salt"),
    (f"$7$101${SALT16}AAAA${HASH88}", "salt must be 12 bytes"),
    (f"$7$101${SALT16[:-1]}-${HASH88}", "salt is not standard base64"),
    (f"$7$101${SALT16}${HASH88[:-4]}", "hash must be 64 bytes"),
    (f"$7$101${SALT16}${HASH88[:-3]}B==", "not canonical"),
    (f"$7$101${SALT16}${HASH88}\n", "hash is not standard base64"),
    (f"$7$101${SALT16}${HASH88} ", "hash is not standard base64"),
    (f"$7$101${SALT16}${HASH88}$", "is not a mosquitto password hash"),
    (f"$5$101${SALT16}${HASH88}", "is not a mosquitto password hash"),
    ("plain", "is not a mosquitto password hash"),
    (None, "must be a string"),
    (f"$6${SALT16}${HASH88[:-4]}", "hash must be 64 bytes"),
])
def test_refused_hash_shapes_say_why_never_quoting_the_value(bad, why):
    problem = hashes.problem(bad)
    assert problem and why in problem
    assert SALT16 not in problem and HASH88[:20] not in problem
    with pytest.raises(SaltInvocationError, match="invalid password hash"):
        passwd.check_hash(bad)


def test_a_spoke_may_publish_only_7():
    assert "is not a mosquitto password hash" in hashes.problem(V6, allow_sha512=False)


def test_no_pbkdf2_runs_with_an_absurd_count():
    """Verifying (what a rewrite does for each existing line) refuses a
    count above the bound instead of running it."""
    absurd = f"$7$999999999${SALT16}${HASH88}"
    start = time.monotonic()
    assert passwd.verify_password("x", absurd) is False
    assert time.monotonic() - start < 0.5
    with pytest.raises(SaltInvocationError, match=f"from 1 to {hashes.MAX_ITERATIONS}"):
        passwd.hash_password("x", iterations=hashes.MAX_ITERATIONS + 1)


@pytest.mark.parametrize("hashed, message", [
    (f"$7$999999999${SALT16}${HASH88}", f"mosquitto:users:carol:password_hash: the iteration count must be a "
                                        f"whole number from 1 to {hashes.MAX_ITERATIONS}"),
    (f"$7$101${SALT16}${HASH88}\n", "mosquitto:users:carol:password_hash: the hash is not standard base64"),
    (f"$6$AAAA${HASH88}", "mosquitto:users:carol:password_hash: the salt must be 12 bytes"),
])
def test_pillar_hash_names_the_key_and_what_is_accepted(hashed, message):
    assert message in error_of(users={"carol": {"password_hash": hashed}})


def test_pillar_keeps_accepting_6_and_bounded_7():
    out = cfg.validate(settings(users={"t": {"password_hash": V6},
                                       "u": {"password_hash": f"$7$1000${SALT16}${HASH88}"}}))
    assert out["users"]["t"]["password_hash"] == V6


# ------------------------------------------------------------ spoke entries


@pytest.fixture
def mine(monkeypatch):
    entries = {}

    def get(tgt, fun, tgt_type="glob"):
        import fnmatch
        return {m: e[fun] for m, e in entries.items() if fnmatch.fnmatch(m, tgt) and fun in e}
    monkeypatch.setattr(cluster, "__salt__", {"mine.get": get}, raising=False)
    monkeypatch.setattr(cluster, "__opts__", {"id": "hub"}, raising=False)
    return entries


def spoke(minion, **changes):
    entry = {"username": f"bridge.{minion}", "clientid": f"{minion}.cluster",
             "password_hash": passwd.hash_password(f"{minion}-secret")}
    entry.update(changes)
    return {k: v for k, v in entry.items() if v is not None}


ABSURD = f"$7$999999999${SALT16}${HASH88}"


@pytest.mark.parametrize("minion, entry, why", [
    ("s1", {"password_hash": ABSURD}, "password_hash the iteration count"),
    ("s1", {"password_hash": f"$7$101${SALT16}$AAAA"}, "password_hash the hash must be 64 bytes"),
    ("s1", {"password_hash": V6}, "password_hash is not a mosquitto password hash"),
    ("s1", {"password_hash": None}, "keys must be exactly"),
    ("s1", {"extra": "x"}, "keys must be exactly"),
    ("s1", {"username": "bridge.s2"}, "username is not bridge.s1"),
    ("s1", {"clientid": "s1.other"}, "clientid is not s1.cluster"),
    ("s 1", {}, "minion id is not letters"),
    ("s#1", {}, "minion id is not letters"),
    ("s+1", {}, "minion id is not letters"),
    ("-s1", {}, "minion id is not letters"),
    ("s1\n", {}, "minion id is not letters"),
    ("s" * 254, {}, "minion id is not letters"),
])
def test_poisoned_spoke_entries_are_skipped_with_a_warning(mine, caplog, minion, entry, why):
    mine[minion] = {MINE_SPOKE: spoke(minion, **entry)}
    mine["good"] = {MINE_SPOKE: spoke("good")}
    with caplog.at_level(logging.WARNING):
        assert cluster.spokes("*", hub="hub") == {"good": {"username": "bridge.good", "clientid": "good.cluster"}}
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(repr(minion) in w and why in w for w in warning), warning
    assert not any(SALT16 in w or HASH88[:20] in w for w in warning)
    assert cluster.spoke_credential(minion) == {"problem": cluster.spoke_credential(minion)["problem"]}
    assert cluster.spoke_hash(minion) is None


def test_a_253_character_id_is_a_spoke(mine):
    minion = "s" * 253
    mine[minion] = {MINE_SPOKE: spoke(minion)}
    assert list(cluster.spokes("*")) == [minion]


def test_a_spoke_with_an_unusable_id_refuses_its_own_pillar():
    from test.support.config import CLUSTER
    with pytest.raises(CommandExecutionError, match="this minion's id 's 1' cannot be a cluster spoke"):
        validate(minion="s 1", cluster=CLUSTER)


@pytest.fixture
def hub_state(mine, monkeypatch):
    """The passwd state on the hub: the real module, the real cluster
    module's spoke_credential over the fake mine."""
    funcs = {f"mosquitto_passwd.{f}": getattr(passwd, f) for f in ("plan", "manage", "read_secret")}
    funcs["mosquitto_cluster.spoke_credential"] = cluster.spoke_credential
    monkeypatch.setattr(passwd_state, "__salt__", funcs, raising=False)
    monkeypatch.setattr(passwd_state, "__opts__", {"test": False}, raising=False)
    monkeypatch.setattr(passwd, "__opts__", {"test": False}, raising=False)
    return mine


def hub_users():
    return {"alice": {"password": "alice-pw"},
            "bridge.good": {"password_hash_mine": "good"},
            "bridge.bad": {"password_hash_mine": "bad"}}


def test_the_hub_writes_every_other_user_and_no_bad_hash(hub_state, tmp_path, caplog):
    hub_state["good"] = {MINE_SPOKE: spoke("good")}
    hub_state["bad"] = {MINE_SPOKE: spoke("bad", password_hash=ABSURD)}
    path = tmp_path / "passwd"
    with caplog.at_level(logging.WARNING):
        ret = passwd_state.managed(str(path), hub_users(), group=None)
    assert ret["result"] is True, ret["comment"]
    assert ret["changes"]["added"] == ["alice", "bridge.good"]
    text = path.read_text()
    assert set(passwd.read_file(str(path))) == {"alice", "bridge.good"}
    assert ABSURD not in text and "999999999" not in text and "bridge.bad" not in text
    assert "bridge.bad (mine entry of 'bad': password_hash the iteration count" in ret["comment"]
    assert "999999999" not in str(ret) and SALT16 not in str(ret)
    assert any("'bad'" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)

    # The hub still adds, changes and revokes users while the entry stays bad.
    users = hub_users()
    del users["alice"]
    users["carol"] = {"password": "carol-pw"}
    again = passwd_state.managed(str(path), users, group=None)
    assert again["result"] is True and again["changes"]["added"] == ["carol"]
    assert again["changes"]["removed"] == ["alice"]
    assert ABSURD not in path.read_text()


def test_an_entry_turned_bad_removes_that_bridge_user_only(hub_state, tmp_path):
    hub_state["good"] = {MINE_SPOKE: spoke("good")}
    hub_state["bad"] = {MINE_SPOKE: spoke("bad")}
    path = tmp_path / "passwd"
    assert passwd_state.managed(str(path), hub_users(), group=None)["result"] is True
    assert "bridge.bad" in passwd.read_file(str(path))
    hub_state["bad"] = {MINE_SPOKE: spoke("bad", password_hash=f"$7$101${SALT16}$AAAA")}
    ret = passwd_state.managed(str(path), hub_users(), group=None)
    assert ret["result"] is True and ret["changes"] == {"removed": ["bridge.bad"]}
    assert set(passwd.read_file(str(path))) == {"alice", "bridge.good"}
    assert "$AAAA" not in path.read_text()


def test_test_mode_shows_the_skip_too(hub_state, tmp_path, monkeypatch):
    hub_state["bad"] = {MINE_SPOKE: spoke("bad", password_hash=ABSURD)}
    monkeypatch.setattr(passwd_state, "__opts__", {"test": True}, raising=False)
    ret = passwd_state.managed(str(tmp_path / "passwd"), {"bridge.bad": {"password_hash_mine": "bad"}}, group=None)
    assert ret["result"] is None and "left out, not accepted: bridge.bad" in ret["comment"]
    assert not (tmp_path / "passwd").exists() or "bridge.bad" not in (tmp_path / "passwd").read_text()


# ------------------------------------------------------------ acl: [] on a real broker


def render_acl(users):
    """acl.jinja with acl_users built as configure/acl.sls builds them."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / "mosquitto/files/default")))
    return env.get_template("acl.jinja").render(acl_users={n: s["acl"] for n, s in users.items()}, patterns=[])


def test_empty_acl_means_no_topic_and_no_key_means_the_default(tmp_path):
    users = cfg.validate(settings(users={"carol": {"password": "carol-pw", "acl": []},
                                         "dave": {"password": "dave-pw"}}))["users"]
    assert users["carol"]["acl"] == [] and users["dave"]["acl"] == ["readwrite #"]
    (tmp_path / "acl").write_text(render_acl(users))
    passwd.manage(str(tmp_path / "passwd"), {n: {"password": s["password"]} for n, s in users.items()},
                  user=None, group=None)
    broker = Broker(workdir=tmp_path, extra=f"allow_anonymous false\npassword_file {tmp_path / 'passwd'}\n"
                                            f"acl_file {tmp_path / 'acl'}\n")
    with broker:
        wait_port(broker.port)
        carol, dave = Client(broker.port, "carol", "carol-pw"), Client(broker.port, "dave", "dave-pw")
        assert carol.connect() and dave.connect()
        try:
            carol.subscribe("t/#")
            dave.subscribe("t/#")
            carol.publish("t/from-carol", b"1")
            dave.publish("t/from-dave", b"2")
            assert dave.get()[0] == "t/from-dave"  # dave: readwrite on every topic
            with pytest.raises(queue.Empty):  # carol may neither publish nor read
                carol.get(timeout=2)
            with pytest.raises(queue.Empty):
                dave.get(timeout=1)
        finally:
            carol.close()
            dave.close()


# ------------------------------------------------------------ opt-ins


@pytest.mark.parametrize("mqtt, key", [
    ({"bind_address": "0.0.0.0"}, "mosquitto:listeners:mqtt:bind_address: '0.0.0.0' is not a loopback address"),
    ({"bind_address": ""}, "mosquitto:listeners:mqtt:bind_address: '' (every address) is not a loopback address"),
    ({"bind_address": "192.0.2.7"}, "mosquitto:listeners:mqtt:bind_address: '192.0.2.7' is not a loopback"),
    ({"bind_address": "mqtt.example.com"}, "mosquitto:listeners:mqtt:bind_address: 'mqtt.example.com' is not"),
    ({"options": {"bind_interface": "eth0"}}, "mosquitto:listeners:mqtt:options:bind_interface: 'eth0' is not"),
    ({"allow_remote_plain": "yes"}, "mosquitto:listeners:mqtt:allow_remote_plain: must be true or false"),
])
def test_plain_mqtt_off_loopback_needs_the_opt_in(mqtt, key):
    message = error_of(listeners={"mqtt": mqtt})
    assert key in message
    if "allow_remote_plain:" not in key:
        assert "set listeners:mqtt:allow_remote_plain: true" in message


@pytest.mark.parametrize("mqtt", [{"bind_address": "127.0.0.1"}, {"bind_address": "::1"},
                                  {"bind_address": "localhost"}, {"options": {"bind_interface": "lo"}},
                                  {"bind_address": "0.0.0.0", "allow_remote_plain": True},
                                  {"bind_address": "", "options": {"bind_interface": "eth0"},
                                   "allow_remote_plain": True}])
def test_plain_mqtt_on_loopback_or_opted_in(mqtt):
    cfg.validate(settings(listeners={"mqtt": mqtt}))


def test_the_container_publish_check_follows_the_same_opt_in():
    container = {"enabled": True, "network": "mqttnet", "publish": ["1883:1883"]}
    assert "allow_remote_plain: true" in error_of(container=container)
    cfg.validate(settings(container=container, listeners={"mqtt": {"allow_remote_plain": True}}))


@pytest.mark.parametrize("key", ["plugin", "auth_plugin", "global_plugin", "plugin_load", "plugin_use",
                                 "plugin_opt_backend", "auth_opt_backends"])
def test_plugins_need_the_opt_in(key):
    message = error_of(config={key: "/usr/lib/x.so"})
    assert f"mosquitto:config:{key}: loads or configures a broker plugin" in message
    assert "set allow_plugins: true" in message
    out = cfg.validate(settings(config={key: "/usr/lib/x.so"}, allow_plugins=True))
    assert out["config"][key] == "/usr/lib/x.so"


def test_plugin_opt_in_is_a_boolean_and_listeners_still_refuse_plugins():
    assert "mosquitto:allow_plugins: must be true or false" in error_of(allow_plugins="yes")
    message = error_of(allow_plugins=True, listeners={"mqtts": {"options": {"plugin": "/x.so"}}})
    assert "mosquitto:listeners:mqtts:options:plugin: is not a per-listener option" in message
    cfg.validate(settings(config={"auth_plugin_deny_special_chars": True}))  # a guard, not a plugin


# ------------------------------------------------------------ bounded accept


@pytest.fixture
def hub(mine, monkeypatch, tmp_path):
    """accept() on hub 'hub' with spoke s1 in the mine; state.apply counted."""
    from test.support.mapdata import built
    mine["s1"] = {MINE_SPOKE: spoke("s1")}
    monkeypatch.setattr(cluster, "__opts__", {"id": "hub", "cachedir": str(tmp_path / "cache")})
    runs = []
    cluster.__salt__["mosquitto_map.data"] = lambda: built({"cluster": {"hub": "hub", "members": "s*"}})
    cluster.__salt__["state.apply"] = lambda *a, **k: runs.append(a) or {"x_|-a_|-b_|-c": {"result": True,
                                                                                           "changes": {}}}
    clock = [1_000_000.0]
    monkeypatch.setattr(cluster.time, "time", lambda: clock[0])
    return runs, clock, tmp_path / "cache" / "mosquitto_cluster" / "accept.json"


def test_accept_is_rate_limited_per_spoke(hub):
    runs, clock, state = hub
    assert cluster.accept(__pub_id="s1").startswith("accepted: s1")
    assert cluster.accept(__pub_id="s1").startswith("busy: s1 was accepted 0 s ago")
    clock[0] += cluster.ACCEPT_INTERVAL - 1
    assert cluster.accept(__pub_id="s1").startswith("busy:")
    assert len(runs) == 1
    clock[0] += 1
    assert cluster.accept(__pub_id="s1").startswith("accepted: s1")
    assert len(runs) == 2
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"


def test_a_second_accept_while_one_runs_changes_nothing(hub):
    runs, clock, _ = hub
    inner = []

    def apply(*a, **k):
        clock[0] += 600  # a long run: past the interval, still running
        inner.append(cluster.accept(__pub_id="s1"))
        runs.append(a)
        return {}
    cluster.__salt__["state.apply"] = apply
    assert cluster.accept(__pub_id="s1").startswith("accepted: s1")
    assert inner == ["already queued: an accept of s1 is queued or running on hub"]
    assert len(runs) == 1


def test_a_stale_or_damaged_record_blocks_no_one(hub):
    runs, clock, state = hub
    state.parent.mkdir(parents=True)
    state.write_text('{"s1": {"started": %f, "running": true}}' % (clock[0] - cluster.ACCEPT_STALE - 1))
    assert cluster.accept(__pub_id="s1").startswith("accepted")
    state.write_text("not json")
    clock[0] += cluster.ACCEPT_INTERVAL
    assert cluster.accept(__pub_id="s1").startswith("accepted")
    assert len(runs) == 2


def test_a_failed_apply_releases_the_claim(hub):
    runs, clock, _ = hub

    def boom(*a, **k):
        raise RuntimeError("apply died")
    cluster.__salt__["state.apply"] = boom
    with pytest.raises(RuntimeError):
        cluster.accept(__pub_id="s1")
    clock[0] += cluster.ACCEPT_INTERVAL
    cluster.__salt__["state.apply"] = lambda *a, **k: {}
    assert cluster.accept(__pub_id="s1").startswith("accepted")


def test_refusals_leave_no_record(hub, mine):
    _, _, state = hub
    mine["s2"] = {MINE_SPOKE: spoke("s2", password_hash=ABSURD)}
    assert cluster.accept(__pub_id="s2").startswith("refused: no bridge identity of s2 in the mine that the hub")
    assert cluster.accept(__pub_id="x1").startswith("refused: x1 does not match")
    assert not state.exists()


# ------------------------------------------------------------ a trailing newline is refused by every rule


@pytest.mark.parametrize("rule, value", [
    (names.is_dns_name, "mqtt.example.com"),
    (names.is_bridge_name, "site-b"),
    (names.is_cluster_minion_id, "mqtt1"),
    (lambda v: hashes.problem(v) is None, f"$7$101${SALT16}${HASH88}"),
])
def test_name_rules_refuse_a_trailing_newline(rule, value):
    assert rule(value) and not rule(value + "\n")


def test_shell_words_and_env_names_refuse_a_trailing_newline():
    assert shell.word("abc", "k") == "abc"
    with pytest.raises(SaltInvocationError):
        shell.word("abc\n", "k")
    assert shell.env_line("FOO", "x") == "FOO='x'"
    with pytest.raises(SaltInvocationError):
        shell.env_line("FOO\n", "x")


def test_bridge_option_names_refuse_a_trailing_newline():
    spec = {"address": "r.example.com:8883", "topics": ["a/# out 1"], "tls": False}
    assert "try_private true" in bridge.render_section("b", dict(spec, options={"try_private": True}))
    with pytest.raises(SaltInvocationError, match="is not allowed under options"):
        bridge.render_section("b", dict(spec, options={"try_private\n": True}))


@pytest.mark.parametrize("pillar, key", [
    ({"config": {"log_type\n": "all"}}, "mosquitto:config:log_type\n: is not a mosquitto.conf option name"),
    ({"queue": {"persistent_client_expiration": "14d\n"}}, "mosquitto:queue:persistent_client_expiration:"),
    ({"exporter": {"pip_pkgs": ["paho-mqtt\n"]}}, "mosquitto:exporter:pip_pkgs:0:"),
    ({"firewall": {"zone": "public\n"}}, "mosquitto:firewall:zone:"),
    ({"firewall": {"extra_ports": ["1234/tcp\n"]}}, "mosquitto:firewall:extra_ports:0:"),
    ({"tls": {"signing_policies": [{"minions": "a*", "dns_names": ["*.example.com\n"]}]}},
     "mosquitto:tls:signing_policies:0:dns_names:0:"),
    ({"container": {"name": "mosq\n"}}, "mosquitto:container:name:"),
    ({"container": {"image": "eclipse-mosquitto:2\n"}}, "mosquitto:container:image:"),
    ({"container": {"network": "n", "publish": ["8883:8883\n"]}}, "mosquitto:container:publish:0:"),
    ({"container": {"restart_policy": "always\n"}}, "mosquitto:container:restart_policy:"),
    ({"bridges": {"b": {"address": "r.example.com:8883\n", "topics": ["a/# out"]}}},
     "mosquitto:bridges:b:address"),
    ({"cluster": {"hub": "mqtt1\n"}}, "mosquitto:cluster:hub:"),
])
def test_pillar_rules_refuse_a_trailing_newline(pillar, key):
    assert key in error_of(**pillar)


def test_the_domain_is_stripped_before_its_rule():
    # _dns strips blanks first: what reaches a file is the clean name.
    assert cfg.validate(settings(domain="mqtt.example.com\n"))["domain"] == "mqtt.example.com"
