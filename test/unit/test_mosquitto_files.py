"""The formula's _utils: one file writer, owner/mode helpers and name rules
for every module (mosquitto_ca, mosquitto_passwd, mosquitto_bridge, the
passwd state, mosquitto_config).

The writer's order of system calls (mode and owner before content, fsync
before the rename, the directory fsynced after it) is read from strace of a
real write, not assumed.
"""
import grp
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest
import salt.config
import salt.loader
from salt.exceptions import CommandExecutionError, SaltInvocationError

from test.support.modules import ROOT, load, utils

U = utils()
MOSQUITTO_GID = grp.getgrnam("mosquitto").gr_gid


def stat_of(path):
    st = os.stat(path)
    return f"{st.st_mode & 0o7777:04o}", st.st_uid, st.st_gid


def test_salt_loader_exposes_the_same_utils():
    """Salt's own utils loader, pointed at _utils/ as a minion's synced
    extmods/utils, offers exactly the functions the tests pack."""
    opts = salt.config.minion_config(None)
    opts["utils_dirs"] = [str(ROOT / "_utils")]
    loaded = salt.loader.utils(opts)
    ours = {name for name in loaded if name.split(".")[0].startswith("mosquitto_")}
    assert ours == set(U), sorted(ours ^ set(U))
    assert loaded["mosquitto_files.normalize_mode"]("640") == 0o640


