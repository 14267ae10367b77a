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
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest
from hypothesis import HealthCheck, example, given, settings

from test.support import parse
from test.support import property as prop

# The same examples in every process and on every machine: derandomized
# (the seed comes from the test's own source), no example database (one
# machine's saved failures would make its runs differ from a fresh clone's),
# the literals Hypothesis mixes in fixed (prop.fixed_constants, below) and
# Hypothesis pinned in pyproject.toml (another version draws other
# examples from the same seed). A failure prints @reproduce_failure to
# replay it. Budget: ~8 s for the file on an idle 2-core machine.
BUDGET = settings(max_examples=150, deadline=None, derandomize=True, database=None, print_blob=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                         HealthCheck.data_too_large])


@pytest.fixture(autouse=True)
def _same_constants_in_every_process():
    with prop.fixed_constants():
        yield


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
# bridge's remote_password ' pw' logged in as 'pw' (render_section refused
# it only when the state ran). validate refuses blanks at either end of any
# text now, naming the key.
BLANK_PASSWORD = {"domain": "mqtt.example.com", "users": {},
                  "bridges": {"b": {"address": "remote.example.net:8883", "topics": ["a/# out 1"],
                                    "remote_username": "u", "remote_password": " pw "}}}
_BRIDGE = {"address": "remote.example.net:8883", "topics": ["a/# out 1"]}
# Found by this property, each a known gap until validate or the map's merge
# named it: a wrong type below the top level raised a TypeError or reached
# the templates as a Jinja error; blanks at either end of a value that
# mosquitto trims.
FOUND = {
    "bridge topics not a list": {"bridges": {"b": dict(_BRIDGE, topics=True)}},
    "bridge options not a mapping": {"bridges": {"b": dict(_BRIDGE, options=0)}},
    "bridge address not a string": {"bridges": {"b": dict(_BRIDGE, address=True)}},
    "bridge address an empty list": {"bridges": {"b": dict(_BRIDGE, address=[])}},
    "lookup not a mapping": {"lookup": "x"},
    "lookup:paths not a mapping": {"lookup": {"paths": True}},
    "lookup:service empty": {"lookup": {"service": None}},
    "listeners empty": {"listeners": None},
    "exporter empty": {"exporter": None},
    "bridge password with blanks": BLANK_PASSWORD,
    "path with a trailing blank": {"persistence": {"location": "/var/lib/mosquitto "}},
    "option value with a leading space": {"config": {"log_timestamp_format": " %H:%M"}},
}


@pytest.mark.parametrize("pillar", FOUND.values(), ids=FOUND.keys())
def test_found_inputs_are_refused_naming_their_key(pillar, tmp_path):
    pillar = dict({"domain": "mqtt.example.com", "users": {}}, **pillar)
    assert prop.check_pillar(pillar, tmp_path) == "refused"


@BUDGET
@example(case=(BLANK_PASSWORD, [("bridges", "b", "remote_password")]))
@example(case=(NEL_IN_PATH, [("tls", "cert")]))
@example(case=(LS_IN_PATH, [("lookup", "paths", "exporter_secret")]))
@given(case=prop.mutated_pillars())
def test_hostile_pillars_are_refused_naming_a_key_or_render_exactly(case):
    pillar, _changed = case  # the mutated paths: shown with a failing example
    with _tmp() as tmp:
        prop.check_pillar(pillar, pathlib.Path(tmp))


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


def test_the_fast_lane_draws_the_same_examples_in_every_process():
    """Once a run found a failure that reruns did not: what `make test`
    draws must not depend on the process. The other process has another
    hash seed and has imported every module of the formula (this one
    whatever the session imported before: in `make test`, every suite's)."""
    here = prop.drawn_digest("mutated_pillars")
    code = ("from test.support import property as p; from test.support.modules import ROOT, load; "
            "[load(d, f.stem) for d in ('_modules', '_utils') for f in sorted((ROOT / d).glob('*.py'))]; "
            "print(p.drawn_digest('mutated_pillars'))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True,
                           cwd=prop.ROOT, env=dict(os.environ, PYTHONHASHSEED="12345"))
    assert other.stdout.strip() == here
