"""Render the formula with other platforms' grains (no such host is reachable
here): the RedHat path must take EPEL, its packages and paths, and systemd
hosts must use the plain service module."""

from test.support.render import DEBIAN12_SYSTEMD, PILLAR, ROCKY9, args, local, render


def mapdata(salt, template="{{ salt['mosquitto_map.data']() | json }}"):
    """The formula's dict as an SLS file gets it (inside a template render)."""
    rc, data, err = salt.call("slsutil.renderer", f"string={template}", "default_renderer=jinja|json")
    assert rc == 0, err
    return data


def test_rocky9_takes_the_epel_path(tmp_path):
    salt, hs = render(tmp_path, ROCKY9)
    repo = args(hs["mosquitto-build-repo-pkg-installed"])
    assert repo["_function"] == "pkg.installed" and repo["name"] == "epel-release"
    pkgs = args(hs["mosquitto-build-package-pkg-installed"])
    assert pkgs["pkgs"] == ["ca-certificates", "mosquitto"]  # EPEL's mosquitto carries the clients
    assert {"sls": "mosquitto.build.repo"} in pkgs["require"]
    svc = args(hs["mosquitto-runtime-service-running"])
    assert svc["name"] == "mosquitto" and "provider" not in svc
    # systemd's unit makes /run/mosquitto: no state for it.
    assert "mosquitto-runtime-service-run-dir-managed" not in hs
    data = mapdata(salt)
    assert data["paths"]["include_dir"] == "" and data["paths"]["pid_file"] == ""
    assert data["pkg"]["exporter_deps"] == ["python3-paho-mqtt", "python3-prometheus_client"]
    assert data["service"]["provider"] == []


def test_map_jinja_still_serves_operators_sls_files(tmp_path):
    salt, _ = render(tmp_path, DEBIAN12_SYSTEMD)
    shim = mapdata(salt, "{% from 'mosquitto/map.jinja' import mapdata with context %}{{ mapdata | json }}")
    assert shim == mapdata(salt) and shim["users"]["alice"]["password"] == "pw"


def test_debian12_with_systemd_uses_the_default_service_module(tmp_path):
    salt, hs = render(tmp_path, DEBIAN12_SYSTEMD)
    assert "mosquitto-build-repo-pkg-installed" not in hs
    assert args(hs["mosquitto-build-package-pkg-installed"])["pkgs"] == [
        "ca-certificates", "mosquitto", "mosquitto-clients"]
    assert "provider" not in args(hs["mosquitto-runtime-service-running"])
    data = mapdata(salt)
    assert data["paths"]["include_dir"] == "/etc/mosquitto/conf.d"


def test_without_systemd_the_sysv_provider_is_pinned(tmp_path):
    for grains, provider in ((dict(DEBIAN12_SYSTEMD, init="sysvinit"), "debian_service"),
                             (dict(ROCKY9, init="unknown"), "rh_service")):
        salt, hs = render(tmp_path / provider, grains)
        # The sysv module, then the add-on that stops "OFFLINE mode" no-ops.
        want = [{"service": provider}, {"service": "mosquitto_service"}]
        assert args(hs["mosquitto-runtime-service-running"])["provider"] == want
        assert args(hs["mosquitto-runtime-service-reloaded"])["provider"] == want
        assert args(hs["mosquitto-runtime-exporter-service-running"])["provider"] == want
        assert "mosquitto-runtime-service-run-dir-managed" in hs
        # The exporter's init script: RedHat's own (no start-stop-daemon,
        # no /lib/lsb/init-functions: test/unit/test_redhat_init_script.py).
        source = args(hs["mosquitto-configure-exporter-init-file-managed"])["source"]
        family = "Debian" if provider == "debian_service" else "RedHat"
        assert source == (f"salt://mosquitto/files/{family}/mosquitto-exporter.init.jinja" if family == "RedHat"
                          else "salt://mosquitto/files/default/mosquitto-exporter.init.jinja"), source


def test_phases_are_ordered_by_requisites(tmp_path):
    _, hs = render(tmp_path, ROCKY9)
    conf = args(hs["mosquitto-configure-broker-config-file-managed"])
    assert {"sls": "mosquitto.build.package"} in conf["require"]
    assert {"sls": "mosquitto.configure.tls"} in conf["require"]
    svc = args(hs["mosquitto-runtime-service-running"])
    assert {"sls": "mosquitto.configure.broker"} in svc["watch"]
    reload_ = args(hs["mosquitto-runtime-service-reloaded"])
    assert reload_["reload"] is True and {"sls": "mosquitto.configure.users"} in reload_["watch"]


def test_lookup_overrides_os_defaults(tmp_path):
    pillar = {"mosquitto": dict(PILLAR["mosquitto"], lookup={"paths": {"passwd": "/srv/mqtt/passwd"}})}
    _, hs = render(tmp_path, ROCKY9, pillar)
    assert args(hs["mosquitto-configure-users-passwd-managed"])["name"] == "/srv/mqtt/passwd"


