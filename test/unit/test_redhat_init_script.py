"""The exporter's init script for RedHat hosts without systemd
(files/RedHat/mosquitto-exporter.init.jinja, chosen by TOFS for
os_family RedHat): rendered as configure/exporter.sls renders it and run
for real with bash (RedHat's /bin/sh) on this machine. It must need none of
Debian's tools (start-stop-daemon, /lib/lsb/init-functions), start the
program once as the exporter's user with the settings file's variables,
report its status and stop it."""
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile
import time

import jinja2
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILES = ROOT / "mosquitto" / "files"
DEBIAN_ONLY = ("start-stop-daemon", "/lib/lsb/", "init-functions", "log_daemon_msg", "status_of_proc",
               "adduser", "update-rc.d", "invoke-rc.d", "/etc/default/")
PYTHON = "/usr/bin/python3"  # the system one, as the formula's python (USER can run it)
USER = "daemon"  # a user with a group of the same name on Debian and RedHat alike


def render(**context):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(FILES / "RedHat")),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template("mosquitto-exporter.init.jinja").render(**context)


def test_redhat_templates_need_no_debian_tool():
    for path in (FILES / "RedHat").iterdir():
        # Commands, not the comments that say why they are not used.
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        assert not [tool for tool in DEBIAN_ONLY if tool in code], path


@pytest.fixture
def service():
    """The rendered script, a program that records its uid and settings,
    and a world-readable directory for both (the program runs as USER)."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="mqtt-rh-init-"))
    work.chmod(0o755)
    out = work / "out"
    out.mkdir()
    out.chmod(0o777)
    program = work / "exporter.py"
    program.write_text("import os, time\n"
                       f"open('{out}/seen', 'w').write('%d %s' % (os.getuid(), os.environ['BROKER_ENDPOINT']))\n"
                       "time.sleep(600)\n")
    env_file = work / "settings"
    env_file.write_text("BROKER_ENDPOINT='tcp://127.0.0.1:1883'\n")
    name = f"mqtt-rh-init-test-{os.getpid()}"
    script = work / name
    script.write_text(render(name=name, env_file=str(env_file), user=USER,
                             python=PYTHON, program=str(program)))
    script.chmod(0o755)

    def run(action):
        return subprocess.run(["bash", str(script), action], capture_output=True, text=True, check=False)

    yield run, out, pathlib.Path(f"/run/{name}.pid")
    run("stop")
    shutil.rmtree(work)


def wait_for(path, seconds=20):
    for _ in range(seconds * 10):
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.1)
    raise AssertionError(f"{path} never written")


def test_start_status_stop(service):
    run, out, pidfile = service
    assert run("status").returncode == 3
    assert run("start").returncode == 0
    pid = int(pidfile.read_text())
    uid, endpoint = wait_for(out / "seen").split()
    assert int(uid) == pwd.getpwnam(USER).pw_uid and endpoint == "tcp://127.0.0.1:1883"
    # A second start keeps the one process.
    assert run("start").returncode == 0 and int(pidfile.read_text()) == pid
    status = run("status")
    assert status.returncode == 0 and str(pid) in status.stdout
    assert run("stop").returncode == 0
    assert not pathlib.Path(f"/proc/{pid}").exists() or "zombie" in pathlib.Path(f"/proc/{pid}/status").read_text()
    assert not pidfile.exists() and run("status").returncode == 3


def test_a_reused_pid_is_not_taken_for_the_exporter(service):
    run, _, pidfile = service
    pidfile.write_text(f"{os.getpid()}\n")  # alive, but this test, not the exporter
    assert run("status").returncode == 1
    assert run("stop").returncode == 0 and os.path.exists(f"/proc/{os.getpid()}")
