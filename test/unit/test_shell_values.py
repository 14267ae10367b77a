"""Values rendered into files a shell or systemd parses are data, never
syntax (issue #20): the environment file's lines are single-quoted and
read back exactly by the real /bin/sh (dash), and what cannot be quoted
for both sh and systemd is refused naming its pillar key. The templates
sh parses (the exporter's init script, the limits hook) run with every
value they get, and nothing else runs.

The render suite (test/render/test_shell_values.py) renders the SLS files
with hostile pillar values through real Salt.
"""
import subprocess

import jinja2
import pytest
from salt.exceptions import SaltInvocationError

from test.support.modules import ROOT, load, utils

U = utils()
env_line = U["mosquitto_shell.env_line"]
word = U["mosquitto_shell.word"]

# Quotable for both parsers: sh must read them back exactly, run nothing.
QUOTABLE = ["x; touch {marker}", "a b  c", "tcp://[::1]:1883", "*", "~root", "a|b&c>d<e", "#not a comment",
            "%h %i", "", "x=y", "(subshell)", "{brace,expansion}", "\u00e9t\u00e9"]
# Not quotable for both: refused, the key named.
REFUSED = {"$(id)": "a '$'", "`id`": "a backtick", "a\nb": "a line break", "it's": "a single quote",
           'say "hi"': "a double quote", "back\\slash": "a backslash", "cr\r": "a carriage return",
           "nul\x00": "the character '\\x00'", "tab\t": "the character '\\t'"}


def source(tmp_path, text, name):
    env = tmp_path / "env"
    env.write_text(text + "\n")
    out = subprocess.run(["/bin/sh", "-c", f'. {env}; printf %s "${name}"'], cwd=tmp_path,
                         capture_output=True, timeout=10)
    assert out.returncode == 0 and out.stderr == b"", out
    return out.stdout.decode()


@pytest.mark.parametrize("value", QUOTABLE)
def test_quoted_value_reads_back_exactly_and_runs_nothing(tmp_path, value):
    marker = tmp_path / "pwned"
    value = value.replace("{marker}", str(marker))
    line = env_line("MQTT_USER", value, "mosquitto:exporter:user")
    assert line == f"MQTT_USER='{value}'"
    assert source(tmp_path, line, "MQTT_USER") == value
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["env"]


@pytest.mark.parametrize("value, why", sorted(REFUSED.items()))
def test_unquotable_value_is_refused_naming_the_key(value, why):
    with pytest.raises(SaltInvocationError) as err:
        env_line("SERVER_CERT_FILE", value, "mosquitto:tls:cert")
    assert str(err.value).startswith(f"mosquitto:tls:cert: {why} in ")
    assert "SERVER_CERT_FILE=" in str(err.value)


def test_variable_names_are_checked():
    with pytest.raises(SaltInvocationError, match="not an environment variable name"):
        env_line("A B", "x")
    assert env_line("MAX_CONNECTIONS", 1024) == "MAX_CONNECTIONS='1024'"
    assert env_line("X", None) == "X=''"


@pytest.mark.parametrize("value", ["/usr/local/sbin/mosquitto_exporter", "mosquitto-exporter",
                                   "user@host", "65536", "/var/lib/mosquitto", "a+b:c.d_e"])
def test_safe_words_pass(value):
    assert word(value, "mosquitto:exporter:user") == value


@pytest.mark.parametrize("value", ["x; touch /tmp/pwned", "$(id)", "a\nb", "it's", "a b", "%h",
                                   "-rf", "", "ExecStart=/bin/sh", "a\\b", "`id`", "a\"b"])
def test_unsafe_words_are_refused_naming_the_key(value):
    with pytest.raises(SaltInvocationError) as err:
        word(value, "mosquitto:exporter:venv_dir")
    assert str(err.value).startswith("mosquitto:exporter:venv_dir: ")
    assert "refused" in str(err.value)


def test_words_name_the_element():
    with pytest.raises(SaltInvocationError, match=r"^mosquitto:firewall:extra_ports\[1\]: the character ';'"):
        word.__globals__["words"](["1884/tcp", "1885/tcp; id"], "mosquitto:firewall:extra_ports")


def test_execution_module_hands_on_to_utils(monkeypatch):
    mod = load("_modules", "mosquitto_shell")
    assert mod.__virtual__() == "mosquitto_shell"
    assert mod.env_line("A", "b c", "k") == "A='b c'"
    with pytest.raises(SaltInvocationError, match="^k: "):
        mod.word("a b", "k")
    monkeypatch.setattr(mod, "__utils__", {})
    ok, why = mod.__virtual__()
    assert ok is False and "run saltutil.sync_all" in why


# --- templates sh parses, with every value they can get ---------------------


def render(template, **context):
    text = (ROOT / "mosquitto/files/default" / template).read_text()
    return jinja2.Template(text, keep_trailing_newline=True).render(**context)


def test_init_script_passes_each_value_as_one_word(tmp_path):
    """The exporter's init script, its commands replaced by recorders: each
    value arrives as exactly one argument, and the env file's values too."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "args"
    (bin_dir / "start-stop-daemon").write_text(
        f'#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done > {record}\n'
        f'printf "%s\\n" "$MQTT_USER" "$BIND_ADDRESS" >> {record}\n')
    (bin_dir / "start-stop-daemon").chmod(0o755)
    functions = tmp_path / "init-functions"
    functions.write_text("log_daemon_msg() { :; }\nlog_end_msg() { :; }\n")
    env = tmp_path / "exporter.env"
    env.write_text(env_line("MQTT_USER", "x; touch pwned", "k") + "\n"
                   + env_line("BIND_ADDRESS", "0.0.0.0:9234", "k") + "\n")
    context = {"name": "mosquitto-exporter", "env_file": str(env), "user": "mosquitto-exporter",
               "python": "/opt/venv/bin/python", "program": "/usr/local/sbin/mosquitto_exporter"}
    for value in context.values():
        assert word(value, "k") == value
    script = render("mosquitto-exporter.init.jinja", **context).replace(
        ". /lib/lsb/init-functions", f". {functions}")
    (tmp_path / "init").write_text(script)
    subprocess.run(["/bin/sh", str(tmp_path / "init"), "start"], cwd=tmp_path, check=True, timeout=10,
                   env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    args = record.read_text().splitlines()
    assert args[args.index("--chuid") + 1] == "mosquitto-exporter:mosquitto-exporter"
    assert args[args.index("--startas") + 1:args.index("--startas") + 4] == [
        "/opt/venv/bin/python", "--", "/usr/local/sbin/mosquitto_exporter"]
    assert args[-2:] == ["x; touch pwned", "0.0.0.0:9234"]
    assert not (tmp_path / "pwned").exists()


def test_limits_hook_quotes_its_values(tmp_path):
    hook = tmp_path / "hook"
    hook.write_text(render("mosquitto-limits.sh.jinja", daemon="/usr/sbin/mosquitto", open_files=word(4096, "k")))
    out = subprocess.run(["/bin/sh", "-c", f'DAEMON=/usr/sbin/mosquitto; . {hook}; ulimit -Sn'],
                         capture_output=True, text=True, check=True, timeout=10)
    assert out.stdout.strip() == "4096"
