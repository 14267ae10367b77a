"""Strict readers for the files the formula writes, as their consumers read
them (issue #20's property test, test/unit/test_property_render.py).

Each reader returns what the consumer would take from the text and raises
``Unreadable`` for a line whose meaning depends on details the formula
must never rely on: a control character, blanks the consumer trims, an
unknown keyword. The property then compares what was read with what the
pillar asked for: no line more, none less.

- mosquitto.conf and bridge files (mosquitto 2.0 conf.c): lines split at
  ``\\n`` only (fgets); ``#`` first is a comment; a directive is
  ``<name> <value>``, the value the rest of the line (no escaping, trailing
  blanks trimmed). ``listener`` opens a listener section, ``connection`` a
  bridge section.
- the ACL file (security_default.c): ``user <rest of line>``,
  ``topic|pattern [read|write|readwrite|deny] <topic>``.
- the password file (pwfile): ``user:hash`` lines.
- an environment file, as systemd's EnvironmentFile= reads it and as POSIX
  sh reads it (a small emulation for the single-quoted form the formula
  writes, plus ``sh_environment`` that asks the real /bin/sh).
- systemd units and drop-ins: ``[Section]`` headers and ``Key=value`` lines.
"""
import re
import subprocess

_BLANKS = " \t\n\v\f\r"
_NAME = re.compile(r"^[a-z][a-z0-9_.]*\Z")
ACCESS = ("read", "write", "readwrite", "deny")


class Unreadable(ValueError):
    """A line a consumer would read otherwise than the formula meant."""


def _lines(text):
    """Lines as fgets() sees them (split at \\n only), the last newline
    required: a file that does not end in one is not the formula's."""
    if text and not text.endswith("\n"):
        raise Unreadable(f"no newline at the end of the file: {text[-40:]!r}")
    return text.split("\n")[:-1] if text else []


def _control(line):
    return any(ord(ch) < 32 or ord(ch) == 127 for ch in line)


def _strict_line(line, what):
    if _control(line):
        raise Unreadable(f"{what}: control character in {line!r}")
    if line != line.strip(_BLANKS):
        raise Unreadable(f"{what}: blanks at either end of {line!r} (the reader trims them)")


# --------------------------------------------------------------------------
# mosquitto.conf and bridge files
# --------------------------------------------------------------------------


def directives(text, what="mosquitto.conf"):
    """[(name, value)] of every directive line, in order; comments and
    empty lines skipped."""
    out = []
    for line in _lines(text):
        if line == "" or line.startswith("#"):
            continue
        _strict_line(line, what)
        name, sep, value = line.partition(" ")
        if not _NAME.match(name):
            raise Unreadable(f"{what}: {name!r} is no option name ({line!r})")
        if not sep or value == "" or value != value.strip(_BLANKS):
            raise Unreadable(f"{what}: {name} without a value, or blanks around it ({line!r})")
        out.append((name, value))
    return out


def sections(text, what="mosquitto.conf"):
    """mosquitto.conf as {"global": [(name, value)], "listeners":
    [(header, [(name, value)])], "bridges": [(name, [(name, value)])]}:
    a listener's options are the lines after its ``listener`` line up to
    the next listener or connection; a bridge's likewise."""
    out = {"global": [], "listeners": [], "bridges": []}
    current = out["global"]
    for name, value in directives(text, what):
        if name == "listener":
            current = []
            out["listeners"].append((value, current))
        elif name == "connection":
            current = []
            out["bridges"].append((value, current))
        else:
            current.append((name, value))
    return out


def bridge_file(text):
    """One bridge file: exactly one ``connection`` section, nothing before it.
    Returns (name, [(option, value)])."""
    parsed = sections(text, "bridge file")
    if parsed["global"] or parsed["listeners"] or len(parsed["bridges"]) != 1:
        raise Unreadable(f"bridge file is not exactly one connection section: {parsed}")
    return parsed["bridges"][0]


# --------------------------------------------------------------------------
# ACL file
# --------------------------------------------------------------------------


def _rule(rest, line):
    """'[access] topic' after topic/pattern -> (access, topic)."""
    access, sep, topic = rest.partition(" ")
    if access in ACCESS:
        if not sep or not topic or topic != topic.strip(_BLANKS) or " " in topic:
            raise Unreadable(f"acl: bad topic in {line!r}")
        return access, topic
    if " " in rest:
        raise Unreadable(f"acl: {access!r} is no access keyword ({line!r})")
    return "readwrite", rest


