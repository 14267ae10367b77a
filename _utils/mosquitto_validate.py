"""
The pillar checks' common parts, kept once: a collector that gathers every
problem (so one run names them all, each with its key path) and the generic
checks every section uses (a single-line string, an integer in a range, a
boolean, one of some choices, an absolute path, a list, a mapping of known
keys, free-form mosquitto.conf options).

Reached from the execution modules as
``errors = __utils__["mosquitto_validate.collector"]()``; the checks are the
collector's methods, ``errors.integer(["ports", "mqtt"], value, 1, 65535)``.
Salt gives ``_utils`` files no ``__utils__`` of their own, so another utils
file (``mosquitto_bridge_rules``) reaches these checks through the collector
it is handed, never by importing this file.

Each check adds what is wrong under ``mosquitto:<path>`` and returns whether
the value passed, so a caller can skip checks that build on it.
"""
import ipaddress
import re

from salt.exceptions import CommandExecutionError

__virtualname__ = "mosquitto_validate"

_OPTION = re.compile(r"^[a-z][a-z0-9_.]*\Z")


def __virtual__():
    return __virtualname__


def has_control_chars(text):
    """True when ``text`` holds a line break or another control character:
    mosquitto's config format has no escaping, so such a value would start
    a new line (a new option) in the file. Also C1 controls, U+2028/U+2029,
    surrogates and U+FFFE/U+FFFF: the SLS files hand values to templates
    as ``| json`` inside YAML, which reads NEL (U+0085) and U+2028/U+2029
    as line breaks (a path ``/a\x85b`` reached mosquitto.conf as ``/a b``)
    and refuses the others without naming the key (found by the property
    test, test/unit/test_property_render.py)."""
    return any(_is_control(ord(ch)) for ch in text)


def has_edge_blanks(text):
    """True when ``text`` starts or ends with a space or tab. mosquitto
    reads a config value from the first non-blank after the option's name
    to the end of the line, less trailing blanks: a bridge's
    remote_password ' pw' logged in as 'pw', a path '/a ' named '/a'
    (found by the property test). Other blanks are control characters,
    refused anyway."""
    return text != text.strip(" \t")


def _is_control(code):
    return (code < 32 or 127 <= code <= 159 or code in (0x2028, 0x2029, 0xFFFE, 0xFFFF)
            or 0xD800 <= code <= 0xDFFF)


def collector():
    """A new, empty collector of problems (see the module's docstring)."""
    return _Errors()


class _Errors:
    """Collects every problem, so one run names them all."""

    def __init__(self):
        self.items = []

    def add(self, path, problem):
        self.items.append(f"mosquitto:{':'.join(str(p) for p in path)}: {problem}")

    def raise_if_any(self):
        if self.items:
            raise CommandExecutionError(
                "invalid mosquitto pillar (nothing was changed):\n  - "
                + "\n  - ".join(self.items)
            )

    # ------------------------------------------------------------------
    # generic checks: each adds its problem and returns whether it passed
    # ------------------------------------------------------------------

    def mapping(self, path, data, allowed):
        """A mapping whose keys are all in ``allowed`` (the schema: a typo
        in pillar is an error, never a silent no-op)."""
        if not isinstance(data, dict):
            self.add(path, f"must be a mapping, got {type(data).__name__}")
            return False
        for key in sorted(set(data) - set(allowed), key=str):
            self.add(path + [key], f"unknown key (known: {', '.join(sorted(allowed))})")
        return True

    def text(self, path, value, empty=False):
        """A single-line string (mosquitto's config cannot escape newlines)
        without blanks at either end (see has_edge_blanks)."""
        if not isinstance(value, str):
            self.add(path, f"must be a string, got {type(value).__name__}")
            return False
        if not empty and not value.strip():
            self.add(path, "must not be empty")
            return False
        if has_control_chars(value):
            self.add(path, "must not contain line breaks or control characters")
            return False
        if has_edge_blanks(value):
            self.add(path, "must not start or end with a space: mosquitto trims it from a "
                     "value, so it would use another one (' pw' becomes 'pw'); blanks inside are kept")
            return False
        return True

    def integer(self, path, value, low, high):
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"must be an integer, got {value!r}")
            return False
        if not low <= value <= high:
            self.add(path, f"must be between {low} and {high}, got {value}")
            return False
        return True

    def boolean(self, path, value):
        if not isinstance(value, bool):
            self.add(path, f"must be true or false, got {value!r}")
            return False
        return True

    def choice(self, path, value, choices):
        if value not in choices:
            self.add(path, f"must be one of {', '.join(map(str, choices))}, got {value!r}")
            return False
        return True

    def abspath(self, path, value, empty=False):
        """An absolute path; with ``empty`` also '' (the option left out)."""
        if value == "" and empty:
            return True
        if not self.text(path, value):
            return False
        if not value.startswith("/"):
            self.add(path, f"must be an absolute path, got {value!r}")
            return False
        return True

    def listing(self, path, value):
        """The list itself, or [] (with the problem added) when not a list."""
        if not isinstance(value, list):
            self.add(path, f"must be a list, got {type(value).__name__}")
            return []
        return value

    def ip(self, path, value):
        """The address in its normal form, or None when it is none."""
        try:
            return str(ipaddress.ip_address(str(value)))
        except ValueError:
            self.add(path, f"is not an IP address: {value!r}")
            return None

    def table(self, path, section, rows):
        """Keys of one section that are checked alike, in order: ``rows`` of
        ``(key, check, *args)``, ``check`` naming one of the checks above
        (``("days_valid", "integer", 1, 36500)``). A missing key is None."""
        for key, check, *args in rows:
            getattr(self, check)(path + [key], section.get(key), *args)

    def options(self, path, options, owned, allowed=None, per_listener=()):
        """Free-form mosquitto.conf options: name -> scalar or list of scalars.

        owned: names the formula writes itself (name -> where to set it);
        allowed: the only names accepted (listener options); per_listener:
        names refused because they belong under listeners:<name>:options."""
        if not isinstance(options, dict):
            self.add(path, "must be a mapping of mosquitto.conf option to value")
            return
        for key, value in options.items():
            problem = _option_name_problem(key, owned, allowed, per_listener)
            if problem:
                self.add(path + [key], problem)
                continue
            for i, item in enumerate(value if isinstance(value, list) else [value]):
                if isinstance(item, bool) or isinstance(item, (int, float)):
                    continue
                self.text(path + [key] + ([i] if isinstance(value, list) else []), item)


def _option_name_problem(key, owned, allowed, per_listener):
    """Why option ``key`` may not be set here, or None."""
    if not isinstance(key, str) or not _OPTION.match(key):
        return "is not a mosquitto.conf option name"
    if key in owned:
        return f"is managed by the formula: set {owned[key]} instead"
    if key in per_listener:
        return ("is a per-listener option: set it under "
                "listeners:mqtt:options or listeners:mqtts:options")
    if allowed is not None and key not in allowed:
        return (f"is not a per-listener option here (allowed: {', '.join(sorted(allowed))}); "
                "global options go under config")
    return None
