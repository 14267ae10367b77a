"""Test hosts for the "fleet" suite: real systemd hosts on a private bridge.

What it builds (all of it is torn down again; see "Leftovers"):

* a base root per Debian release (``SUITES``: bookworm, the default, and
  trixie), each built once with ``debootstrap --variant=minbase`` and
  cached outside the repository (``CACHE_DIR``, default
  ``/var/cache/mosquitto-formula``). It is as bare as an operator's minbase
  host: only what the harness needs (``BASE_PACKAGES``: systemd, dbus,
  iproute2, python3 with salt in a venv at ``/opt/salt`` from wheels built
  once: on this machine for bookworm (same Python 3.11 ABI), inside a
  throwaway overlay over the trixie root for trixie's Python 3.13, where
  the compiler timelib needs is installed, never in the base). No procps (so no ``/bin/kill``,
  ``ps``, ``sysctl``), no curl. Every package the formula installs
  (``FORMULA_PACKAGES``, with their dependencies and recommends) is NOT
  installed but downloaded into the base's apt cache beside the apt lists:
  the hosts have no network, and the formula's ``pkg.installed`` states
  install them for real, offline, as on a host with a local mirror. A stamp
  file holds a hash of everything the build depends on (``base_key``); a
  missing or stale base is rebuilt in a temp dir that is renamed into place
  only when complete. ``python -m test.support.fleet build-base [--suite trixie]``
  builds one ahead of a run.
* a Linux bridge ``mqtbr0`` holding 198.18.0.1/24 (the only range used),
  a client network namespace ``mqtcli0`` at 198.18.0.100 on it, with
  ``/etc/netns/mqtcli0/hosts`` so the hosts' names resolve there.
* hosts: an overlayfs over the base (a full copy when overlayfs fails),
  booted with ``systemd-nspawn --boot --network-bridge=mqtbr0
  --register=no --keep-unit``, each in a cgroup of its own
  (``/sys/fs/cgroup/{unified,systemd}/mqtt-fleet/<bridge>-<machine>``; see
  ``_host_cgroups`` for why). Before boot the harness writes into the host's
  root its address (``/etc/mqtt-fleet/net.env``, set by
  ``mqtt-fleet-net.service`` before ``network.target``), ``/etc/hostname``,
  ``/etc/hosts`` naming every test host and the master (``salt``,
  ``master.test``), an empty ``/etc/resolv.conf`` and ``/etc/salt/minion``;
  ``salt-minion.service`` is enabled and ordered after the address, so a
  reboot comes back on its own. Hosts get 198.18.0.11, .12, ... in order.

API::

    lab = Lab().setup()                  # lock, stale cleanup, base, bridge, netns
    fleet = Fleet(lab, ["mqtt1.test", "mqtt2.test"], master=salt_master)
    Fleet(lab, ["a.test", "b.test"], master=m, suites={"a.test": "trixie"})
                                         # Debian 13 beside 12 (default suite=)
    fleet.start()                        # boot all in parallel, wait for minions
    h = fleet["mqtt1.test"]              # or fleet.hosts[...]; iterate: for h in fleet
    h.ip                                 # "198.18.0.11"
    h.run("systemctl is-active mosquitto", check=False)  # CompletedProcess
    h.salt_call("grains.get", "osfinger")                # salt-call, parsed
    h.path("/etc/mosquitto/mosquitto.conf").read_text()  # host's files from here
    h.restart()                          # clean reboot, waits for the minion
    h.stop(); h.start(); h.kill_pid1()   # power off, boot, crash
    fleet.wait_minions([h], after=t)     # after h.start(): minion is back
    fleet.client.run(["mosquitto_sub", "-h", "mqtt1.test", ...])  # client netns
    fleet.client.popen([...])            # long-running client, caller ends it
    fleet.client.ping(h.ip)              # ICMP echo, True/False
    fleet.client.tcp_open(h.ip, 8883)    # TCP connect, True/False
    fleet.salt("state.apply", "mosquitto", "sync_mods=all",
               tgt="*", timeout=900, check=True)   # {minion: return}
    fleet.teardown(); lab.teardown()

``Host.run`` enters every namespace of the host's PID 1 (``nsenter -a``)
with a clean environment; a string runs through ``/bin/sh -c`` (dash). With
``check=True`` a failure raises ``CommandFailed`` carrying stdout and
stderr. The process stays in this machine's cgroup: start daemons inside a
host with ``systemd-run``, not ``&``. ``Client.run`` is ``ip netns exec
mqtcli0`` with this machine's files and environment (its tools, the venv's
Python). ``Fleet.salt`` runs the ``salt`` CLI of the salt-factories master
(``--static``, JSON) and returns ``{minion: return}`` even for one minion;
``check=True`` raises when a minion did not answer or returned False, or a
state failed or did not render. ``fleet.last`` is the full result.

From pytest use the fixtures in ``conftest.py`` beside this file
(``fleet_factory``, ``fleet_pillar``, ``fleet_master``, ``fleet_lab``).

Leftovers: one lab at a time per machine (a ``flock`` on ``LOCK_FILE``, held
for the lab's life). Under that lock anything under the lab's run dir
(``RUN_DIR``), cgroups ``mqtt-fleet/<bridge>-*``, a bridge called ``mqtbr0``,
a netns called ``mqtcli0`` and ``/etc/netns/mqtcli0`` can only be the
remains of a crashed earlier run and are removed first
(``python -m test.support.fleet cleanup`` does the same by hand); a
``systemd-nspawn`` is only ever killed when its ``-D`` names a directory
under the run dir. Teardown runs from the pytest finalizers, from
``atexit`` and on SIGTERM (turned into KeyboardInterrupt). Processes are
ended by PID, never by name. ``Host.stop``: SIGTERM to its
``systemd-nspawn`` (its systemd powers off, ~7 s with salt-minion), SIGKILL
to the container's PID 1 after the grace period. ``Fleet.teardown`` kills
PID 1 at once: those hosts are thrown away.
"""
from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

log = logging.getLogger(__name__)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]

CACHE_DIR = pathlib.Path(os.environ.get("MQTT_FLEET_CACHE", "/var/cache/mosquitto-formula"))
RUN_DIR = pathlib.Path(os.environ.get("MQTT_FLEET_RUN_DIR", "/var/tmp/mosquitto-formula-fleet"))
LOCK_FILE = pathlib.Path("/run/lock/mosquitto-formula-fleet.lock")

# Debian releases a host can boot: suite -> the Python its python3 is (the
# salt venv's wheels must match its ABI). bookworm is the default; hosts of
# different suites boot side by side (one cached base root per suite).
SUITES = {"bookworm": (3, 11), "trixie": (3, 13)}
SUITE = "bookworm"
MIRROR = os.environ.get("MQTT_FLEET_MIRROR", "http://deb.debian.org/debian")

