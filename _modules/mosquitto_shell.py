"""
Values rendered into files a shell or systemd parses, quoted or checked
(see _utils/mosquitto_shell.py for the rules). Called from SLS files while
they render, so a bad value fails the render naming its pillar key, before
anything on the host changes:

.. code-block:: jinja

    {{ salt['mosquitto_shell.env_line']('MQTT_USER', exporter.user, 'mosquitto:exporter:user') }}
    User={{ salt['mosquitto_shell.word'](exporter.user, 'mosquitto:exporter:user') }}
"""

__virtualname__ = "mosquitto_shell"


def __virtual__():
    if "mosquitto_shell.env_line" not in __utils__:
        return (False, "mosquitto_shell needs the formula's _utils (run saltutil.sync_all)")
    return __virtualname__


def env_line(name, value, source=None):
    """``NAME='value'`` for a file both systemd and ``sh`` read."""
    return __utils__["mosquitto_shell.env_line"](name, value, source)


def word(value, source):
    """``value`` when it is one token safe unquoted in a unit file or script."""
    return __utils__["mosquitto_shell.word"](value, source)


def words(values, source):
    """word() for each element of a list."""
    return __utils__["mosquitto_shell.words"](values, source)
