"""Other Salt releases than the suite's (3008, salt-factories) for the hosts
suite: a salt-master of that release on this machine and its minion (and
salt-call) on a test host, both from PyPI wheels built here once.

The master runs on this machine's Python 3.11 (bookworm's); a minion
gets wheels for its host's Python (fleet.ensure_wheels: bookworm's built
here, trixie's 3.13 ones in a throwaway overlay), cached in CACHE_DIR.

    master = ReleaseMaster(lab, "3006.29").start()   # 198.18.0.1, own ports
    install_on_host(host, "3006.29")                 # /opt/salt-3006.29
    start_minion(host, master)                       # systemd-run unit
    master.salt("state.apply", "mosquitto", tgt=host.name)  # {minion: ret}
    master.stop()                                    # by its PID
"""
import contextlib
import json
import pathlib
import shutil
import socket
import subprocess
import sys
import time

import yaml

from test.support import fleet as fleetmod

EXTRAS = ("cryptography", "paho-mqtt", "prometheus-client")

# The releases test/hosts/test_salt_versions.py runs (its minion on a host
# of that Debian release), besides the suite's own (fleet.SALT_REQUIREMENTS):
# FORMULA's minimum_version is the oldest line here
# (test/unit/test_release.py), README's matrix names each.
TESTED = {"3006.29": "bookworm", "3007.16": "trixie"}


def requirements(version):
    return (f"salt=={version}", *EXTRAS)


def wheels(version, suite="bookworm"):
    return fleetmod.ensure_wheels(requirements=requirements(version), suite=suite)


def local_venv(version):
    """A venv of that release on this machine (cached beside the wheels)."""
    venv = fleetmod.CACHE_DIR / f"venv-salt-{version}-py{sys.version_info[0]}{sys.version_info[1]}"
    if (venv / ".complete").is_file():
        return venv
    whl = wheels(version)
    with fleetmod._flock(fleetmod.CACHE_DIR / f".{venv.name}.lock", 1800, "salt venv lock"):
        if not (venv / ".complete").is_file():
            _make_venv(venv, version, whl)
    return venv


def _make_venv(venv, version, whl):
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin/pip"), "install", "--quiet", "--no-index", "--find-links", str(whl),
                    *requirements(version)], check=True, timeout=900)
    (venv / ".complete").write_text(version + "\n")
    return venv


def _free_port(addr):
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