def acl(text):
    """{"patterns": [(access, topic)], "users": [(name, [(access, topic)])]}
    (users in file order, a name possibly twice: the caller checks)."""
    out = {"patterns": [], "users": []}
    rules = None
    for line in _lines(text):
        if line == "" or line.startswith("#"):
            continue
        _strict_line(line, "acl")
        keyword, sep, rest = line.partition(" ")
        if not sep or not rest:
            raise Unreadable(f"acl: {keyword!r} without an argument")
        if keyword == "user":
            rules = []
            out["users"].append((rest, rules))
        elif keyword == "pattern":
            if rules is not None:
                # Legal for mosquitto, but the formula writes patterns first.
                raise Unreadable(f"acl: pattern after a user section ({line!r})")
            out["patterns"].append(_rule(rest, line))
        elif keyword == "topic":
            if rules is None:
                raise Unreadable(f"acl: topic rule for anonymous clients ({line!r})")
            rules.append(_rule(rest, line))
        else:
            raise Unreadable(f"acl: unknown keyword {keyword!r}")
    return out


# --------------------------------------------------------------------------
# password file
# --------------------------------------------------------------------------


def passwd(text):
    """[(user, hash)] in file order; comments and blank lines are not the
    formula's, so they are refused too."""
    out = []
    for line in _lines(text):
        _strict_line(line, "passwd")
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed or user.startswith("#"):
            raise Unreadable(f"passwd: not user:hash: {line!r}")
        if ":" in hashed or user != user.strip(_BLANKS):
            raise Unreadable(f"passwd: ambiguous line {line!r}")
        out.append((user, hashed))
    return out


# --------------------------------------------------------------------------
# environment files: systemd EnvironmentFile= and POSIX sh
# --------------------------------------------------------------------------

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


def env_systemd(text):
    """{name: value} as systemd reads EnvironmentFile= (comments '#' or ';',
    NAME=value, a single-quoted value verbatim). Anything that needs
    systemd's escaping rules (backslash, double quotes, continuation lines,
    text after a closing quote) is refused: the formula never writes it."""
    out = {}
    for line in _lines(text):
        stripped = line.strip(_BLANKS)
        if stripped == "" or stripped[0] in "#;":
            continue
        _strict_line(line, "env")
        name, sep, value = line.partition("=")
        if not sep or not _ENV_NAME.match(name):
            raise Unreadable(f"env: not NAME=value: {line!r}")
        if len(value) >= 2 and value[0] == value[-1] == "'" and "'" not in value[1:-1] \
                and "\\" not in value:
            out[name] = value[1:-1]
        elif value and not re.search(r"['\"\\$` ]", value):
            out[name] = value
        else:
            raise Unreadable(f"env: value needs systemd's unquoting rules: {line!r}")
    return out


def env_sh(text):
    """{name: value} as ``. file`` in POSIX sh assigns them, for the forms
    the formula writes (NAME='value' without a quote inside, or a plain
    word of safe characters); anything else is refused."""
    out = {}
    for line in _lines(text):
        if line.strip(" \t") == "" or line.lstrip(" \t").startswith("#"):
            continue
        if _control(line) or line != line.strip(" \t"):
            raise Unreadable(f"sh: control character or blanks in {line!r}")
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)\Z", line)
        if not m:
            raise Unreadable(f"sh: not an assignment: {line!r}")
        name, value = m.groups()
        if re.match(r"^'[^']*'\Z", value):
            out[name] = value[1:-1]
        elif re.match(r"^[A-Za-z0-9_./@:+,-]*\Z", value):
            out[name] = value
        else:
            raise Unreadable(f"sh: value is more than one quoted word: {line!r}")
    return out


def sh_environment(path, names):
    """What the real /bin/sh assigns to ``names`` after ``. path`` (values
    printed NUL-separated, so any byte reads back)."""
    script = f'. "{path}" >/dev/null 2>&1 || exit 97; printf "%s\\0" ' + " ".join(f'"${n}"' for n in names)
    proc = subprocess.run(["/bin/sh", "-c", script], capture_output=True, timeout=10,
                          env={"PATH": "/usr/bin:/bin"}, cwd="/")
    if proc.returncode != 0 or proc.stderr:
        raise Unreadable(f"sh could not source {path}: rc {proc.returncode} {proc.stderr!r}")
    values = proc.stdout.decode("utf-8", "surrogateescape").split("\0")[:-1]
    return dict(zip(names, values, strict=True))


# --------------------------------------------------------------------------
# systemd units and drop-ins
# --------------------------------------------------------------------------


def unit(text):
    """[(section, key, value)] of a unit file or drop-in, in order. Lines
    systemd would join (trailing backslash) or whose value carries
    specifiers (%) or quoting are refused."""
    out = []
    section = None
    for line in _lines(text):
        if line.strip(_BLANKS) == "" or line.lstrip(_BLANKS)[0] in "#;":
            continue
        _strict_line(line, "unit")
        if line.startswith("["):
            if not re.match(r"^\[[A-Za-z]+\]\Z", line):
                raise Unreadable(f"unit: bad section header {line!r}")
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if section is None or not sep or not re.match(r"^[A-Za-z][A-Za-z0-9]*\Z", key):
            raise Unreadable(f"unit: not Key=value in a section: {line!r}")
        if value.endswith("\\") or "%" in value:
            raise Unreadable(f"unit: continuation or specifier in {line!r}")
        out.append((section, key, value))
    return out
