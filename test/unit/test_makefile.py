"""`make apply` installs what applying needs and nothing of the test
suite's; `make test` and `make lint` add their own. Read from make's own
dry run (-n: prints the commands, runs none) against an empty venv and
stamp directory, so every step shows."""
import pathlib
import re
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def dry_run(target, tmp_path):
    out = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(ROOT), target, f"VENV={tmp_path}/venv",
                          f"BUILD={tmp_path}/build"], capture_output=True, text=True, check=True).stdout
    apt = [line.split()[1:] for line in out.splitlines() if line.startswith("scripts/apt-install")]
    pip = re.findall(r"-m pip install --quiet (.+)$", out, re.M)
    return out, [p for pkgs in apt for p in pkgs], pip


def make_var(name):
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    return re.search(rf"^{name}\s*:=\s*(.*)$", text, re.M).group(1).split()


def test_make_apply_installs_only_what_applying_needs(tmp_path):
    out, debs, pip = dry_run("apply", tmp_path)
    assert debs == make_var("APPLY_DEBS")
    assert not {"mosquitto", "prometheus", "docker.io", "shellcheck"} & set(debs)
    assert pip == ["--upgrade pip wheel", "."], pip  # the runtime dependencies, no extra
    assert out.rstrip().endswith("scripts/demo_apply.py")


def test_make_test_and_lint_add_their_extras(tmp_path):
    _, debs, pip = dry_run("setup-test", tmp_path)
    assert "'.[test]'" in pip and "'.[lint]'" in pip
    assert set(make_var("APPLY_DEBS")) <= set(debs) and "mosquitto" in debs and "logrotate" in debs
    _, debs, pip = dry_run("setup-lint", tmp_path)
    assert "'.[lint]'" in pip and "'.[test]'" not in pip and "mosquitto" not in debs
