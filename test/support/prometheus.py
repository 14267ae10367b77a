"""A throw-away Prometheus server (Debian's `prometheus`) for the tests."""
import contextlib
import shutil
import subprocess
import time
import urllib.request

from test.support.broker import free_port, stop_process, wait_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def _ready(base):
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as resp:
            return resp.status == 200
    except OSError:  # refused, or 503 while it replays its WAL
        return False


@contextlib.contextmanager
def running_prometheus(config, workdir, ready_timeout=60):
    """Start Prometheus on a free loopback port with `config`, data and log
    in `workdir`; yield its base URL once /-/ready answers (queries get 503
    before that); stop it on exit."""
    port = free_port()
    log = workdir / "prometheus.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_port(port, timeout=30)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + ready_timeout
        while not _ready(base):
            assert time.monotonic() < deadline, f"Prometheus not ready:\n{log.read_text()}"
            time.sleep(0.2)
        yield base
    finally:
        stop_process(proc, grace=30)
