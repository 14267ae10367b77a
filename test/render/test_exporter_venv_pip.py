"""The exporter's venv check (build/exporter.sls) with the pip that Rocky 9's
python3.9 venv brings: pip 21, which has no ``install --dry-run``.

The commands are the ones the formula renders for a Rocky 9 minion
(exporter:install venv), run by /bin/sh against a real venv of Python 3.9
(pyenv's, else this machine's python3) downgraded to pip 21.3.1. The wheels
come from PyPI once and are kept in the suite's cache directory; the checks
themselves use no index."""
import os
import shutil
import subprocess
import sys

import pytest

from test.support.fleet import CACHE_DIR
from test.support.pythons import PYTHON39
from test.support.render import PILLAR, ROCKY9, args, render

PIP21 = "pip==21.3.1"
DEFAULT_REQS = ["paho-mqtt>=1.6,<3", "prometheus-client>=0.16"]
# pyenv's 3.9 is the Python Rocky 9 has; without it the check still meets pip 21.
PYTHON = str(PYTHON39) if PYTHON39.exists() else shutil.which("python3")


def run_sh(command, env=None):
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                          env=dict(os.environ, **(env or {})), check=False)


@pytest.fixture(scope="module")
def wheels():
    """pip 21.3.1 and the exporter's libraries as wheels for that Python (once)."""
    version = subprocess.run([PYTHON, "-c", "import sys; print('%d%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    where = CACHE_DIR / f"pip21-wheels-py{version}"
    if not (where / ".complete").is_file():
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
                        "--python-version", version, "--dest", str(where), PIP21, *DEFAULT_REQS],
                       check=True)
        (where / ".complete").touch()
    return where


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheels):
    """A venv as `python3 -m venv` makes it (the formula's first state), then
    pip 21.3.1 in it, as on a Rocky 9 host."""
    path = tmp_path_factory.mktemp("pip21") / "venv"
    subprocess.run([PYTHON, "-m", "venv", str(path)], check=True)
    subprocess.run([str(path / "bin/pip"), "install", "--quiet", "--no-index", "--find-links", str(wheels),
                    PIP21], check=True)
    version = subprocess.run([str(path / "bin/pip"), "--version"], capture_output=True, text=True,
                             check=True).stdout
    assert version.startswith("pip 21.3.1 "), version
    return path


def rendered(tmp_path, venv, reqs=None):
    """(install, check): the pip state's command and its unless, as rendered for Rocky 9."""
    exporter = {"install": "venv", "venv_dir": str(venv)}
    if reqs:
        exporter["pip_pkgs"] = reqs
    _, hs = render(tmp_path, ROCKY9, {"mosquitto": dict(PILLAR["mosquitto"], exporter=exporter)})
    pip = args(hs["mosquitto-build-exporter-deps-pip-installed"])
    return pip["name"], pip["unless"]


def test_pip21_has_no_dry_run(venv):
    """Why the check changed: the former one fails on pip 21 whatever is installed."""
    old = run_sh(f"{venv}/bin/pip install --quiet --dry-run --no-index paho-mqtt")
    assert old.returncode != 0 and "no such option: --dry-run" in old.stderr, old.stderr


def test_the_check_fails_until_the_libraries_are_there_then_holds(tmp_path, venv, wheels):
    install, check = rendered(tmp_path, venv)
    assert "--dry-run" not in check
    # Nothing installed yet: the check fails, so pip runs ...
    assert run_sh(check).returncode != 0
    # ... and it fetches nothing itself (no index): the venv is unchanged.
    assert run_sh(f"{venv}/bin/python -c 'import paho.mqtt'").returncode != 0
    # The install state's command (wheels from the cache instead of PyPI).
    done = run_sh(install, env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)})
    assert done.returncode == 0, done.stderr
    # Now the check passes: the next apply runs no pip.
    ok = run_sh(check)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert run_sh(f"{venv}/bin/python -c 'import paho.mqtt, prometheus_client'").returncode == 0


def test_a_version_not_installed_fails_the_check(tmp_path, venv):
    """A pip_pkgs bound the venv does not meet sends pip to the index again."""
    _, check = rendered(tmp_path, venv, ["paho-mqtt>=1.6,<3", "prometheus-client>=999"])
    got = run_sh(check)
    assert got.returncode != 0 and "prometheus-client>=999" in got.stderr, got.stderr


def test_the_exporter_runs_on_that_python_3_9_venv(tmp_path, venv, wheels):
    """The exporter itself on the venv's Python (3.9, as on Rocky 9) with the
    libraries pip 21 installed: it imports, serves /metrics and reads the
    broker's $SYS values (what ast's feature_version cannot promise)."""
    from test.exporter.helpers import ANON, SYS_FAST, Exporter  # pylint: disable=import-outside-toplevel
    from test.support.broker import Broker  # pylint: disable=import-outside-toplevel

    install, _ = rendered(tmp_path, venv)
    assert run_sh(install, env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}).returncode == 0
    version = subprocess.run([str(venv / "bin/python"), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version == ("(3, 9)" if PYTHON39.exists() else version)
    with Broker(extra=ANON + SYS_FAST) as broker:
        exporter = Exporter(str(venv / "bin/python"), "--endpoint", f"tcp://127.0.0.1:{broker.port}").start()
        try:
            _, values = exporter.wait_connected(timeout=30)
            assert values["broker_uptime"] >= 0
        finally:
            exporter.stop()
    assert "Traceback" not in exporter.log(), exporter.log()
