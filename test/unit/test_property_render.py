"""Issue #20, as a property: for every generated pillar, validation refuses
it naming a key the pillar has, or every file the formula writes from it
(mosquitto.conf, the ACL and password files, bridge files, the exporter's
env file, its unit and init script, the broker's drop-in and limits hook)
reads back exactly what the pillar asked for: no line more, none less, no
value changed on the way (test/support/property.py renders them as the SLS
files do; test/support/parse.py reads them as mosquitto, systemd and sh do).

Pillars start valid (every section the formula renders from) and get
hostile text (line breaks, NUL, quotes, shell and systemd syntax, Unicode
line breaks, 5,000 characters) or a wrong type in one to three places:
values and keys alike. Mine entries (a hub's spokes) get hostile ids,
hashes and types.

Budget: fixed and derandomized, so `make test` is reproducible; the longer,
random run is bench/property.py.
"""
import pathlib
import tempfile

import pytest
from hypothesis import HealthCheck, example, given, settings

from test.support import parse
from test.support import property as prop

BUDGET = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                         HealthCheck.data_too_large])


def _tmp():
    return tempfile.TemporaryDirectory(prefix="mosquitto-property-")


@BUDGET
@given(pillar=prop.pillars())
def test_valid_pillars_render_exactly(pillar):
    with _tmp() as tmp:
        outcome = prop.check_pillar(pillar, pathlib.Path(tmp))
    assert outcome != "refused", "the generator's valid pillars must pass validation"


# Found by this property: NEL (U+0085) in a path reached the exporter's env
# file, which exporter.sls hands to file.managed as a YAML block: YAML read
# it as a line break and the SLS failed to parse (a crafted value could add
# state arguments). mosquitto_shell.env_line now refuses it, naming the key.
NEL_IN_PATH = {"domain": "mqtt.example.com", "users": {}, "tls": {"cert": "/etc/mosquitto/certs/a\x85b.crt"}}
LS_IN_PATH = {"domain": "mqtt.example.com", "users": {},
              "lookup": {"paths": {"exporter_secret": "/etc/x\u2028    - mode: '0777'"}}}


# Found by this property: mosquitto trims blanks around a value, so a
# bridge's remote_password ' pw' logged in as 'pw'. render_section now
# refuses it naming the option (validate should too: reported).
BLANK_PASSWORD = {"domain": "mqtt.example.com", "users": {},
                  "bridges": {"b": {"address": "remote.example.net:8883", "topics": ["a/# out 1"],
                                    "remote_username": "u", "remote_password": " pw "}}}


@BUDGET
@example(case=(BLANK_PASSWORD, [("bridges", "b", "remote_password")]))
@example(case=(NEL_IN_PATH, [("tls", "cert")]))
@example(case=(LS_IN_PATH, [("lookup", "paths", "exporter_secret")]))
@given(case=prop.mutated_pillars())
def test_hostile_pillars_are_refused_naming_a_key_or_render_exactly(case):
    pillar, changed = case
    with _tmp() as tmp:
        prop.check_pillar(pillar, pathlib.Path(tmp), changed=changed)


@BUDGET
@given(mine=prop.mine_entries())
def test_mine_accepts_only_strict_entries(mine):
    prop.check_mine_accepted_strict(mine)


HUB = {"domain": "hub1.example", "users": {"alice": {"password": "pw", "acl": ["read a/#"]}},
       "cluster": {"hub": "hub1", "topics": ["fleet/# both 1"]}}


@BUDGET
@given(mine=prop.mine_entries())
def test_mine_entries_reach_the_hubs_files_exactly(mine):
    with prop.loader_globals():
        data = prop.cfg.validate(prop.built(HUB), minion_id="hub1", broker_version=prop.VERSION)
    assert data["cluster"]["role"] == "hub"
    with _tmp() as tmp:
        prop.check_mine_files(mine, pathlib.Path(tmp), data)


def test_env_file_reads_back_in_the_real_sh(tmp_path):
    """One real /bin/sh check of what parse.env_sh emulates."""
    pillar = {"domain": "mqtt.example.com", "users": {},
              "tls": {"cert": "/etc/with space/#x/server.crt"}, "exporter": {"user": "exp 'x"}}
    with prop.loader_globals():
        _, data = prop.validate(pillar)
    with pytest.raises(Exception, match="^mosquitto:exporter:user: a single quote"):
        prop.render_env(data)
    pillar["exporter"]["user"] = "exp;x y$"
    with prop.loader_globals():
        _, data = prop.validate(pillar)
    with pytest.raises(Exception, match="^mosquitto:exporter:user: a '\\$'"):
        prop.render_env(data)
    pillar["exporter"]["user"] = "exp; touch pwned *"
    with prop.loader_globals():
        _, data = prop.validate(pillar)
    text = prop.render_env(data)
    (tmp_path / "env").write_text(text)
    want = parse.env_sh(text)
    assert want == parse.env_systemd(text)
    assert parse.sh_environment(tmp_path / "env", sorted(want)) == want
    assert want["SERVER_CERT_FILE"] == "/etc/with space/#x/server.crt"
    assert not (pathlib.Path("/") / "pwned").exists()
