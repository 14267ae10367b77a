"""mosquitto_config.validate: every bad pillar names its key; good ones pass."""
import pytest
import salt.config
import salt.loader
import yaml
from salt.exceptions import CommandExecutionError

from test.support.config import ROOT, cfg, error_of, settings
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)


def test_the_example_pillar_is_valid():
    example = yaml.safe_load((ROOT / "pillar.example").read_text())["mosquitto"]
    example.pop("lookup", None)
    example.pop("tofs", None)
    out = cfg.validate(settings(**example))
    assert out["domain"] == example["domain"]


def test_defaults_with_a_domain_are_valid():
    out = cfg.validate(settings())
    assert out["tls"]["san_dns"] == ["mqtt.example.com"]
    # No `acl` key: the default rule, spelled out (acl: [] would mean none).
    assert out["users"]["alice"] == {"password": "pw", "acl": ["readwrite #"]}


@pytest.mark.parametrize("pillar,message", [
    ({"domain": ""}, "mosquitto:domain: must be a DNS name such as mqtt.example.com, got an empty value"),
    ({"domain": "bad_name!.com"}, "mosquitto:domain: is not a valid DNS name"),
    ({"domain": "-lead.example.com"}, "mosquitto:domain: is not a valid DNS name"),
    ({"ports": {"mqtt": 70000}}, "mosquitto:ports:mqtt: must be between 1 and 65535, got 70000"),
    ({"ports": {"mqtts": "8883"}}, "mosquitto:ports:mqtts: must be an integer"),
    ({"ports": {"mqtts": 1883}}, "mosquitto:ports: ports must differ"),
    ({"ports": {"websocket": 9001}}, "mosquitto:ports:websocket: unknown key"),
    ({"users": {"a:b": {"password": "x"}}}, "mosquitto:users:a:b: bad user name"),
    ({"users": {"bad\nname": {"password": "x"}}}, "bad user name"),
    ({"users": {" padded": {"password": "x"}}}, "bad user name"),
    ({"users": {"carol": {}}}, "mosquitto:users:carol:password: missing"),
    ({"users": {"carol": None}}, "mosquitto:users:carol:password: missing"),
    ({"users": {"carol": {"password": ""}}}, "mosquitto:users:carol:password: must be a non-empty string"),
    ({"users": {"carol": {"password": 1234}}}, "mosquitto:users:carol:password: must be a non-empty string"),
    # A section of the wrong type is named, not an AttributeError (the property test found these).
    ({"listeners": "\n"}, "mosquitto:listeners: must be a mapping, got str"),
    ({"tls": ["x"]}, "mosquitto:tls: must be a mapping, got list"),
    ({"listeners": {"mqtt": "x"}}, "mosquitto:listeners:mqtt: must be a mapping, got str"),
    ({"exporter": 1.5}, "mosquitto:exporter: must be a mapping, got float"),
    # What YAML would rewrite in a | json context (NEL read as a line break), and controls in an address.
    ({"tls": {"cert": "/etc/a\x85b.crt"}}, "mosquitto:tls:cert: must not contain line breaks or control characters"),
    ({"bridges": {"b": {"address": "ho\x00st:8883", "topics": ["a/# out 1"]}}},
     "mosquitto:bridges:b:address: must be host[:port]"),
    ({"users": {"carol": {"password": "a", "password_hash": "$7$x"}}}, "not both"),
    ({"users": {"carol": {"password_hash": "plain"}}},
     "mosquitto:users:carol:password_hash: is not a mosquitto password hash"),
    ({"users": {"carol": {"password": "x", "pasword": "y"}}}, "mosquitto:users:carol:pasword: unknown key"),
    ({"users": {"carol": {"password": "x", "acl": ["write a/#/b"]}}}, "mosquitto:users:carol:acl:0:"),
    ({"users": {"carol": {"password": "x", "acl": ["publish a"]}}}, "mosquitto:users:carol:acl:0:"),
    ({"users": {"mosquitto-exporter": {"password": "x"}}}, "is reserved for the exporter"),
    ({"domian": "typo.example.com"}, "mosquitto:domian: unknown key"),
    ({"tls": {"key_type": "dsa"}}, "mosquitto:tls:key_type: must be one of ec, rsa"),
    ({"tls": {"key_type": "rsa", "key_size": 1024}}, "mosquitto:tls:key_size: must be one of 2048, 3072, 4096"),
    ({"tls": {"ip_addresses": ["300.1.1.1"]}}, "mosquitto:tls:ip_addresses:0: is not an IP address"),
    ({"tls": {"renew_days": 900}}, "mosquitto:tls:renew_days: must be below days_valid"),
    ({"tls": {"ca_cert": "relative/ca.crt"}}, "mosquitto:tls:ca_cert: must be an absolute path"),
    ({"listeners": {"mqtts": {"tls_version": "tlsv1"}}}, "mosquitto:listeners:mqtts:tls_version: must be one of"),
    ({"listeners": {"mqtt": {"bind_address": "not an address"}}}, "mosquitto:listeners:mqtt:bind_address:"),
    ({"queue": {"persistent_client_expiration": "14 days"}},
     "mosquitto:queue:persistent_client_expiration: must be like 14d"),
    ({"max_keepalive": -1}, "mosquitto:max_keepalive: must be between 0 and 65535"),
    ({"persistence": {"enabled": "yes"}}, "mosquitto:persistence:enabled: must be true or false"),
    ({"config": {"listener": "1884"}}, "mosquitto:config:listener: is managed by the formula"),
    ({"config": {"log_type": "all\nlistener 1 0.0.0.0"}}, "mosquitto:config:log_type: must not contain line breaks"),
    ({"config": {"Bad-Option": 1}}, "mosquitto:config:Bad-Option: is not a mosquitto.conf option name"),
    ({"firewall": {"enabled": "maybe"}}, "mosquitto:firewall:enabled: must be one of"),
    ({"firewall": {"extra_ports": ["80"]}}, "mosquitto:firewall:extra_ports:0: must be like '1234/tcp'"),
    ({"bridges": {"b": {"address": "x:99999", "topics": ["a/# out 1"]}}},
     "mosquitto:bridges:b:address: port out of range"),
    ({"bridges": {"b": {"address": "x:8883", "topics": []}}},
     "mosquitto:bridges:b:topics: a bridge needs at least one topic"),
    ({"bridges": {"b": {"address": "x:8883", "topics": ["a/# sideways"]}}}, "mosquitto:bridges:b:topics:0: must be"),
    ({"bridges": {"b": {"address": "x:8883", "topics": ["a"], "remote_username": "u"}}},
     "remote_username and remote_password go together"),
    # Wrong types below the top level are named too, never a TypeError (the property test found these).
    ({"bridges": {"b": {"address": "x:8883", "topics": True}}}, "mosquitto:bridges:b:topics: must be a list, got bool"),
    ({"bridges": {"b": {"address": "x:8883", "topics": ["a"], "options": 0}}},
     "mosquitto:bridges:b:options: must be a mapping of mosquitto.conf option to value"),
    ({"bridges": {"b": {"address": True, "topics": ["a"]}}},
     "mosquitto:bridges:b:address: must be host[:port] (a string such as broker.example.net:8883), got True"),
    ({"bridges": {"b": {"address": {}, "topics": ["a"]}}}, "mosquitto:bridges:b:address: must be host[:port]"),
    ({"bridges": {"b": {"address": [], "topics": ["a"]}}},
     "mosquitto:bridges:b:address: must be host[:port] or a list of them, got an empty list"),
    ({"paths": True}, "mosquitto:lookup:paths: must be a mapping, got bool"),
    ({"service": None}, "mosquitto:lookup:service: must be a mapping, got nothing (an empty key in YAML)"),
    ({"paths": {"pasword": "/etc/mosquitto/pw"}}, "mosquitto:lookup:paths:pasword: unknown key (known: acl, "),
    ({"service": {" user": "mqtt"}}, "mosquitto:lookup:service: user: unknown key (known: cron_name, exporter_name, "),
    ({"listeners": None}, "mosquitto:listeners: must be a mapping, got nothing"),
    ({"exporter": None}, "mosquitto:exporter: must be a mapping, got nothing"),
    # Blanks at either end of text: mosquitto trims them, so it would use another value.
    ({"bridges": {"b": {"address": "x:8883", "topics": ["a"], "remote_username": "u", "remote_password": " pw"}}},
     "mosquitto:bridges:b:remote_password: must not start or end with a space: mosquitto trims it"),
    ({"persistence": {"location": "/var/lib/mosquitto "}},
     "mosquitto:persistence:location: must not start or end with a space"),
    ({"config": {"log_timestamp_format": " %H:%M"}},
     "mosquitto:config:log_timestamp_format: must not start or end with a space"),
    ({"bridges": {"b": {"address": "x:8883", "topics": ["a/# out 1 "]}}},
     "mosquitto:bridges:b:topics:0: must not start or end with a space"),
    ({"tls": {"ca_common_name": "Fleet CA "}}, "mosquitto:tls:ca_common_name: must not start or end with a space"),
])
def test_bad_pillar_names_the_key(pillar, message):
    assert message in error_of(**pillar)