# What the harness itself needs on a host: systemd, dbus, addresses, salt's
# Python. Nothing more: the hosts are as bare as debootstrap's minbase (no
# procps, no curl), so the formula meets what an operator's host offers.
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "python3",
    "python3-venv",
    "netbase",
)

# What the formula installs (mosquitto/parameters, Debian): downloaded into
# the base's apt cache with their dependencies and recommends, not installed.
FORMULA_PACKAGES = (
    "mosquitto",
    "mosquitto-clients",
    "firewalld",
    "python3-paho-mqtt",
    "python3-prometheus-client",
    "ca-certificates",
    "logrotate",
)

SALT_REQUIREMENTS = ("salt==3008.4", "cryptography", "paho-mqtt", "prometheus-client")

# Timers of the base packages that only make noise on a host without network.
BASE_DISABLED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
)

SALT_MINION_UNIT = """\
[Unit]
Description=The Salt Minion (test fleet, /opt/salt venv)
Documentation=man:salt-minion(1)
Wants=network-online.target
After=network-online.target mqtt-fleet-net.service

[Service]
Type=simple
KillMode=process
LimitNOFILE=8192
ExecStart=/opt/salt/bin/salt-minion
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
"""

NET_UNIT = """\
[Unit]
Description=Test fleet address on host0
DefaultDependencies=no
After=systemd-sysctl.service
Before=network.target network-online.target
Wants=network.target

[Service]
Type=oneshot
RemainAfterExit=yes
EnvironmentFile=/etc/mqtt-fleet/net.env
ExecStart=/sbin/ip link set lo up
ExecStart=/sbin/ip link set host0 up
ExecStart=/sbin/ip addr replace ${ADDRESS} dev host0

[Install]
WantedBy=sysinit.target
"""

BRIDGE = "mqtbr0"
CLIENT_NS = "mqtcli0"
CLIENT_VETH = "mqtcli0-br"
NETWORK = "198.18.0"
PREFIX = 24
MASTER_IP = f"{NETWORK}.1"
CLIENT_IP = f"{NETWORK}.100"
FIRST_HOST = 11
MASTER_NAMES = ("salt", "master.test")

# Bumped when the build recipe below changes in a way the hash cannot see.
RECIPE_VERSION = 2

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class FleetError(RuntimeError):
    pass


class CommandFailed(FleetError):
    def __init__(self, where, result):
        self.result = result
        super().__init__(
            f"{where}: {result.args!r} exited {result.returncode}\n"
            f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )


