"""Small helpers the integration and container suites share: is a
loopback port open, wait for a condition, and run a command that resolves
test names to 127.0.0.1 without touching the host's /etc/hosts."""
import contextlib
import os
import signal
import socket
import subprocess
import time


def accepts(port, host="127.0.0.1"):
    """True when something accepts a TCP connection on host:port now."""
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_for(predicate, timeout=10.0, step=0.1):
    """predicate()'s first truthy value within timeout seconds, else its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


def hosts_runner(tmp_path, names):
    """A run(cmd, timeout=20, **kw) that executes cmd with ``names`` mapped
    to 127.0.0.1 in a private mount namespace (/etc/hosts bind-mounted)."""
    hosts = tmp_path / "hosts"
    hosts.write_text(f"127.0.0.1 localhost {' '.join(names)}\n")

    def run(cmd, timeout=20, **kw):
        script = f"mount --bind {hosts} /etc/hosts && exec \"$@\""
        return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *cmd],
                              capture_output=True, text=True, timeout=timeout, **kw)
    return run


CRON_PIDFILE = "/run/crond.pid"


def _cron_pid():
    """The PID of a live cron daemon per its pidfile, else None."""
    try:
        pid = int(open(CRON_PIDFILE).read().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def cron_left_as_found():
    """Masterless renewal makes the formula start and enable cron
    (runtime/renewal.sls). On this machine the suites apply masterless, so a
    cron the suite started would keep firing /etc/cron.d jobs after it: stop
    it again (by its pidfile's PID, which the suite started) when it was not
    running before."""
    before = _cron_pid()
    try:
        yield
    finally:
        after = _cron_pid()
        if before is None and after is not None:
            os.kill(after, signal.SIGTERM)
            wait_for(lambda: _cron_pid() is None, timeout=10)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(CRON_PIDFILE)