def test_every_parameter_files_path_and_service_key_is_known():
    """lookup:paths and lookup:service refuse unknown keys: every key the
    parameter files define must be in the schema."""
    for path in sorted((ROOT / "mosquitto/parameters").rglob("*.yaml")):
        values = (yaml.safe_load(path.read_text()) or {}).get("values") or {}
        assert set(values.get("paths") or {}) <= cfg._PATHS_KEYS, path
        assert set(values.get("service") or {}) <= cfg._SERVICE_KEYS, path


def test_the_blank_refusal_says_what_is_kept():
    text = error_of(config={"log_timestamp_format": "%H:%M "})
    assert "(' pw' becomes 'pw'); blanks inside are kept" in text


def test_all_problems_are_reported_at_once():
    text = error_of(domain="", ports={"mqtt": 0})
    assert "mosquitto:domain:" in text and "mosquitto:ports:mqtt:" in text
    assert text.startswith("invalid mosquitto pillar (nothing was changed)")


def test_passwords_never_appear_in_errors():
    text = error_of(users={"a:b": {"password": "s3cret-value"}, "c": {"password": "x\nsecond-secret"}})
    assert "s3cret-value" not in text and "second-secret" not in text


def test_normalisation():
    out = cfg.validate(settings(domain="MQTT.Example.COM", persistence={"location": "/srv/mq"},
                                tls={"dns_names": ["b.example.com", "mqtt.example.com"], "ip_addresses": ["::1"]},
                                users={"alice": {"password": "pw", "acl": ["sensors/#", "read $SYS/#"]}}))
    assert out["domain"] == "mqtt.example.com"
    assert out["persistence"]["location"] == "/srv/mq/"
    assert out["tls"]["san_dns"] == ["mqtt.example.com", "b.example.com"]
    assert out["users"]["alice"]["acl"] == ["readwrite sensors/#", "read $SYS/#"]


