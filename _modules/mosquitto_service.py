"""
Provider add-on for service states on hosts where systemd is not PID 1.

Listed after the distribution's sysv module in a state's ``provider``, it
replaces the functions that misbehave there:

- ``offline``: Salt loads its systemd service module whenever a
  ``systemctl`` binary exists ("offline" mode). A per-state provider replaces
  only the functions the sysv module has, so ``service.offline`` still comes
  from systemd, says True, and ``service.running`` answers "Running in
  OFFLINE mode. Nothing to do" without starting anything.
- ``enable`` (Debian): debian_service runs ``insserv`` first, which Debian 12
  does not ship; ``update-rc.d`` alone registers and enables the script.

.. code-block:: yaml

    - provider:
      - service: debian_service
      - service: mosquitto_service
"""

import salt.loader

__virtualname__ = "mosquitto_service"


def __virtual__():
    return __virtualname__


def offline():
    """The init scripts are in charge here: there is no offline systemd to defer to."""
    return False


def enable(name, **kwargs):
    """Start ``name`` at boot: ``update-rc.d NAME defaults`` then ``enable``."""
    if __grains__.get("os_family") != "Debian":
        # Other families keep their sysv module's own enable (chkconfig).
        funcs = salt.loader.raw_mod(__opts__, "rh_service", __salt__)
        return funcs["rh_service.enable"](name, **kwargs)
    for action in ("defaults", "enable"):
        if __salt__["cmd.retcode"](["update-rc.d", name, action], python_shell=False) != 0:
            return False
    return True
