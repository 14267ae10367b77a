"""One version: VERSION is the source (pyproject.toml reads it); FORMULA,
Salt's package manifest, has to spell it out again, and the changelog
has an entry for it."""
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
VERSION = (ROOT / "VERSION").read_text().strip()


def test_version_is_semver():
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION), VERSION


def test_formula_manifest_carries_the_same_version():
    assert str(yaml.safe_load((ROOT / "FORMULA").read_text())["version"]) == VERSION


def test_pyproject_takes_the_version_from_the_file():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 on; the formula runs on 3.10 too
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"file": "VERSION"}


def test_changelog_has_an_entry_for_the_version():
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == "Unreleased" and VERSION in headings, headings


def test_formula_claims_the_oldest_salt_the_hosts_suite_runs():
    """minimum_version is proven: the oldest release line the hosts suite
    runs (test/hosts/test_salt_versions.py, and 3008 everywhere), and the
    README's tested matrix names each release."""
    from test.support import fleet, salt_release

    suite = next(r.split("==")[1] for r in fleet.SALT_REQUIREMENTS if r.startswith("salt=="))
    tested = [*salt_release.TESTED, suite]
    formula = yaml.safe_load((ROOT / "FORMULA").read_text())
    assert str(formula["minimum_version"]) == str(min(int(v.split(".")[0]) for v in tested))
    readme = (ROOT / "README.md").read_text()
    assert all(f"Salt {v}" in readme for v in tested), tested
