"""FORMULA's `os` and `os_family` are the grains Salt really reports for the
distributions the formula is written for, asked of Salt's own grains code
(salt.grains.core: the os grain from os-release NAME/ID, the family from
_OS_FAMILY_MAP), and every listed os has its parameters."""
import pathlib

import salt.grains.core as core
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]

# os-release (NAME, ID) of each supported distribution, as their release
# packages write them: Debian 12/13 (base-files), Rocky 9 (rocky-release),
# AlmaLinux 9 (almalinux-release), RHEL 9 (redhat-release), CentOS Stream 9
# (centos-stream-release).
OS_RELEASE = {
    ("Debian GNU/Linux", "debian"): ("Debian", "Debian"),
    ("Rocky Linux", "rocky"): ("Rocky", "RedHat"),
    ("AlmaLinux", "almalinux"): ("AlmaLinux", "RedHat"),
    ("Red Hat Enterprise Linux", "rhel"): ("RedHat", "RedHat"),
    ("CentOS Stream", "centos"): ("CentOS Stream", "RedHat"),
}


def formula():
    data = yaml.safe_load((ROOT / "FORMULA").read_text())
    return ([s.strip() for s in data["os"].split(",")], [s.strip() for s in data["os_family"].split(",")])


def family_of(os_grain):
    """os_data's own rule: the family map, else the os itself."""
    return core._OS_FAMILY_MAP.get(os_grain, os_grain)


def test_salt_derives_the_expected_grains():
    for (name, os_id), (want_os, want_family) in OS_RELEASE.items():
        got = core._derive_os_grain(name, os_id)
        assert (got, family_of(got)) == (want_os, want_family), name


def test_formula_lists_exactly_those_os_grains_and_families():
    os_list, families = formula()
    assert sorted(os_list) == sorted(os for os, _ in OS_RELEASE.values())
    assert sorted(families) == sorted({family for _, family in OS_RELEASE.values()})


def test_each_family_has_parameters_and_rhel_gets_epel_from_its_url():
    _, families = formula()
    for family in families:
        assert (ROOT / "mosquitto" / "parameters" / "os_family" / f"{family}.yaml").is_file()
    redhat = yaml.safe_load((ROOT / "mosquitto/parameters/os_family/RedHat.yaml").read_text())["values"]
    assert redhat["pkg"]["repo"] == "epel-release"
    # RHEL's own repositories have no epel-release: it comes from EPEL's URL.
    rhel = yaml.safe_load((ROOT / "mosquitto/parameters/os/RedHat.yaml").read_text())["values"]
    assert rhel["pkg"]["repo_source"].startswith("https://dl.fedoraproject.org/pub/epel/epel-release-latest-9")
    # No os file for the clones: their extras repository has epel-release.
    assert sorted(p.stem for p in (ROOT / "mosquitto/parameters/os").glob("*.yaml")) == ["RedHat"]
