"""The init-script hook that gives mosquitto its open-files limit where
systemd is not PID 1, run by the real /bin/sh (dash) and run-parts."""
import pathlib
import resource
import subprocess

import jinja2
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
HOOK = (yaml.safe_load((ROOT / "mosquitto/parameters/os_family/Debian.yaml").read_text())
        ["values"]["paths"]["sysv_limits_hook"])


def render(open_files, daemon="/usr/sbin/mosquitto"):
    template = (ROOT / "mosquitto/files/default/mosquitto-limits.sh.jinja").read_text()
    return jinja2.Template(template).render(open_files=open_files, daemon=daemon)


def limit_after_sourcing(tmp_path, text, daemon):
    hook = tmp_path / "hook"
    hook.write_text(text)
    # as /etc/init.d/mosquitto does: DAEMON set, `set -e`, then the hooks
    script = f'set -e; DAEMON={daemon}; . {hook}; echo "$(ulimit -Sn) $(ulimit -Hn)"'
    out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=True)
    return tuple(int(x) for x in out.stdout.split())


def test_sets_the_limit_for_mosquittos_init_script_only(tmp_path):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert limit_after_sourcing(tmp_path, render(4096), "/usr/sbin/mosquitto") == (4096, 4096)
    # another init script sourcing the same hooks keeps its own limits
    mine = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert limit_after_sourcing(tmp_path, render(4096), "/usr/sbin/cron") == mine
    # above a hard limit root cannot raise: the hard limit, no failure (set -e)
    assert limit_after_sourcing(tmp_path, render(hard + 1000), "/usr/sbin/mosquitto") == (hard, hard)


def test_run_parts_lists_the_hook_name(tmp_path):
    """/lib/lsb/init-functions sources `run-parts --lsbsysinit --list` of its
    directory: a name it skipped would never be read."""
    (tmp_path / pathlib.PurePath(HOOK).name).write_text(render(4096))
    listed = subprocess.run(["run-parts", "--lsbsysinit", "--list", str(tmp_path)],
                            capture_output=True, text=True, check=True).stdout.split()
    assert listed == [str(tmp_path / pathlib.PurePath(HOOK).name)]
    assert HOOK.startswith("/lib/lsb/init-functions.d/")
    assert "init-functions.d" in pathlib.Path("/lib/lsb/init-functions").read_text()
