"""A private Docker engine and locally built broker images, for the container
suite and bench/container.py.

* ``DockerEngine`` starts its own ``dockerd`` with everything under one
  directory (data, exec root, pid file, socket) and every firewall feature
  off (no iptables/ip6tables rules, no forwarding, no masquerading, no
  default bridge), cgroupfs driver. It is stopped by its PID, and its
  leftovers (netns mount, /run/docker*, /run/containerd) are removed, also
  when a test failed.
* No registry is reachable: ``ensure_rootfs`` debootstraps a minimal
  Debian 12 root once and caches it as a tarball, with Debian's mosquitto
  .debs beside it, in CACHE_DIR keyed by the recipe. ``build_images``
  imports it and builds broker images from it with ``--network none``.
"""
import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import time

CACHE_DIR = pathlib.Path(os.environ.get("MQTT_FLEET_CACHE", "/var/cache/mosquitto-formula"))
SUITE = "bookworm"
MIRROR = os.environ.get("MQTT_FLEET_MIRROR", "http://deb.debian.org/debian")
DEBS = ("mosquitto", "mosquitto-clients")
RECIPE_VERSION = 1
BASE_IMAGE = "local/bookworm-minbase:test"
DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
# Debian's 20.10 client; /usr/local/bin/docker may be a newer one.
DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else shutil.which("docker")


def _sh(args, check=True, timeout=600, **kw):
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def firewall_snapshot():
    """The host's packet filter as text: the suite must leave it unchanged."""
    rules = {}
    for name, cmd in (("iptables", ["iptables-save"]), ("ip6tables", ["ip6tables-save"]),
                      ("nft", ["nft", "list", "ruleset"])):
        tool = shutil.which(cmd[0])
        assert tool, f"{cmd[0]} is missing: the suite cannot prove it left the firewall alone"
        out = _sh([tool, *cmd[1:]]).stdout
        # iptables-save stamps the time and counters: drop those lines.
        rules[name] = "\n".join(line for line in out.splitlines()
                                if not line.startswith("#") and not line.startswith(":"))
    return rules


