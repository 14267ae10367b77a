"""
Values from pillar, grains or the map that the formula writes into files a
shell or systemd parses: the exporter's environment file (systemd's
EnvironmentFile= and ``. file`` in the init script, as root), init scripts,
unit files and drop-ins. Such a value is data, never syntax (DESIGN "Trust
boundaries"): it is either quoted so both parsers read back exactly the
value, or from a charset that no parser treats specially. Anything else is
refused with an error naming where the value came from, at render time,
before the host changes.

- ``env_line``: ``NAME='value'``. systemd's EnvironmentFile= and POSIX sh
  agree on single quotes only while the value holds no quote, backslash,
  ``$``, backtick or line break (systemd unescapes inside double quotes and
  lines ending in a backslash; sh expands ``$`` and backticks in them):
  those and every other control character (C0 and C1), U+2028/U+2029 and
  what YAML cannot hold are refused.
- ``word``: one unquoted token in a unit file or shell script (a path, a
  user, a unit name): letters, digits and ``_ . / @ : + -``, not starting
  with ``-`` (an option; systemd's "ignore errors" prefix). No blank (word
  splitting, two paths in ReadWritePaths=), no ``%`` (systemd specifiers),
  no ``$``, quote or line break.

Reached as ``__utils__["mosquitto_shell.<function>"]``; SLS files use the
``mosquitto_shell`` execution module, which hands these on.
"""
import re

from salt.exceptions import SaltInvocationError

__virtualname__ = "mosquitto_shell"

_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*\Z")
# Refused inside single quotes: see the module's docstring.
# Also C1 controls, U+2028/U+2029 and what YAML cannot carry: the env file
# reaches file.managed as a YAML block in exporter.sls, and YAML reads NEL
# (U+0085) and U+2028/U+2029 as line breaks (seen: a path holding U+0085
# broke the SLS's YAML) and refuses non-characters and lone surrogates.
_ENV_UNSAFE = re.compile("['\"\\\\$`\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufffe\uffff]")
_WORD = re.compile(r"^(?!-)[A-Za-z0-9_./@:+-]+\Z")
_WHAT = {"\n": "a line break", "\r": "a carriage return", "'": "a single quote", '"': "a double quote",
         "\\": "a backslash", "$": "a '$'", "`": "a backtick"}


def __virtual__():
    return __virtualname__


def _describe(char):
    return _WHAT.get(char, f"the character {char!r}")


def env_line(name, value, source=None):
    """``NAME='value'`` for an environment file systemd and sh both read;
    SaltInvocationError naming ``source`` (a pillar key) for a value that
    could not be quoted for both."""
    if not _ENV_NAME.match(str(name)):
        raise SaltInvocationError(f"{name!r} is not an environment variable name")
    text = "" if value is None else str(value)
    bad = _ENV_UNSAFE.search(text)
    if bad:
        raise SaltInvocationError(
            f"{source or name}: {_describe(bad.group())} in {text!r} cannot go into {name}= "
            "of a file systemd and sh read; refused")
    return f"{name}='{text}'"


def word(value, source):
    """``value`` as text when it is one safe token (see the module's
    docstring), else SaltInvocationError naming ``source``."""
    text = str(value)
    if not _WORD.match(text):
        bad = re.search(r"[^A-Za-z0-9_./@:+-]", text)
        why = _describe(bad.group()) if bad else "an empty value or a leading '-'"
        raise SaltInvocationError(
            f"{source}: {why} in {text!r} cannot go into a unit file or shell script "
            "(allowed: letters, digits and _ . / @ : + -, no leading -); refused")
    return text


def words(values, source):
    """word() for each value of a list."""
    return [word(value, f"{source}[{index}]") for index, value in enumerate(values)]