@pytest.mark.parametrize("topic,ok", [("a/b", True), ("a/+/c", True), ("#", True), ("a/#", True),
                                      ("a/#/b", False), ("a+/b", False), ("", False), ("a b", False)])
def test_topic_filters(topic, ok):
    assert cfg.check_topic_filter(topic) is ok


def test_validate_runs_through_salts_own_loader(tmp_path):
    """Salt packs no ``__utils__`` into ``_utils`` files, so the bridge
    rules get the checks (the collector) and the name rules as arguments.
    Loaded by Salt itself, as on a minion after saltutil.sync_all,
    broker_version and validate answer as they do for the tests' loading."""
    opts = salt.config.minion_config(None)
    opts.update(module_dirs=[str(ROOT / "_modules")], utils_dirs=[str(ROOT / "_utils")],
                extension_modules=str(tmp_path), id="mqtt2", file_client="remote")
    utils = salt.loader.utils(opts)
    funcs = salt.loader.minion_mods(opts, utils=utils, whitelist=["mosquitto_config", "mosquitto_passwd"])
    pillar = settings(cluster={"hub": "mqtt1", "topics": ["fleet/# both 1"]},
                      bridges={"b": {"address": "remote.example.com:8883", "topics": ["site/# out 2"]}},
                      container={"enabled": True, "image": "eclipse-mosquitto:2.0.18"})
    version = funcs["mosquitto_config.broker_version"](pillar)
    assert version == {"version": "2.0.18", "where": "image eclipse-mosquitto:2.0.18"}
    out = funcs["mosquitto_config.validate"](pillar, minion_id="mqtt2", broker_version=version)
    assert out == cfg.validate(pillar, minion_id="mqtt2", broker_version=version)
    assert out["cluster"]["username"] == "bridge.mqtt2"
    with pytest.raises(CommandExecutionError) as exc:
        funcs["mosquitto_config.validate"](dict(pillar, bridges={"bad name": {}}), minion_id="mqtt2")
    assert "mosquitto:bridges:bad name: bridge names use" in str(exc.value)
