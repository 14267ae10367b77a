"""
States that take over a broker host the formula did not set up (README
"Migrating from the Ansible playbook").

.. code-block:: yaml

    mosquitto-configure-tls-ca-adopted:
      mosquitto_adopt.ca_adopted:
        - name: /etc/mosquitto/certs/ca.crt          # tls:ca_cert
        - key_path: /etc/mosquitto/ca/ca.key         # tls:ca_key
        - source_cert: /etc/mosquitto/certs/ca.crt   # tls:adopt_ca:cert
        - source_key: /etc/mosquitto/certs/ca.key    # tls:adopt_ca:key

    mosquitto-configure-broker-persistence-handed-over:
      mosquitto_adopt.persistence_handed_over:
        - name: mosquitto
        - conf: /etc/mosquitto/mosquitto.conf
        - location: /var/lib/mosquitto/

The passphrase of an encrypted CA key is read from pillar
(``mosquitto:tls:adopt_ca:key_passphrase``) while the state runs, never a
state argument; ``changes`` hold paths and fingerprints only.
"""
import os
import re
import signal
import stat
import time

from salt.exceptions import CommandExecutionError

__virtualname__ = "mosquitto_adopt"

PASSPHRASE_KEY = "mosquitto:tls:adopt_ca:key_passphrase"


def __virtual__():
    if "mosquitto_adopt.open_ca" not in __salt__:
        return (False, "the mosquitto_adopt execution module is not available")
    return __virtualname__


def _pki(name):
    return __utils__[f"mosquitto_pki.{name}"]


def _cert_plan(name, source_cert, cert):
    """What ca_adopted does about the CA certificate at name: None (it is there)."""
    if os.path.realpath(name) == os.path.realpath(source_cert):
        return None
    if os.path.exists(name):
        if _pki("read_cert")(name, "CA certificate") == cert:
            return None
        raise CommandExecutionError(f"{name} holds another CA certificate: not replacing it")
    return f"copied from {source_cert}"


def _key_plan(key_path, cert):
    """What ca_adopted does about the CA key at key_path: None (it is there)."""
    if os.path.exists(key_path):
        try:
            if _pki("key_matches")(cert, _pki("read_key")(key_path, "CA key")):
                return None
        except CommandExecutionError:
            pass
        raise CommandExecutionError(f"{key_path} holds another (or an unreadable) key: not replacing it")
    return "written unencrypted, root:root 0600"