class DockerEngine:
    """dockerd with its own socket and data under ``workdir``."""

    def __init__(self, workdir):
        self.dir = pathlib.Path(workdir)
        self.sock = self.dir / "docker.sock"
        self.url = f"unix://{self.sock}"
        self.proc = None
        self.log = self.dir / "dockerd.log"

    def start(self, timeout=60):
        assert os.path.exists(DOCKERD), "dockerd is missing: run `make setup-test` (docker.io)"
        self.dir.mkdir(parents=True, exist_ok=True)
        cmd = [DOCKERD, "--data-root", self.dir / "data", "--exec-root", self.dir / "exec",
               "--pidfile", self.dir / "dockerd.pid", "-H", self.url,
               "--iptables=false", "--ip6tables=false", "--ip-forward=false",
               "--ip-masq=false", "--bridge=none",
               "--storage-driver", "overlay2",
               "--exec-opt", "native.cgroupdriver=cgroupfs",
               "--config-file", self._config()]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dockerd exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            if self.docker("version", check=False).returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError(f"dockerd not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def _config(self):
        path = self.dir / "daemon.json"
        # No registry is reachable: never try one (no pull of a base image).
        path.write_text(json.dumps({"features": {"buildkit": False}}))
        return path

    def docker(self, *args, check=True, timeout=600, input=None):
        return _sh([DOCKER, "-H", self.url, *args], check=check, timeout=timeout, input=input)

    def client(self):
        import docker  # the SDK the formula's Salt states use
        return docker.DockerClient(base_url=self.url, version="auto")

    def stop(self):
        """Stop every container, then dockerd by its PID; tidy its mounts."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                ids = self.docker("ps", "-aq", check=False, timeout=60).stdout.split()
                if ids:
                    self.docker("rm", "-f", *ids, check=False, timeout=120)
                # Their bridges would outlive the engine as host interfaces.
                self.docker("network", "prune", "-f", check=False, timeout=60)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Mounts dockerd leaves (its netns file, overlay layers of a killed run).
        for mnt in sorted(_mounts_under(self.dir), key=len, reverse=True):
            _sh(["umount", "-l", mnt], check=False)
        for leftover in ("/run/docker", "/run/containerd"):
            # Only when no other dockerd uses it (we do not start one there).
            if os.path.isdir(leftover) and not _other_dockerd(self.proc):
                shutil.rmtree(leftover, ignore_errors=True)


def _other_dockerd(ours):
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or (ours and int(pid) == ours.pid):
            continue
        with contextlib.suppress(OSError):
            if pathlib.Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd":
                return True
    return False


def _mounts_under(path):
    prefix = str(pathlib.Path(path).resolve())
    out = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == prefix or mnt.startswith(prefix + "/"):
                out.append(mnt)
    return out


# ------------------------------------------------------------------ images

def _key():
    recipe = {"suite": SUITE, "mirror": MIRROR, "debs": DEBS, "recipe": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


@contextlib.contextmanager
def _flock(path):
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def ensure_rootfs(timings=None):
    """A cached minbase Debian 12 root (tarball) and the mosquitto .debs."""
    timings = {} if timings is None else timings
    cache = CACHE_DIR / f"containers-{_key()}"
    if (cache / ".complete").is_file():
        return cache
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with _flock(CACHE_DIR / ".containers-build.lock"):
        if (cache / ".complete").is_file():
            return cache
        started = time.monotonic()
        tmp = cache.with_name(cache.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        root = tmp / "root"
        root.mkdir(parents=True)
        _sh(["debootstrap", "--variant=minbase", SUITE, root, MIRROR], timeout=1800)
        debs = tmp / "debs"
        (debs / "partial").mkdir(parents=True)
        # What the root lacks for the broker, resolved against its dpkg status.
        _sh(["apt-get", "install", "-y", "-q", "--download-only", "--no-install-recommends",
             "-o", f"Dir::State::status={root}/var/lib/dpkg/status",
             "-o", f"Dir::Cache::archives={debs}", *DEBS], timeout=900)
        shutil.rmtree(debs / "partial")
        (debs / "lock").unlink(missing_ok=True)
        _sh(["tar", "-C", root, "-cf", tmp / "rootfs.tar", "."], timeout=600)
        shutil.rmtree(root)
        (tmp / ".complete").write_text(_key() + "\n")
        tmp.rename(cache)
        timings["rootfs_build_s"] = round(time.monotonic() - started, 1)
        return cache


IMAGE_DOCKERFILE = """\
FROM {base}
COPY debs /tmp/debs
# The broker's account first, with the wanted ids: the package's postinst
# then finds it. No service is started while installing.
RUN printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \\
 && groupadd --system --gid {gid} mosquitto \\
 && useradd --system --uid {uid} --gid {gid} --home-dir /var/lib/mosquitto --no-create-home \\
      --shell /usr/sbin/nologin mosquitto \\
 && dpkg -i /tmp/debs/*.deb && rm -rf /tmp/debs /usr/sbin/policy-rc.d
CMD ["/usr/sbin/mosquitto", "-c", "/etc/mosquitto/mosquitto.conf"]
"""


def build_images(engine, images, workdir, timings=None):
    """Import the cached root and build ``{tag: (uid, gid)}`` broker images."""
    timings = {} if timings is None else timings
    cache = ensure_rootfs(timings)
    started = time.monotonic()
    if engine.docker("image", "inspect", BASE_IMAGE, check=False).returncode != 0:
        with open(cache / "rootfs.tar", "rb") as tar:
            subprocess.run([DOCKER, "-H", engine.url, "import", "-", BASE_IMAGE], stdin=tar,
                           check=True, capture_output=True, timeout=600)
    timings["base_import_s"] = round(time.monotonic() - started, 2)
    for tag, (uid, gid) in images.items():
        ctx = pathlib.Path(workdir) / f"ctx-{uid}"
        shutil.rmtree(ctx, ignore_errors=True)
        shutil.copytree(cache / "debs", ctx / "debs")
        (ctx / "Dockerfile").write_text(IMAGE_DOCKERFILE.format(base=BASE_IMAGE, uid=uid, gid=gid))
        t0 = time.monotonic()
        engine.docker("build", "--network", "none", "-q", "-t", tag, ctx, timeout=600)
        timings[f"build_{uid}_s"] = round(time.monotonic() - t0, 2)
        shutil.rmtree(ctx)
    return timings


# ----------------------------------------------------------- exporter image

EXPORTER_DEBS = ("python3-minimal", "python3-paho-mqtt", "python3-prometheus-client")
EXPORTER_DOCKERFILE = """\
FROM {base}
COPY debs /tmp/debs
RUN printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d \\
 && apt-get install -y -q --no-install-recommends /tmp/debs/*.deb && rm -rf /tmp/debs /usr/sbin/policy-rc.d
"""
# apt-get, not dpkg -i, installs the local .debs (no network, no lists
# needed): python3's chain of pre-dependencies (python3 on a configured
# python3-minimal, that on python3.11-minimal) needs its ordering.


def ensure_exporter_debs():
    """Debian's python3, paho-mqtt and prometheus-client .debs for the
    cached root (resolved against its dpkg status), cached beside it."""
    cache = ensure_rootfs()
    debs = cache / "exporter-debs"
    if (debs / ".complete").is_file():
        return debs
    with _flock(CACHE_DIR / ".containers-build.lock"):
        if (debs / ".complete").is_file():
            return debs
        tmp = cache / "exporter-debs.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "partial").mkdir(parents=True)
        status = tmp / "root"
        status.mkdir()
        _sh(["tar", "-C", status, "-xf", cache / "rootfs.tar", "./var/lib/dpkg/status"])
        _sh(["apt-get", "install", "-y", "-q", "--download-only", "--no-install-recommends",
             "-o", f"Dir::State::status={status}/var/lib/dpkg/status",
             "-o", f"Dir::Cache::archives={tmp}", *EXPORTER_DEBS], timeout=900)
        shutil.rmtree(tmp / "partial")
        shutil.rmtree(status)
        (tmp / "lock").unlink(missing_ok=True)
        (tmp / ".complete").write_text("\n".join(EXPORTER_DEBS) + "\n")
        tmp.rename(debs)
        return debs


def build_exporter_image(engine, tag, base, workdir):
    """``tag``: the broker image ``base`` plus Debian's python3 with
    paho-mqtt and prometheus-client, what the formula's exporter program
    needs (a sidecar image for the Kubernetes pods)."""
    ctx = pathlib.Path(workdir) / "ctx-exporter"
    shutil.rmtree(ctx, ignore_errors=True)
    shutil.copytree(ensure_exporter_debs(), ctx / "debs", ignore=shutil.ignore_patterns(".complete"))
    (ctx / "Dockerfile").write_text(EXPORTER_DOCKERFILE.format(base=base))
    engine.docker("build", "--network", "none", "-q", "-t", tag, ctx, timeout=600)
    shutil.rmtree(ctx)