def test_bad_pillar_fails_the_render_naming_the_key(tmp_path):
    pillar = {"mosquitto": {"domain": "mqtt.example.com", "ports": {"mqtt": 70000}}}
    salt = local(tmp_path, ROCKY9, pillar)
    rc, out, err = salt.call("state.show_sls", "mosquitto")
    assert rc != 0
    assert "mosquitto:ports:mqtt: must be between 1 and 65535, got 70000" in str(out)


def test_firewall_enabled_opens_exactly_ssh_mqtts_and_exporter(tmp_path):
    pillar = {"mosquitto": dict(PILLAR["mosquitto"], ports={"mqtts": 18883, "exporter": 19234},
                                firewall={"enabled": True, "zone": "internal"})}
    _, hs = render(tmp_path, ROCKY9, pillar)
    assert args(hs["mosquitto-build-firewall-pkg-installed"])["name"] == "firewalld"
    assert args(hs["mosquitto-configure-firewall-service-running"])["name"] == "firewalld"
    zone = args(hs["mosquitto-configure-firewall-zone-present"])
    assert zone["_function"] == "mosquitto_firewall.zone_present" and zone["name"] == "internal"
    assert zone["ports"] == ["18883/tcp", "19234/tcp"] and zone["services"] == ["ssh"]
    drift = args(hs["mosquitto-runtime-firewall-reloaded"])
    assert drift["_function"] == "mosquitto_firewall.reloaded" and drift["name"] == "internal"
    assert drift["ports"] == zone["ports"] and drift["services"] == zone["services"]


def test_firewall_disabled_or_absent_manages_nothing_and_says_so(tmp_path):
    for enabled in (False, "auto"):  # auto: no firewalld runs on this machine
        pillar = {"mosquitto": dict(PILLAR["mosquitto"], firewall={"enabled": enabled})}
        _, hs = render(tmp_path / str(enabled), ROCKY9, pillar)
        assert not [sid for sid in hs if "firewall" in sid and "unmanaged" not in sid]
        note = args(hs["mosquitto-configure-firewall-unmanaged"])["text"]
        assert note.startswith("No firewall managed")


def test_fleet_mode_fetches_the_ca_and_has_no_ca_key(tmp_path):
    pillar = {"mosquitto": dict(PILLAR["mosquitto"], tls={"ca_server": "ca-minion"})}
    _, hs = render(tmp_path, ROCKY9, pillar)
    fetch = args(hs["mosquitto-configure-tls-ca-present"])
    assert fetch["_function"] == "mosquitto_ca.ca_cert_present" and fetch["ca_server"] == "ca-minion"
    assert "mosquitto-configure-tls-ca-dir-managed" not in hs
    assert args(hs["mosquitto-configure-tls-server-cert-managed"])["ca_server"] == "ca-minion"


def test_exporter_from_a_venv(tmp_path):
    pillar = {"mosquitto": dict(PILLAR["mosquitto"], exporter={"install": "venv", "venv_dir": "/opt/mx"})}
    _, hs = render(tmp_path, DEBIAN12_SYSTEMD, pillar)
    assert "mosquitto-build-exporter-deps-pkg-installed" not in hs
    assert args(hs["mosquitto-build-exporter-venv-pkg-installed"])["name"] == "python3-venv"
    pip = args(hs["mosquitto-build-exporter-deps-pip-installed"])
    assert pip["name"].startswith("/opt/mx/bin/pip install") and "--no-index" in pip["unless"]
    assert "--dry-run" not in pip["unless"]  # pip 21 (Rocky 9's venv) has no --dry-run
    unit = args(hs["mosquitto-configure-exporter-unit-file-managed"])
    assert unit["name"] == "/etc/systemd/system/mosquitto-exporter.service"
    assert unit["context"]["python"] == "/opt/mx/bin/python"


def test_rocky9_with_selinux_relabels_the_formulas_own_trees(tmp_path):
    """ROCKY9 has SELinux enforcing (the RHEL 9 default): one restorecon -R
    per directory the formula fills, never a shared one (/etc, /var/lib,
    /opt ...), each after the SLS files that write there."""
    pillar = {"mosquitto": dict(PILLAR["mosquitto"], exporter={"install": "venv", "venv_dir": "/opt/mx"})}
    _, hs = render(tmp_path, ROCKY9, pillar)
    labelled = {sid: args(state) for sid, state in hs.items() if "-selinux-" in sid}
    trees = sorted(a["name"] for a in labelled.values())
    # /etc/mosquitto holds passwd, acl, certs, ca, bridges.d and the exporter's secret.
    assert trees == ["/etc/mosquitto", "/opt/mx", "/var/lib/mosquitto", "/var/log/mosquitto"], trees
    for state in labelled.values():
        assert state["_function"] == "selinux.fcontext_policy_applied" and state["recursive"] is True
        assert {"sls": "mosquitto.configure.users"} in state["require"]
        assert {"sls": "mosquitto.build.exporter"} in state["require"]
    # Ports: none labelled (README "RedHat": unreserved_port_t, unconfined_service_t).
    assert not [sid for sid, state in hs.items() if "port_policy_present" in str(state)]


def test_without_selinux_nothing_is_relabelled(tmp_path):
    _, hs = render(tmp_path, DEBIAN12_SYSTEMD)
    assert not [sid for sid in hs if "-selinux-" in sid]