def ca_adopted(name, key_path, source_cert, source_key, passphrase_pillar=PASSPHRASE_KEY):
    """
    The CA at ``source_cert``/``source_key`` (made elsewhere, e.g. with the
    openssl CLI) becomes the formula's CA: its certificate at ``name``, its
    key, opened with the pillar's passphrase, unencrypted at ``key_path``
    (root-only; the directory is configure.tls's, 0700). The sources are
    left as they are. A file already at ``name`` or ``key_path`` that is
    not this CA's is never replaced.
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    try:
        cert, key = __salt__["mosquitto_adopt.open_ca"](source_cert, source_key, passphrase_pillar)
        plans = {"ca_cert": _cert_plan(name, source_cert, cert), "ca_key": _key_plan(key_path, cert)}
    except CommandExecutionError as exc:
        ret["comment"] = f"CA {source_cert} not adopted: {exc}"
        return ret
    fingerprint = _pki("info")(cert, cert.not_valid_before_utc)["fingerprint"]
    changes = {k: {"old": None, "new": f"{v} (CA {fingerprint})"} for k, v in plans.items() if v}
    if not changes:
        ret.update(result=True, comment=f"CA {source_cert} is the formula's CA ({name}, key {key_path})")
        return ret
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"CA {source_cert} would be adopted")
        return ret
    try:
        if plans["ca_cert"]:
            __utils__["mosquitto_files.atomic_write"](name, _pki("cert_pem")(cert), 0o644, 0, 0, overwrite=False)
        if plans["ca_key"]:
            __utils__["mosquitto_files.atomic_write"](key_path, _pki("key_pem")(key), 0o600, 0, 0, overwrite=False)
    except (OSError, CommandExecutionError) as exc:
        ret["comment"] = f"CA {source_cert} not adopted: {exc}"
        return ret
    ret.update(result=True, changes=changes, comment=f"CA {source_cert} adopted")
    return ret


def _main_pid(name):
    """The running broker's PID (systemd's MainPID, else the pid file), or None."""
    if __grains__.get("init") == "systemd":
        res = __salt__["cmd.run_all"](["systemctl", "show", "--property=MainPID", "--value", "--", name],
                                      python_shell=False, ignore_retcode=True, output_loglevel="trace")
        pid = res["stdout"].strip()
        return int(pid) if res["retcode"] == 0 and pid.isdigit() and pid != "0" else None
    try:
        with open(f"/run/{name}/{name}.pid", encoding="ascii") as fh:
            pid = int(fh.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _saved_since(path, since):
    try:
        return os.stat(path).st_mtime >= since
    except FileNotFoundError:
        return False


# The running config's own persistence lines, replaced for the handover
# (mosquitto refuses a repeated persistence_location or persistence_file).
_PERSISTENCE_LINE = re.compile(r"^\s*(persistence|persistence_location|persistence_file)(\s|$)")


def _with_persistence(conf, location):
    """The running broker's mosquitto.conf with persistence at location:
    everything else as it is (a reload refuses changed listeners)."""
    with open(conf, encoding="utf-8", errors="surrogateescape") as fh:
        kept = [line for line in fh.read().splitlines() if not _PERSISTENCE_LINE.match(line)]
    kept += ["", "# mosquitto-formula: persistence for the handover (its own file replaces this one next)",
             "persistence true", f"persistence_location {location}"]
    return ("\n".join(kept) + "\n").encode("utf-8", "surrogateescape")


def persistence_handed_over(name, conf, location, timeout=30):
    """
    Before the formula replaces ``conf``: the running broker ``name``,
    started from that file without the formula's persistence (the
    playbook's has none: offline sessions and their queued messages live
    only in memory), gets persistence at ``location`` added to its own file
    (nothing else changes: a reload refuses changed listeners), re-reads it
    (SIGHUP: mosquitto 2.0 takes persistence and its location on a reload)
    and saves its store to ``<location>mosquitto.db`` (SIGUSR1, until the
    file is newer than the reload). The formula's file and the restart that
    follow load every session and queued message from there. A broker that
    is not running has nothing to hand over.
    """
    ret = {"name": name, "result": True, "changes": {}, "comment": ""}
    pid = _main_pid(name)
    store = os.path.join(location, "mosquitto.db")
    if pid is None:
        ret["comment"] = f"{name} is not running: no sessions in memory to hand over"
        return ret
    if __opts__["test"]:
        ret.update(result=None, changes={"store": store},
                   comment=f"{name} would save its sessions to {store} before its config is replaced")
        return ret
    since = time.time() - 1  # whole-second mtimes on some filesystems
    try:
        info = os.stat(conf)
        __utils__["mosquitto_files.atomic_write"](conf, _with_persistence(conf, location),
                                                  stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)
        os.kill(pid, signal.SIGHUP)
        deadline = time.monotonic() + float(timeout)
        while not _saved_since(store, since):
            if time.monotonic() > deadline:
                ret.update(result=False, comment=f"{name} (pid {pid}) did not save {store} within {timeout} s "
                                                 f"after a reload (see its log): not replacing {conf}")
                return ret
            time.sleep(0.5)
            os.kill(pid, signal.SIGUSR1)
    except ProcessLookupError:
        ret["comment"] = f"{name} (pid {pid}) ended meanwhile: no sessions in memory to hand over"
        return ret
    except (OSError, CommandExecutionError) as exc:
        ret.update(result=False, comment=f"{name}: sessions not handed over: {exc}")
        return ret
    ret.update(changes={"store": store}, comment=f"{name} saved its sessions to {store} before its config is replaced")
    return ret
