"""Small helpers the integration and container suites share: is a
loopback port open, wait for a condition, and run a command that resolves
test names to 127.0.0.1 without touching the host's /etc/hosts."""
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
