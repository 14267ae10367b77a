"""
Provider add-on for service states on hosts where systemd is not PID 1.

Salt loads its systemd service module whenever a ``systemctl`` binary exists
("offline" mode). A per-state ``provider: debian_service`` replaces only the
functions debian_service has, so ``service.offline`` still comes from
systemd and says True, and ``service.running`` then answers "Running in
OFFLINE mode. Nothing to do" without starting anything. Listed after the
sysv provider, this module replaces that one function:

.. code-block:: yaml

    - provider:
      - service: debian_service
      - service: mosquitto_service
"""

__virtualname__ = "mosquitto_service"


def __virtual__():
    return __virtualname__


def offline():
    """The init scripts are in charge here: there is no offline systemd to defer to."""
    return False