def test_atomic_write_order_of_system_calls(tmp_path):
    """Mode and owner reach the temp file before its first byte, the file
    is fsynced before the rename and the directory after it."""
    target = tmp_path / "server.key"
    target.write_bytes(b"old")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from test.support.modules import utils
        utils()["mosquitto_files.atomic_write"]({str(target)!r}, b"new secret", 0o640, 0, {MOSQUITTO_GID})
    """)
    proc = subprocess.run(
        ["strace", "-f", "-e", "trace=openat,fchmod,fchown,write,fsync,rename,renameat,renameat2", "-o",
         str(tmp_path / "trace"), sys.executable, "-c", script],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    trace = (tmp_path / "trace").read_text().splitlines()
    start = next(i for i, line in enumerate(trace) if f'"{tmp_path}/.server.key.' in line and "O_CREAT" in line)
    fd = re.search(r"= (\d+)$", trace[start]).group(1)
    calls = [re.sub(r"^\d+\s+", "", line) for line in trace[start + 1:]]
    want = [f"fchmod({fd}, 0640)", f"fchown({fd}, 0, {MOSQUITTO_GID})", f'write({fd}, "new secret"',
            f"fsync({fd})", "rename(", f'openat(AT_FDCWD, "{tmp_path}"', "fsync("]
    at = 0
    for call in calls:
        if at < len(want) and call.startswith(want[at]):
            at += 1
    assert at == len(want), (want[at], calls)
    assert target.read_bytes() == b"new secret"
    assert stat_of(target) == ("0640", 0, MOSQUITTO_GID)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.key", "trace"]


def test_atomic_write_without_overwrite_keeps_an_existing_file(tmp_path):
    target = tmp_path / "ca.key"
    target.write_bytes(b"the CA")
    with pytest.raises(CommandExecutionError, match=r"ca.key appeared meanwhile; not overwriting it"):
        U["mosquitto_files.atomic_write"](str(target), b"another CA", 0o600, overwrite=False)
    assert target.read_bytes() == b"the CA"
    assert [p.name for p in tmp_path.iterdir()] == ["ca.key"]
    fresh = tmp_path / "ca.crt"
    U["mosquitto_files.atomic_write"](str(fresh), b"cert", 0o644, overwrite=False)
    assert fresh.read_bytes() == b"cert" and stat_of(fresh)[0] == "0644"
    assert os.stat(fresh).st_nlink == 1  # the temp name is gone


def test_atomic_write_failure_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "passwd"
    target.write_bytes(b"alice:$7$...\n")
    with pytest.raises(TypeError):
        U["mosquitto_files.atomic_write"](str(target), "not bytes", 0o640)
    assert target.read_bytes() == b"alice:$7$...\n"
    assert [p.name for p in tmp_path.iterdir()] == ["passwd"]


def test_atomic_write_needs_the_directory(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(CommandExecutionError, match=f"directory {missing} does not exist"):
        U["mosquitto_files.atomic_write"](str(missing / "f"), b"x", 0o600)
    assert not missing.exists()


def test_owner_ids():
    ids = U["mosquitto_files.owner_ids"]
    assert ids("root", "mosquitto") == (0, MOSQUITTO_GID)
    assert ids(None, None) == (None, None)
    assert ids(0, 7) == (0, 7)
    with pytest.raises(CommandExecutionError, match="^user 'no-such-user' does not exist$"):
        ids("no-such-user", "root")
    with pytest.raises(CommandExecutionError,
                       match=r"^group 'no-such-group' does not exist \(is mosquitto installed\?\)$"):
        ids("root", "no-such-group", group_hint="is mosquitto installed?")


@pytest.mark.parametrize("mode", ["0640", "640", 640, "0o640", "'0640'"])
def test_normalize_mode(mode):
    assert U["mosquitto_files.normalize_mode"](mode) == 0o640


@pytest.mark.parametrize("mode", ["rw-r-----", "0999", "77777"])
def test_normalize_mode_refuses(mode):
    with pytest.raises(SaltInvocationError, match=f"mode {mode!r} is not an octal file mode"):
        U["mosquitto_files.normalize_mode"](mode)


def test_attr_changes_and_set_attrs(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    os.chmod(path, 0o644)
    changes, set_attrs = U["mosquitto_files.attr_changes"], U["mosquitto_files.set_attrs"]
    assert changes(str(path), 0, MOSQUITTO_GID, 0o640) == {
        "mode": {"old": "0644", "new": "0640"}, "group": {"old": "root", "new": "mosquitto"}}
    assert changes(str(path), None, None, None) == {}
    assert changes(str(tmp_path / "missing"), 0, 0, 0o600) == {}
    set_attrs(str(path), None, MOSQUITTO_GID, None)
    assert stat_of(path) == ("0644", 0, MOSQUITTO_GID)
    set_attrs(str(path), 0, 0, 0o600)
    assert stat_of(path) == ("0600", 0, 0)
    assert changes(str(path), 0, 0, 0o600) == {}


@pytest.mark.parametrize("name", ["mqtt.example.com", "localhost", "a-b.c", "x" * 63 + ".io"])
def test_dns_names_accepted(name):
    assert U["mosquitto_names.is_dns_name"](name)


@pytest.mark.parametrize("name", ["", "bad name.example.com", "-a.example.com", "a-.example.com",
                                  "under_score.example.com", "10.0.0.1", "x" * 64 + ".io",
                                  ("a" * 62 + ".") * 4 + "io", "*.example.com", None])
def test_dns_names_refused(name):
    assert not U["mosquitto_names.is_dns_name"](name)


def test_wildcard_only_where_asked():
    assert U["mosquitto_names.is_dns_name"]("*.example.com", wildcard=True)
    assert not U["mosquitto_names.is_dns_name"]("*.*.example.com", wildcard=True)
    assert not U["mosquitto_names.is_dns_name"]("a.*.example.com", wildcard=True)


@pytest.mark.parametrize("name", ["under_score.example.com", "10.0.0.1", "bad name.example.com"])
def test_ca_and_validation_refuse_the_same_names(name):
    """A name pillar validation refuses is one the CA refuses to sign too."""
    cfg, ca = load("_modules", "mosquitto_config"), load("_modules", "mosquitto_ca")
    assert not cfg.is_dns_name(name)
    with pytest.raises(CommandExecutionError, match="invalid DNS name"):
        ca._wanted_sans(None, [name], [])


@pytest.mark.parametrize("name", ["site-b", "b.example_1", "A"])
def test_bridge_names(name):
    assert U["mosquitto_names.is_bridge_name"](name)


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "a b", "_x", 5])
def test_bridge_names_refused(name):
    assert not U["mosquitto_names.is_bridge_name"](name)


def test_pillar_plain_value():
    pillar = {"mosquitto": {"users": {"alice": {"password": "s3cret"}}}}
    assert U["mosquitto_pillar.plain_value"](pillar, "mosquitto:users:alice:password") == "s3cret"
    assert U["mosquitto_pillar.plain_value"](pillar, "mosquitto:users:bob:password") is None


def test_no_module_keeps_its_own_copy():
    """The writer, owner lookups and name rules live in _utils only."""
    copies = re.compile(r"mkstemp|fchown|fchmod|getpwnam|getgrnam|os\.fsync|(?<!\w)normalize_mode\(|"
                        r"_DNS_LABEL|DNS_RE|traverse_dict_and_list|\[A-Za-z0-9\]\[A-Za-z0-9_\.-\]\*")
    found = [f"{path.relative_to(ROOT)}: {line.strip()}"
             for folder in ("_modules", "_states") for path in sorted((ROOT / folder).glob("*.py"))
             for line in path.read_text().splitlines()
             if copies.search(line) and "__utils__" not in line and not line.lstrip().startswith("#")]
    # container names are Docker's rule, not a bridge name: the one allowed match
    docker = '_modules/mosquitto_config.py: _DOCKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\\Z")'
    assert found == [docker], found
    assert pathlib.Path(ROOT / "_utils" / "mosquitto_files.py").exists()


@pytest.mark.parametrize("name", ["mosquitto_config", "mosquitto_ca", "mosquitto_passwd", "mosquitto_bridge",
                                  "mosquitto_map", "mosquitto_tofs"])
def test_modules_without_utils_say_to_sync(monkeypatch, name):
    """Synced modules without _utils (saltutil.sync_modules alone) do not
    load, so every SLS file says "run saltutil.sync_all" instead of a KeyError
    halfway through a run."""
    module = load("_modules", name)
    assert module.__virtual__() == name
    monkeypatch.setattr(module, "__utils__", {})
    ok, why = module.__virtual__()
    assert ok is False and "run saltutil.sync_all" in why