def _sh(args, check=True, timeout=600, **kw):
    """Run a command on this machine, text output, raise with the output."""
    kw.setdefault("capture_output", True)
    res = subprocess.run(args, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise CommandFailed("local", res)
    return res


def _wait(predicate, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise FleetError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _children(pid):
    kids = []
    with contextlib.suppress(OSError):
        for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                kids += [int(x) for x in (task / "children").read_text().split()]
    return kids


def _comm(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@contextlib.contextmanager
def _flock(path, timeout, what):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _wait(lambda: _try_lock(fd), timeout, f"{what} ({path}) held by another run", 1)
        yield fd
    finally:
        os.close(fd)


def _try_lock(fd):
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise


def _rmtree(path):
    """rm -rf that first unmounts whatever is mounted below path."""
    path = pathlib.Path(path)
    if not path.exists() and not path.is_symlink():
        return
    for mnt in sorted(_mounts_under(path), key=len, reverse=True):
        if _sh(["umount", mnt], check=False).returncode:
            _sh(["umount", "-l", mnt], check=False)
    shutil.rmtree(path, ignore_errors=True)
    if path.exists():
        _sh(["rm", "-rf", "--one-file-system", str(path)], check=False)
    if path.exists():
        raise FleetError(f"could not remove {path}")


def _mounts_under(path):
    prefix = str(pathlib.Path(path).resolve())
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mnt = line.split()[4].encode().decode("unicode_escape")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                found.append(mnt)
    return found


# ---------------------------------------------------------------- base root


def _suite(suite):
    suite = suite or SUITE
    if suite not in SUITES:
        raise FleetError(f"unknown suite {suite!r}: one of {sorted(SUITES)}")
    return suite


def base_key(suite=None):
    """Hash of everything the base root is built from."""
    recipe = {
        "suite": _suite(suite),
        "mirror": MIRROR,
        "packages": sorted(BASE_PACKAGES),
        "formula_packages": sorted(FORMULA_PACKAGES),
        "salt": list(SALT_REQUIREMENTS),
        "disabled": list(BASE_DISABLED_UNITS),
        "minion_unit": SALT_MINION_UNIT,
        "net_unit": NET_UNIT,
        "recipe": RECIPE_VERSION,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def base_dir(suite=None):
    # Keyed by the recipe: checkouts with different recipes (branches,
    # worktrees) each keep their own base instead of rebuilding in turn,
    # and a rebuild never touches a base that a running lab overlays.
    suite = _suite(suite)
    return CACHE_DIR / f"{suite}-base-{base_key(suite)[:12]}"


def base_is_fresh(suite=None):
    stamp = base_dir(suite) / ".mqtt-fleet-stamp"
    return stamp.is_file() and stamp.read_text().strip() == base_key(suite)


def ensure_wheels(timings=None, requirements=SALT_REQUIREMENTS, suite=None, root=None):
    """Wheels for ``requirements`` and the Python of ``suite``, built once (cached).

    Built on this machine when its Python is the suite's (bookworm: 3.11);
    otherwise (trixie: 3.13) inside a throwaway overlay over ``root``, a
    debootstrapped root of that suite (the base itself by default), where
    the compilers some sdists need (timelib) are installed: the base root
    never gets them, so its hosts stay as bare as bookworm's.
    """
    python = SUITES[_suite(suite)]
    key = hashlib.sha256(json.dumps([list(requirements), list(python)]).encode()).hexdigest()[:16]
    wheels = CACHE_DIR / f"wheels-{key}"
    if (wheels / ".complete").is_file():
        return wheels
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    # Its own lock: scripts/test-all builds the caches in the background
    # (test/support/prepare_hosts.py) while a suite may ask for the same.
    with _flock(CACHE_DIR / f".wheels-{key}.lock", 3600, "wheel build lock"):
        if (wheels / ".complete").is_file():
            return wheels
        return _build_wheels(timings, requirements, suite, root, python, wheels, key)


def _build_wheels(timings, requirements, suite, root, python, wheels, key):
    started = time.monotonic()
    tmp = CACHE_DIR / f"wheels-{key}.tmp"
    _rmtree(tmp)
    tmp.mkdir(parents=True)
    log.info("building wheels for %s (Python %s.%s) into %s", requirements, *python, tmp)
    if python == tuple(sys.version_info[:2]):
        _sh([sys.executable, "-m", "pip", "wheel", "--quiet", "-w", str(tmp), *requirements],
            timeout=1800)
    else:
        _build_wheels_in_root(root or base_dir(suite), requirements, tmp)
    (tmp / ".complete").write_text(" ".join(requirements) + "\n")
    _rmtree(wheels)
    tmp.rename(wheels)
    if timings is not None:
        timings["wheels_build_s"] = round(time.monotonic() - started, 1)
    return wheels


# This machine's CA bundle: pip inside a build root reaches the index with it.
CA_BUNDLE = pathlib.Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))


def _build_wheels_in_root(root, requirements, out):
    """pip wheel inside an overlay over ``root`` (with network), into ``out``."""
    builder = pathlib.Path(str(out) + ".builder")
    _rmtree(builder)
    merged, upper, work = builder / "root", builder / "upper", builder / "work"
    for d in (merged, upper, work):
        d.mkdir(parents=True)
    _sh(["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={root},upperdir={upper},workdir={work}", str(merged)])
    script = " && ".join([
        "apt-get install --yes --quiet --no-install-recommends gcc python3-dev",
        "/usr/bin/python3 -m venv /tmp/wheel-builder",
        "/tmp/wheel-builder/bin/pip install --quiet --cert /mnt/ca.crt --upgrade pip wheel",
        "/tmp/wheel-builder/bin/pip wheel --quiet --cert /mnt/ca.crt -w /mnt/wheels "
        + " ".join(shlex.quote(r) for r in requirements),
    ])
    try:
        _sh(["systemd-nspawn", "--quiet", "-D", str(merged), "-M", "mqtt-fleet-wheels",
             "--register=no", "--keep-unit", "--resolv-conf=copy-host",
             "--timezone=off", "--link-journal=no", "--console=pipe",
             f"--bind-ro={CA_BUNDLE}:/mnt/ca.crt", f"--bind={out}:/mnt/wheels",
             "/bin/sh", "-c", script], stdin=subprocess.DEVNULL, timeout=1800)
    finally:
        _rmtree(builder)


def ensure_base(timings=None, suite=None):
    """Return the cached base root of ``suite``, building it first when
    missing or stale.

    Serialised by a lock of its own; safe while no lab uses an older base
    (a lab holds LOCK_FILE, and ``Lab.setup`` / ``Fleet`` call this under it).
    """
    suite = _suite(suite)
    timings = {} if timings is None else timings
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    if base_is_fresh(suite):
        return base_dir(suite)
    # One lock per release: a suite waiting for bookworm's root must not
    # wait for trixie's build (scripts/test-all builds both in the background).
    with _flock(CACHE_DIR / f".build-{suite}.lock", 3600, f"{suite} base build lock"):
        if base_is_fresh(suite):
            return base_dir(suite)
        started = time.monotonic()
        tmp = base_dir(suite).with_name(base_dir(suite).name + ".tmp")
        _rmtree(tmp)  # a half-built root from a crashed build
        log.info("debootstrap %s into %s", suite, tmp)
        t0 = time.monotonic()
        _sh(["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES),
             suite, str(tmp), MIRROR], timeout=1800)
        timings["debootstrap_s"] = round(time.monotonic() - t0, 1)
        wheels = ensure_wheels(timings, suite=suite, root=tmp)
        t0 = time.monotonic()
        _customize_base(tmp, wheels)
        timings["base_customize_s"] = round(time.monotonic() - t0, 1)
        (tmp / ".mqtt-fleet-stamp").write_text(base_key(suite) + "\n")
        old = base_dir(suite)
        if old.exists():
            trash = old.with_name(old.name + ".old")
            _rmtree(trash)
            old.rename(trash)
            _rmtree(trash)
        tmp.rename(old)
        timings["base_build_s"] = round(time.monotonic() - started, 1)
        log.info("base root ready in %ss: %s", timings["base_build_s"], old)
        return old


def _customize_base(root, wheels):
    root = pathlib.Path(root)
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\n# mqtt-fleet base build: start no services\nexit 101\n")
    policy.chmod(0o755)

    unitdir = root / "etc/systemd/system"
    (unitdir / "salt-minion.service").write_text(SALT_MINION_UNIT)
    (unitdir / "mqtt-fleet-net.service").write_text(NET_UNIT)
    for d in ("etc/salt/minion.d", "etc/salt/pki/minion", "etc/mqtt-fleet"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "etc/mqtt-fleet/net.env").write_text("ADDRESS=\n")

    script = " && ".join([
        "/usr/bin/python3 -m venv /opt/salt",
        "/opt/salt/bin/pip install --quiet --no-index --find-links /mnt/wheels "
        + " ".join(shlex.quote(r) for r in SALT_REQUIREMENTS),
        "/opt/salt/bin/salt-minion --version",
        "systemctl disable --quiet " + " ".join(BASE_DISABLED_UNITS),
        "systemctl enable --quiet mqtt-fleet-net.service",
    ])
    _sh(["systemd-nspawn", "--quiet", "-D", str(root), "-M", "mqtt-fleet-build",
         "--register=no", "--keep-unit", "--private-network", "--resolv-conf=off",
         "--timezone=off", "--link-journal=no", "--console=pipe",
         f"--bind-ro={wheels}:/mnt/wheels", "/bin/sh", "-c", script],
        stdin=subprocess.DEVNULL, timeout=1200)

    # The formula's packages: into the apt cache, not onto the host. This
    # needs the network, so it runs without --private-network.
    download = ("apt-get install --download-only --yes --quiet "
                + " ".join(FORMULA_PACKAGES))
    _sh(["systemd-nspawn", "--quiet", "-D", str(root), "-M", "mqtt-fleet-fetch",
         "--register=no", "--keep-unit", "--resolv-conf=copy-host",
         "--timezone=off", "--link-journal=no", "--console=pipe",
         "/bin/sh", "-c", download], stdin=subprocess.DEVNULL, timeout=1200)
    missing = [p for p in FORMULA_PACKAGES
               if not list((root / "var/cache/apt/archives").glob(f"{p}_*.deb"))]
    if missing:
        raise FleetError(f"base build: no .deb downloaded for {missing}")

    # Per-host identity is written by Host._prepare; the base has none.
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("")
    (root / "etc/hostname").write_text("localhost\n")
    (root / "etc/machine-id").write_text("")
    with contextlib.suppress(FileNotFoundError):
        (root / "var/lib/dbus/machine-id").unlink()
    apt_conf = root / "etc/apt/apt.conf.d/99mqtt-fleet-offline"
    apt_conf.write_text('Acquire::Retries "0";\nAcquire::http::Timeout "3";\n')
    policy.unlink()


# ---------------------------------------------------------------- lab


class Lab:
    """Machine-wide test network: lock, bridge, client netns, run dir."""

    _atexit_registered = False

    def __init__(self, run_dir=RUN_DIR, bridge=BRIDGE, client_ns=CLIENT_NS, network=NETWORK,
                 lock_file=LOCK_FILE):
        self.root = pathlib.Path(run_dir)
        self.run_dir = self.root / f"run-{os.getpid()}"
        self.bridge = bridge
        self.client_ns = client_ns
        self.client_veth = f"{client_ns}-br"[:15]
        self.network = network
        self.master_ip = f"{network}.1"
        self.client_ip = f"{network}.100"
        self.lock_file = pathlib.Path(lock_file)
        self._lock_fd = None
        self.fleets = []
        self.timings = {}
        self.client = Client(self)
        self._used_ips = set()
        self._state_lock = threading.Lock()

    # -- lifecycle
    def setup(self, lock_timeout=1800):
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _wait(lambda: _try_lock(fd), lock_timeout,
                  f"{self.lock_file} (another fleet run on this machine)", 1)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd
        _register_lab(self)
        self.cleanup_stale()
        t0 = time.monotonic()
        ensure_base(self.timings)
        self.timings["ensure_base_s"] = round(time.monotonic() - t0, 1)
        self.run_dir.mkdir(parents=True)
        self._write_owner()
        self._setup_network()
        return self

    def teardown(self):
        """Idempotent; safe after a partial setup."""
        if self._lock_fd is None:
            # never set up, or torn down already: what is there is not ours
            _unregister_lab(self)
            return
        for fleet in list(self.fleets):
            with contextlib.suppress(Exception):
                fleet.teardown()
        errors = []
        for step in (self._teardown_network, lambda: _rmtree(self.run_dir),
                     self._remove_root, _tidy_nspawn_runtime):
            try:
                step()
            except Exception as exc:  # keep tearing down
                errors.append(exc)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        _unregister_lab(self)
        if errors:
            raise FleetError(f"teardown incomplete: {errors}")

    def _remove_root(self):
        with contextlib.suppress(OSError):
            self.root.rmdir()  # only when no other run dir is in it

    def __enter__(self):
        return self.setup()

    def __exit__(self, *exc):
        self.teardown()

    # -- bookkeeping for crash cleanup
    def _write_owner(self):
        hosts = {}
        for fleet in self.fleets:
            for h in fleet.hosts.values():
                hosts[h.name] = {"dir": str(h.dir), "nspawn_pid": h.pid}
        data = {"pid": os.getpid(), "started": time.time(), "hosts": hosts}
        tmp = self.run_dir / ".owner.json.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.write_text(json.dumps(data))
            tmp.rename(self.run_dir / "owner.json")

    def cleanup(self, lock_timeout=60):
        """Only the stale cleanup, under the lock (no lab is set up)."""
        with _flock(self.lock_file, lock_timeout, "fleet lock"):
            removed = self.cleanup_stale()
            self._remove_root()
            _tidy_nspawn_runtime()
        return removed

    def cleanup_stale(self):
        """Remove what a crashed earlier run left (we hold the lock)."""
        removed = []
        root = str(self.root.resolve()) if self.root.exists() else str(self.root)
        # nspawn processes booting a directory of ours
        for pid in _nspawn_pids_under(root):
            removed.append(f"nspawn pid {pid}")
            _kill_nspawn(pid, grace=2)
        for h in _cgroup_hierarchies():
            for cg in (h / CGROUP_PARENT).glob(f"{self.bridge}-*"):
                removed.append(str(cg))
                _wait(lambda cg=cg: _remove_cgroup_tree(cg), 10, f"cgroup {cg} to empty")
        if self.root.exists():
            for entry in self.root.iterdir():
                removed.append(str(entry))
                _rmtree(entry)
        if pathlib.Path(f"/run/netns/{self.client_ns}").exists():
            removed.append(f"netns {self.client_ns}")
        self._delete_netns()
        for link in (self.client_veth, self.bridge):
            if _link_exists(link):
                removed.append(f"link {link}")
                _sh(["ip", "link", "del", link], check=False)
        if removed:
            log.warning("removed leftovers of an earlier fleet run: %s", removed)
        return removed

    # -- network
    def _setup_network(self):
        br, ns, veth = self.bridge, self.client_ns, self.client_veth
        _sh(["ip", "link", "add", br, "type", "bridge", "forward_delay", "0"])
        _sh(["ip", "addr", "add", f"{self.master_ip}/{PREFIX}", "dev", br])
        _sh(["ip", "link", "set", br, "up"])
        # the client namespace: plain netns on the bridge
        _sh(["ip", "netns", "add", ns])
        _sh(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
        _sh(["ip", "link", "set", veth, "master", br, "up"])
        for cmd in (["ip", "link", "set", "lo", "up"],
                    ["ip", "addr", "add", f"{self.client_ip}/{PREFIX}", "dev", "eth0"],
                    ["ip", "link", "set", "eth0", "up"]):
            _sh(["ip", "netns", "exec", ns, *cmd])
        # `ip netns exec` bind-mounts these over /etc/hosts and /etc/resolv.conf
        etc = pathlib.Path("/etc/netns") / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text("")
        self.write_hosts_files()

    def _teardown_network(self):
        self._delete_netns()  # takes the client veth pair with it
        for link in (self.client_veth, self.bridge):
            if _link_exists(link):
                _sh(["ip", "link", "del", link], check=False)
        left = [n for n in (self.client_veth, self.bridge) if _link_exists(n)]
        if left or pathlib.Path(f"/run/netns/{self.client_ns}").exists():
            raise FleetError(f"network leftovers: {left} netns {self.client_ns}")

    def _delete_netns(self):
        if pathlib.Path(f"/run/netns/{self.client_ns}").exists():
            _sh(["ip", "netns", "del", self.client_ns], check=False)
        shutil.rmtree(pathlib.Path("/etc/netns") / self.client_ns, ignore_errors=True)
        with contextlib.suppress(OSError):
            pathlib.Path("/etc/netns").rmdir()  # only when empty

    # -- names and addresses
    def allocate_ip(self):
        with self._state_lock:
            for n in range(FIRST_HOST, 100):
                ip = f"{self.network}.{n}"
                if ip not in self._used_ips:
                    self._used_ips.add(ip)
                    return ip
        raise FleetError("no free test address")

    def release_ip(self, ip):
        self._used_ips.discard(ip)

    def all_hosts(self):
        return [h for f in self.fleets for h in f.hosts.values()]

    def hosts_text(self):
        lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                 f"{self.master_ip}\t{' '.join(MASTER_NAMES)}", f"{self.client_ip}\tclient.test"]
        for h in self.all_hosts():
            short = h.name.split(".")[0]
            lines.append(f"{h.ip}\t{h.name}" + (f" {short}" if short != h.name else ""))
        return "\n".join(lines) + "\n"

    def write_hosts_files(self):
        """/etc/hosts for the client netns and every prepared host."""
        text = self.hosts_text()
        etc = pathlib.Path("/etc/netns") / self.client_ns
        if etc.is_dir():
            (etc / "hosts").write_text(text)
        for h in self.all_hosts():
            with contextlib.suppress(OSError):
                h.path("/etc/hosts").write_text(text)


def _link_exists(name):
    return pathlib.Path(f"/sys/class/net/{name}").exists()


CGROUP_ROOT = pathlib.Path("/sys/fs/cgroup")
CGROUP_PARENT = "mqtt-fleet"


def _cgroup_hierarchies():
    """Where systemd keeps its cgroups: cgroup2 alone, or hybrid/legacy."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    return [CGROUP_ROOT / h for h in ("unified", "systemd")
            if (CGROUP_ROOT / h / "cgroup.procs").exists()]


def _host_cgroups(leaf):
    """One cgroup per host and hierarchy, created here.

    With --keep-unit and no systemd on this machine nspawn puts the
    container in ``<its own cgroup>/payload``; in the root cgroup that is
    one shared ``/payload`` for every host, and the hosts' systemds then
    manage the same cgroups: a unit stopping on one host waits for the
    other host's processes. A cgroup of its own per host avoids that.
    """
    dirs = []
    for h in _cgroup_hierarchies():
        d = h / CGROUP_PARENT / leaf
        d.mkdir(parents=True, exist_ok=True)
        dirs.append(d)
    return dirs


def _remove_cgroup_tree(path):
    """rmdir a cgroup and its children, deepest first (empty ones only)."""
    path = pathlib.Path(path)
    if not path.is_dir():
        return True
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()),
                      key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()
    with contextlib.suppress(OSError):
        path.rmdir()
    return not path.exists()


def _cgroup_pids(path):
    pids = set()
    for procs in pathlib.Path(path).rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids.update(int(x) for x in procs.read_text().split())
    return pids


def _tidy_nspawn_runtime():
    """Empty dirs systemd-nspawn leaves behind on a host without systemd."""
    if _nspawn_pids_under("/"):
        return  # some nspawn still runs: leave its runtime dirs alone
    for d in ("/run/systemd/nspawn/propagate", "/run/systemd/nspawn/locks",
              "/run/systemd/nspawn"):
        with contextlib.suppress(OSError):
            os.rmdir(d)
    for h in _cgroup_hierarchies():
        _remove_cgroup_tree(h / CGROUP_PARENT)


def _nspawn_pids_under(root):
    """PIDs of systemd-nspawn processes whose -D names a dir under root."""
    root = root.rstrip("/") + "/"
    pids = []
    for p in pathlib.Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        args = _cmdline(int(p.name))
        if not args or not args[0].endswith(b"systemd-nspawn"):
            continue
        for i, a in enumerate(args):
            d = args[i + 1] if a == b"-D" and i + 1 < len(args) else (
                a[len(b"--directory="):] if a.startswith(b"--directory=") else None)
            if d and (d.decode() + "/").startswith(root):
                pids.append(int(p.name))
    return pids


def _kill_nspawn(pid, grace=10.0, proc=None):
    """SIGTERM nspawn (clean poweroff), then SIGKILL the container's PID 1."""
    def gone():
        if proc is not None:
            return proc.poll() is not None
        return not _pid_alive(pid)

    if gone():
        return
    leaders = [c for c in _children(pid)]
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        _wait(gone, grace, f"nspawn {pid} to power off", 0.1)
        return
    except FleetError:
        log.warning("nspawn %s did not power off in %ss: SIGKILL to its PID 1", pid, grace)
    for c in _children(pid) or leaders:
        with contextlib.suppress(ProcessLookupError):
            os.kill(c, signal.SIGKILL)
    try:
        _wait(gone, 10, f"nspawn {pid} to exit after its PID 1 was killed", 0.1)
        return
    except FleetError:
        log.warning("nspawn %s still there: SIGKILL", pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait(gone, 10, f"nspawn {pid} to die")


# Teardown on exit and SIGTERM, whatever pytest does.
_LABS = []


def _register_lab(lab):
    if lab not in _LABS:
        _LABS.append(lab)
    if not Lab._atexit_registered:
        atexit.register(_teardown_all)
        Lab._atexit_registered = True
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _sigterm)


def _unregister_lab(lab):
    with contextlib.suppress(ValueError):
        _LABS.remove(lab)
    if (not _LABS and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is _sigterm):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _sigterm(signum, frame):
    # becomes a KeyboardInterrupt so pytest runs its finalizers
    raise KeyboardInterrupt(f"signal {signum}")


def _teardown_all():
    for lab in list(_LABS):
        with contextlib.suppress(Exception):
            lab.teardown()


# ---------------------------------------------------------------- client


class Client:
    """The client network namespace (198.18.0.100) with this machine's files."""

    def __init__(self, lab):
        self.lab = lab
        self.name = lab.client_ns
        self.ip = lab.client_ip

    def cmd(self, cmd):
        args = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        return ["ip", "netns", "exec", self.name, *args]

    def run(self, cmd, check=True, timeout=120, **kw):
        kw.setdefault("capture_output", True)
        res = subprocess.run(self.cmd(cmd), text=True, timeout=timeout, **kw)
        if check and res.returncode:
            raise CommandFailed("client", res)
        return res

    def popen(self, cmd, **kw):
        """A long-running client process (subscriber); caller ends it."""
        return subprocess.Popen(self.cmd(cmd), text=True, **kw)

    def ping(self, addr, timeout=2.0):
        """One ICMP echo from the client namespace (no ping binary needed)."""
        res = self.run([sys.executable, "-c", _PING_PY, addr, str(timeout)], check=False,
                       timeout=timeout + 10)
        return res.returncode == 0

    def tcp_open(self, addr, port, timeout=2.0):
        code = ("import socket,sys;socket.create_connection((sys.argv[1],int(sys.argv[2])),"
                "float(sys.argv[3])).close()")
        res = self.run([sys.executable, "-c", code, addr, str(port), str(timeout)],
                       check=False, timeout=timeout + 10)
        return res.returncode == 0


_PING_PY = r"""
import os, socket, struct, sys, time
addr, timeout = sys.argv[1], float(sys.argv[2])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
ident = os.getpid() & 0xffff
hdr = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
data = b"mqtt-fleet"
pkt = struct.pack("!BBHHH", 8, 0, csum(hdr + data), ident, 1) + data
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(timeout)
s.sendto(pkt, (addr, 0))
end = time.monotonic() + timeout
while time.monotonic() < end:
    try:
        buf, src = s.recvfrom(2048)
    except socket.timeout:
        break
    ihl = (buf[0] & 15) * 4
    typ, _, _, rid, _ = struct.unpack("!BBHHH", buf[ihl:ihl + 8])
    if src[0] == addr and typ == 0 and rid == ident:
        sys.exit(0)
sys.exit(1)
"""


# ---------------------------------------------------------------- hosts


class Host:
    """One systemd host: an overlay over the base root, booted by nspawn."""

    def __init__(self, fleet, name, ip, suite=None):
        self.fleet = fleet
        self.name = name
        self.ip = ip
        self.suite = _suite(suite)  # the Debian release it boots (its base root)
        self.machine = name.replace(".", "-")[:64]
        self.cgroup_leaf = f"{fleet.lab.bridge}-{self.machine}"
        self.cgroups = []
        self.dir = fleet.lab.run_dir / "hosts" / name
        self.root = self.dir / "root"
        self.proc = None
        self.leader = None
        self.console_log = self.dir / "console.log"
        self.mode = None  # "overlay" or "copy"
        self.timings = {}

    def __repr__(self):
        return f"<Host {self.name} {self.suite} {self.ip} pid1={self.leader}>"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    # -- files
    def path(self, p):
        """This host's file p as a path on this machine (works stopped too)."""
        return self.root / str(p).lstrip("/")

    def _prepare(self, minion_config=None):
        t0 = time.monotonic()
        base = base_dir(self.suite)
        self.dir.mkdir(parents=True)
        self.root.mkdir()
        upper, work = self.dir / "upper", self.dir / "work"
        upper.mkdir()
        work.mkdir()
        res = _sh(["mount", "-t", "overlay", "overlay", "-o",
                   f"lowerdir={base},upperdir={upper},workdir={work}", str(self.root)],
                  check=False)
        if res.returncode == 0:
            self.mode = "overlay"
        else:
            log.warning("overlayfs failed (%s); copying the base", res.stderr.strip())
            self.root.rmdir()
            _sh(["cp", "-a", "--reflink=auto", str(base), str(self.root)])
            self.mode = "copy"
        (self.path("/etc/hostname")).write_text(self.name + "\n")
        self.path("/etc/resolv.conf").write_text("")
        self.path("/etc/mqtt-fleet/net.env").write_text(f"ADDRESS={self.ip}/{PREFIX}\n")
        if minion_config is not None:
            self.path("/etc/salt/minion").write_text(minion_config)
            wants = self.path("/etc/systemd/system/multi-user.target.wants")
            wants.mkdir(parents=True, exist_ok=True)
            link = wants / "salt-minion.service"
            if not link.is_symlink():
                link.symlink_to("/etc/systemd/system/salt-minion.service")
        self.timings["prepare_s"] = round(time.monotonic() - t0, 2)

    # -- lifecycle
    def start(self, wait=True, timeout=60):
        """Boot the host (its root must be prepared)."""
        if self.running:
            raise FleetError(f"{self.name} is already running")
        self.t_boot = time.monotonic()
        self.leader = None
        self._remove_cgroups()
        self.cgroups = _host_cgroups(self.cgroup_leaf)
        # the shell joins the host's cgroups, then becomes systemd-nspawn
        join = ('while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 97; shift; done;'
                ' shift; exec "$@"')
        logf = open(self.console_log, "ab")
        try:
            self.proc = subprocess.Popen(
                ["/bin/sh", "-c", join, "sh", *map(str, self.cgroups), "--",
                 "systemd-nspawn", "-D", str(self.root), "--boot", "-M", self.machine,
                 f"--network-bridge={self.fleet.lab.bridge}", "--register=no", "--keep-unit",
                 "--resolv-conf=off", "--timezone=off", "--link-journal=no",
                 "--console=read-only"],
                stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches us, not nspawn
            )
        finally:
            logf.close()
        self.fleet.lab._write_owner()
        if wait:
            self.wait_booted(timeout)

    def _find_leader(self):
        if not self.running:
            raise FleetError(f"{self.name}: systemd-nspawn exited "
                             f"{self.proc.returncode}\n{self.console_tail()}")
        for c in _children(self.proc.pid):
            if _comm(c) == "systemd":
                return c
        return None

    def wait_booted(self, timeout=60):
        """Until PID 1 is systemd and the boot finished (running/degraded)."""
        deadline = time.monotonic() + timeout
        self.leader = _wait(self._find_leader, timeout, f"{self.name}: container PID 1", 0.05)
        state = ""
        while time.monotonic() < deadline:
            left = max(1, deadline - time.monotonic())
            res = self.run(["systemctl", "is-system-running", "--wait"], check=False,
                           timeout=left)
            state = res.stdout.strip()
            if state in ("running", "degraded"):
                break
            time.sleep(0.1)
        else:
            raise FleetError(f"{self.name}: boot did not finish in {timeout}s "
                             f"(state {state!r})\n{self.console_tail()}")
        self.timings["boot_s"] = round(time.monotonic() - self.t_boot, 2)
        if state == "degraded":
            failed = self.run("systemctl --failed --no-legend --plain", check=False).stdout
            log.warning("%s booted degraded; failed units:\n%s", self.name, failed)
        return state

    def stop(self, grace=20.0):
        """Power off (SIGTERM to nspawn), SIGKILL PID 1 after grace.

        A clean power off takes about 7 s while salt-minion runs: salt 3008
        sleeps 5 s on SIGTERM before it stops ("allow any remaining events
        to be processed", salt/minion.py MinionManager.stop_async).
        """
        if self.proc is None:
            return
        _kill_nspawn(self.proc.pid, grace=grace, proc=self.proc)
        self.proc.wait()
        self.leader = None
        self._remove_cgroups()

    def _remove_cgroups(self):
        for cg in self.cgroups or [h / CGROUP_PARENT / self.cgroup_leaf
                                   for h in _cgroup_hierarchies()]:
            if not _remove_cgroup_tree(cg):
                # the host's processes are gone once PID 1 is: wait for the kernel
                _wait(lambda cg=cg: _remove_cgroup_tree(cg), 10, f"cgroup {cg} to empty")
        self.cgroups = []

    def kill_pid1(self):
        """Crash the host: SIGKILL its PID 1 (the whole container dies)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # before PID 1 has exec'd systemd, nspawn's child is still PID 1
            for pid in [self.leader] if self.leader else _children(self.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                log.warning("%s: nspawn still there 15 s after its PID 1 was killed", self.name)
                for pid in _children(self.proc.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.kill()
                self.proc.wait()
        self.leader = None
        self._remove_cgroups()

    def restart(self, wait_minion=True, timeout=90, grace=20.0):
        """Full reboot: power off, boot again, wait for systemd (and minion)."""
        self.stop(grace=grace)
        after = time.time()
        self.start(wait=True, timeout=timeout)
        if wait_minion and self.fleet.master is not None:
            self.fleet.wait_minions([self], after=after, timeout=timeout)

    # -- commands
    def cmd(self, cmd):
        if not self.running or not self.leader:
            raise FleetError(f"{self.name} is not running")
        args = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        return ["nsenter", "-t", str(self.leader), "-a", "--", "/usr/bin/env", "-i",
                f"PATH={CONTAINER_PATH}", "HOME=/root", "LANG=C.UTF-8", "TERM=dumb",
                *args]

    def run(self, cmd, check=True, timeout=120, **kw):
        """Run cmd inside the host (all its namespaces): CompletedProcess."""
        kw.setdefault("capture_output", True)
        res = subprocess.run(self.cmd(cmd), text=True, timeout=timeout, **kw)
        if check and res.returncode:
            raise CommandFailed(self.name, res)
        return res

    def salt_call(self, *args, check=True, timeout=300):
        """``salt-call --out=json ARGS`` inside the host; returns ``local``."""
        res = self.run(["/opt/salt/bin/salt-call", "--out=json", "--log-level=quiet", *args],
                       check=check, timeout=timeout)
        try:
            return json.loads(res.stdout)["local"]
        except (ValueError, KeyError):
            if check:
                raise CommandFailed(self.name, res) from None
            return None

    def journal(self, unit=None, lines=200, since=None):
        """The journal's last ``lines`` (None: all), of ``unit``, from
        ``since`` (seconds since the epoch, as the host's ``date +%s``)."""
        args = ["journalctl", "--no-pager", "-o", "short-iso"]
        if lines is not None:
            args += ["-n", str(lines)]
        if unit:
            args += ["-u", unit]
        if since is not None:
            args += ["--since", f"@{since}"]
        return self.run(args, check=False).stdout

    def console_tail(self, lines=40):
        with contextlib.suppress(OSError):
            text = self.console_log.read_text(errors="replace")
            return "\n".join(text.splitlines()[-lines:])
        return ""

    def destroy(self):
        self.stop()
        _rmtree(self.dir)


class Fleet:
    """A set of hosts on the lab's bridge, with minions of one salt master.

    ``master`` is a salt-factories ``SaltMaster`` (or None for hosts
    without salt). Host names must be unique within the lab. Hosts boot
    ``suite`` (default bookworm); ``suites`` maps single host names to
    another release, so one fleet mixes Debian 12 and 13 hosts.
    """

    def __init__(self, lab, names, master=None, minion_overrides=None, suite=None,
                 suites=None):
        if len(set(names)) != len(names):
            raise FleetError(f"duplicate host names: {names}")
        taken = {h.name for h in lab.all_hosts()}
        if taken & set(names):
            raise FleetError(f"hosts already exist: {sorted(taken & set(names))}")
        self.lab = lab
        self.master = master
        self.minion_overrides = dict(minion_overrides or {})
        self.client = lab.client
        self.hosts = {}
        self.timings = {}
        self._torn_down = False
        lab.fleets.append(self)
        suites = dict(suites or {})
        unknown = set(suites) - set(names)
        if unknown:
            raise FleetError(f"suites for hosts not in the fleet: {sorted(unknown)}")
        for name in names:
            self.hosts[name] = Host(self, name, lab.allocate_ip(), suites.get(name, suite))
        # bases other than the lab's default one are built (or found) here,
        # under the lab's lock like the default one in Lab.setup
        for wanted in sorted({h.suite for h in self.hosts.values()}):
            t0 = time.monotonic()
            ensure_base(self.timings, suite=wanted)
            self.timings[f"ensure_base_{wanted}_s"] = round(time.monotonic() - t0, 1)

    def __getitem__(self, name):
        return self.hosts[name]

    def __iter__(self):
        return iter(self.hosts.values())

    def minion_config(self, host):
        opts = {
            "id": host.name,
            "master": self.lab.master_ip,
            "master_port": self.master.config["ret_port"],
            "publish_port": self.master.config["publish_port"],
            # no DNS here: the fqdns grain would hang on lookups
            "enable_fqdns_grains": False,
            "acceptance_wait_time": 1,
            "acceptance_wait_time_max": 5,
            "random_reauth_delay": 0,
            "recon_randomize": False,
            "recon_default": 500,
            "recon_max": 3000,
            "auth_timeout": 15,
            "log_level_logfile": "info",
        }
        opts.update(self.minion_overrides)
        return json.dumps(opts, indent=2) + "\n"  # JSON is YAML

    def start(self, timeout=90):
        """Prepare and boot every host in parallel; wait for minions."""
        t0 = time.monotonic()
        after = time.time()
        for h in self.hosts.values():
            h._prepare(self.minion_config(h) if self.master is not None else None)
        self.lab.write_hosts_files()
        for h in self.hosts.values():
            h.start(wait=False)
        for h in self.hosts.values():
            h.wait_booted(timeout)
        self.timings["boot_all_s"] = round(time.monotonic() - t0, 2)
        if self.master is not None:
            self.wait_minions(list(self.hosts.values()), after=after, timeout=timeout)
        self.timings["ready_all_s"] = round(time.monotonic() - t0, 2)
        return self

    def wait_minions(self, hosts, after, timeout=90):
        """Wait for each minion's start event, then a test.ping answer."""
        t0 = time.monotonic()
        listener = self.master.event_listener
        patterns = [(self.master.id, f"salt/minion/{h.name}/start") for h in hosts]
        matched = listener.wait_for_events(patterns, timeout=timeout, after_time=after)
        if matched is not True and matched.missed:
            missing = [p[1].split("/")[2] for p in matched.missed]
            details = []
            for h in hosts:
                if h.name in missing:
                    st = h.run("systemctl status --no-pager salt-minion", check=False)
                    details.append(f"== {h.name}\n{st.stdout}\n"
                                   f"{h.run('tail -n 30 /var/log/salt/minion', check=False).stdout}")
            raise FleetError(f"minions did not start in {timeout}s: {missing}\n"
                             + "\n".join(details))
        names = [h.name for h in hosts]
        pings = self.salt("test.ping", tgt=",".join(names), tgt_type="list", timeout=30)
        if not all(pings.get(n) is True for n in names):
            raise FleetError(f"test.ping did not answer for all of {names}: {pings}")
        for h in hosts:
            h.timings["minion_ready_s"] = round(time.monotonic() - h.t_boot, 2)
        self.timings["minions_wait_s"] = round(time.monotonic() - t0, 2)

    # -- salt
    def salt_cli(self, timeout=120):
        return self.master.salt_cli(timeout=timeout)

    def salt(self, *args, tgt="*", tgt_type="glob", timeout=120, check=False, **kwargs):
        """Run the salt CLI on the master; returns {minion: return}.

        ``check=True`` raises unless every targeted minion answered with a
        non-False return (and, for state runs, every state succeeded).
        The full ProcessResult is in ``self.last``.
        """
        extra = ["--static"]
        if tgt_type != "glob":
            extra.append("-L" if tgt_type == "list" else f"--{tgt_type}")
        res = self.salt_cli(timeout=timeout).run(*extra, *args, minion_tgt=tgt, **kwargs)
        self.last = res
        # parse stdout ourselves: salt-factories unwraps single-minion returns
        try:
            data = json.loads(res.stdout) if res.stdout.strip() else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if check:
            fun = next((a for a in args if not str(a).startswith("-")), "")
            problems = _salt_problems(data, str(fun).startswith("state."))
            if res.returncode != 0 or problems or not data:
                raise FleetError(f"salt {tgt} {' '.join(args)} failed (rc={res.returncode}):"
                                 f" {problems or ''}\n{res.stdout}\n{res.stderr}")
        return data

    # -- teardown
    def teardown(self):
        if self._torn_down:
            return
        errors = []
        # the hosts are thrown away: no clean power off (saves salt-minion's
        # 5 s shutdown sleep per host), PID 1 gets SIGKILL
        threads = [threading.Thread(target=_collect(errors, h.kill_pid1))
                   for h in self.hosts.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for h in self.hosts.values():
            _collect(errors, lambda h=h: _rmtree(h.dir))()
            self.lab.release_ip(h.ip)
        if self.master is not None and self.master.is_running():
            for h in self.hosts.values():
                _collect(errors, lambda h=h: self.master.salt_key_cli().run(
                    "-y", "-d", h.name))()
        self._torn_down = True
        with contextlib.suppress(ValueError):
            self.lab.fleets.remove(self)
        with contextlib.suppress(Exception):
            self.lab._write_owner()
            self.lab.write_hosts_files()
        if errors:
            raise FleetError(f"fleet teardown: {errors}")


def _collect(errors, fn):
    def run():
        try:
            fn()
        except Exception as exc:
            errors.append(exc)
    return run


def _salt_problems(data, state_run=False):
    problems = {}
    for minion, ret in data.items():
        if ret is False or (isinstance(ret, str) and ret.startswith("Minion did not return")):
            problems[minion] = ret
        elif isinstance(ret, dict) and ret and all(isinstance(v, dict) and "result" in v
                                                  for v in ret.values()):
            bad = {k: v.get("comment") for k, v in ret.items() if v.get("result") is False}
            if bad:
                problems[minion] = bad
        elif state_run and isinstance(ret, list):
            problems[minion] = ret  # render errors come back as a list of strings
        elif state_run and isinstance(ret, str):
            problems[minion] = ret  # e.g. "No matching sls found for ..."
    return problems


# ---------------------------------------------------------------- pillar


def fleet_pillar_sls(password, ca_host, users=("alice",)):
    """The brokers' pillar for a fleet with one CA on ``ca_host``.

    Jinja rendered per minion on the master: each broker's certificate is
    for its own minion id, ``ca_host`` keeps the CA (``ca_server: ''``) and
    every other broker has it sign its certificate. firewalld is managed.
    """
    lines = ["mosquitto:", "  domain: {{ grains['id'] }}", "  users:"]
    for user in users:
        lines += [f"    {user}:", f"      password: {json.dumps(password)}"]
    lines += [
        "  firewall:", "    enabled: true", "    zone: public",
        "  tls:",
        f"    ca_server: \"{{{{ '' if grains['id'] == '{ca_host}' else '{ca_host}' }}}}\"",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- master


def master_overrides(extra=None, lab=None):
    """Master options for the fleet; ``extra`` merges over them."""
    opts = {
        "interface": lab.master_ip if lab is not None else MASTER_IP,
        "auto_accept": True,
        "open_mode": False,
        # One CA minion signs certificates for the others: the README's
        # narrowed peer rule (the CA certificate travels through the mine).
        "peer": {".*": ["mosquitto_ca.sign_csr", "mosquitto_cluster.accept"]},
        "worker_threads": 3,
        # Salt's default, as on an operator's master. salt-factories sets 0
        # so that tests see new files at once; with 0 every fileserver
        # listing (state.apply lists the fileserver before it renders)
        # rebuilds the list under a lock file, and a worker that finds the
        # lock held sleeps a whole second (salt.fileserver.wait_lock),
        # stalling the fleet's other requests behind it.
        "fileserver_list_cache_time": 20,
        "timeout": 30,
        "gather_job_timeout": 15,
        "file_ignore_glob": ["*.pyc", "*.swp"],
        "file_ignore_regex": [r"/__pycache__(/|$)"],
    }
    if extra:
        _deep_update(opts, extra)
    return opts


def _deep_update(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = v
    return dst


FORMULA_SKIP = {".git", ".venv", ".build", ".salt-local", ".pytest_cache", "__pycache__",
                ".ci", ".gitignore"}


def link_formula_tree(state_dir, repo=REPO_ROOT):
    """Symlink the repo's top-level entries into the master's state tree.

    salt://mosquitto is then ``repo/mosquitto`` (live, not a copy), and
    ``_modules``/``_states`` sync from the repo, while the fileserver never
    walks ``.venv`` or ``.git``.
    """
    state_dir = pathlib.Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    for entry in sorted(pathlib.Path(repo).iterdir()):
        if entry.name in FORMULA_SKIP or entry.name.startswith("."):
            continue
        link = state_dir / entry.name
        if link.is_symlink() or link.exists():
            continue
        link.symlink_to(entry)
    return state_dir


def preflight():
    """Why the fleet cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("debootstrap", "systemd-nspawn", "nsenter", "ip"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if sys.version_info[:2] != (3, 11):
        return f"wheels for the hosts need Python 3.11 here, not {sys.version.split()[0]}"
    return None


def _main(argv=None):
    """python -m test.support.fleet build-base | cleanup | status"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m test.support.fleet")
    parser.add_argument("action", choices=["build-base", "cleanup", "status"])
    parser.add_argument("--suite", default=SUITE, choices=sorted(SUITES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.action == "build-base":
        timings = {}
        print(ensure_base(timings, suite=args.suite), timings)
    elif args.action == "cleanup":
        print("removed:", Lab().cleanup() or "nothing")
    else:
        for suite in SUITES:
            print("base:", base_dir(suite), "fresh" if base_is_fresh(suite) else "missing or stale")
        print("nspawn under", RUN_DIR, _nspawn_pids_under(str(RUN_DIR)))
        print("bridge", BRIDGE, _link_exists(BRIDGE), "netns", CLIENT_NS,
              pathlib.Path(f"/run/netns/{CLIENT_NS}").exists())


if __name__ == "__main__":
    _main()