class ReleaseMaster:
    """salt-master of one release on the lab's master address, own ports,
    its state tree the repo (symlinks) and a pillar dir of its own."""

    def __init__(self, lab, version):
        self.lab, self.version = lab, version
        self.venv = local_venv(version)
        self.dir = lab.run_dir / f"master-{version}"
        self.pillar_dir = self.dir / "pillar"
        self.proc = None

    def start(self, timeout=90):
        self.pillar_dir.mkdir(parents=True, exist_ok=True)
        states = fleetmod.link_formula_tree(self.dir / "states")
        self.ret_port, self.publish_port = _free_port(self.lab.master_ip), _free_port(self.lab.master_ip)
        opts = fleetmod.master_overrides(lab=self.lab)
        opts.update({
            "root_dir": str(self.dir / "root"), "user": "root",
            "ret_port": self.ret_port, "publish_port": self.publish_port,
            "file_roots": {"base": [str(states)]}, "pillar_roots": {"base": [str(self.pillar_dir)]},
            "log_file": str(self.dir / "master.log"), "log_level_logfile": "info",
        })
        (self.dir / "master").write_text(yaml.safe_dump(opts))
        log = open(self.dir / "master.out", "ab")
        try:
            self.proc = subprocess.Popen([str(self.venv / "bin/salt-master"), "-c", str(self.dir), "-l", "quiet"],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            log.close()
        fleetmod._wait(self._listening, timeout, f"salt-master {self.version} on {self.ret_port}", 0.5)
        return self

    def _listening(self):
        if self.proc.poll() is not None:
            raise fleetmod.FleetError(f"salt-master {self.version} exited {self.proc.returncode}: "
                                      + (self.dir / "master.out").read_text()[-3000:])
        with contextlib.suppress(OSError), socket.create_connection((self.lab.master_ip, self.ret_port), 1):
            return True
        return False

    def salt(self, *args, tgt="*", timeout=900):
        """The salt CLI of this release: {minion: return} (JSON, --static)."""
        res = subprocess.run([str(self.venv / "bin/salt"), "-c", str(self.dir), "--out=json", "--static",
                              "--log-level=quiet", "-t", str(timeout), tgt, *args],
                             capture_output=True, text=True, timeout=timeout + 60)
        try:
            return json.loads(res.stdout)
        except ValueError:
            raise fleetmod.FleetError(f"salt {args} (rc {res.returncode}):\n{res.stdout}\n{res.stderr}") from None

    def stop(self):
        """SIGTERM to our own master (by its Popen), SIGKILL after 20 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def install_on_host(host, version):
    """/opt/salt-<version> on the host from this machine's wheels (the
    host has no network: the wheels are copied into its root)."""
    whl = wheels(version, host.suite)
    inside = f"/var/tmp/wheels-salt-{version}"
    shutil.copytree(whl, host.path(inside), dirs_exist_ok=True)
    venv = f"/opt/salt-{version}"
    host.run(f"python3 -m venv {venv} && {venv}/bin/pip install --quiet --no-index --find-links {inside} "
             + " ".join(requirements(version)), timeout=900)
    host.run(["rm", "-rf", inside])
    return venv


def start_minion(host, master, timeout=120):
    """salt-minion of the master's release on host (a transient unit),
    its config in /etc/salt-<version>; waits for its test.ping answer."""
    version = master.version
    conf = pathlib.PurePosixPath(f"/etc/salt-{version}")
    host.path(conf).mkdir(parents=True, exist_ok=True)
    host.path(conf / "minion").write_text(json.dumps({
        "id": host.name, "master": master.lab.master_ip,
        "master_port": master.ret_port, "publish_port": master.publish_port,
        "root_dir": f"/var/lib/salt-{version}", "enable_fqdns_grains": False,
        "acceptance_wait_time": 1, "random_reauth_delay": 0, "recon_randomize": False,
        "auth_timeout": 15, "log_level_logfile": "info",
    }) + "\n")
    host.run(["systemd-run", f"--unit=salt-minion-{version}", f"/opt/salt-{version}/bin/salt-minion",
              "-c", str(conf)])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # the master's workers come up a moment after its port: retry
        with contextlib.suppress(fleetmod.FleetError):
            if master.salt("test.ping", tgt=host.name, timeout=10).get(host.name) is True:
                return
        time.sleep(2)
    raise fleetmod.FleetError(f"{host.name}: salt-minion {version} did not answer in {timeout}s\n"
                              + host.journal(f"salt-minion-{version}", 50))


def stop_minion(host, version):
    host.run(["systemctl", "stop", f"salt-minion-{version}"], check=False)


def salt_call_local(host, version, *args, timeout=900):
    """Masterless ``salt-call --local`` of that release on the host, with
    the formula and pillar copied to /srv/salt-local (see copy_formula)."""
    res = host.run([f"/opt/salt-{version}/bin/salt-call", "-c", "/srv/salt-local", "--local", "--out=json",
                    "--log-level=quiet", *args], check=False, timeout=timeout)
    try:
        return json.loads(res.stdout)["local"]
    except (ValueError, KeyError):
        raise fleetmod.FleetError(f"salt-call {args} (rc {res.returncode}):\n{res.stdout}\n{res.stderr}") from None


def copy_formula(host, pillar_text, repo=fleetmod.REPO_ROOT):
    """The formula's tree and a pillar into the host, with a masterless
    minion config (/srv/salt-local/minion)."""
    root = host.path("/srv/salt-local")
    for entry in ("mosquitto", "_modules", "_states", "_utils"):
        shutil.copytree(repo / entry, root / "states" / entry, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (root / "pillar").mkdir(parents=True, exist_ok=True)
    (root / "pillar/top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
    (root / "pillar/mosquitto.sls").write_text(pillar_text)
    (root / "pillar/mosquitto.sls").chmod(0o600)
    (root / "minion").write_text(json.dumps({
        "id": host.name, "file_client": "local",
        "file_roots": {"base": ["/srv/salt-local/states"]},
        "pillar_roots": {"base": ["/srv/salt-local/pillar"]},
        "root_dir": "/var/lib/salt-local", "enable_fqdns_grains": False,
    }) + "\n")
