"""Rendered requisites of the certificate's reload and the renewal job: a
server-certificate reissue reloads, only a CA change restarts, and the
masterless job is a cron entry (cronie on RedHat)."""
from test.support.render import DEBIAN12_SYSTEMD, ROCKY9, args, render

CERT_STATE = {"mosquitto_ca": "mosquitto-configure-tls-server-cert-managed"}
CA_STATE = {"mosquitto_ca": "mosquitto-configure-tls-ca-present"}


def test_reissue_reloads_and_only_the_ca_restarts(tmp_path):
    _, hs = render(tmp_path, DEBIAN12_SYSTEMD)
    restart = args(hs["mosquitto-runtime-service-running"])
    assert CA_STATE in restart["watch"] and CERT_STATE not in restart["watch"]
    assert {"sls": "mosquitto.configure.tls"} not in restart["watch"]
    assert {"mosquitto_service": "mosquitto-runtime-certificate-service-reloaded"} in restart["require_in"]
    reload = args(hs["mosquitto-runtime-certificate-service-reloaded"])
    assert reload["_function"] == "mosquitto_service.running" and reload["reload"] is True
    assert reload["watch"] == [CERT_STATE]


def test_the_renewal_job_applies_the_certificate_part_alone(tmp_path):
    # The job's SLS holds the reissue and its reload, nothing that restarts.
    _, hs = render(tmp_path, DEBIAN12_SYSTEMD, sls="mosquitto.runtime.certificate")
    assert "mosquitto-runtime-certificate-service-reloaded" in hs
    assert "mosquitto-configure-tls-server-cert-managed" in hs
    assert "mosquitto-runtime-service-running" not in hs
    assert "mosquitto-configure-broker-config-file-managed" not in hs


def test_masterless_rocky9_renews_from_cron_with_cronie(tmp_path):
    salt, hs = render(tmp_path, ROCKY9)
    assert args(hs["mosquitto-runtime-renewal-cron-pkg-installed"])["name"] == "cronie"
    cron = args(hs["mosquitto-runtime-renewal-cron-file-managed"])
    assert cron["name"] == "/etc/cron.d/mosquitto-tls-renew"
    line = cron["contents"].strip().splitlines()[-1].split()
    assert line[2:6] == ["*", "*", "*", "root"]
    assert f"--config-dir {salt.dir}" in cron["contents"]
    assert line[-2:] == ["state.apply", "mosquitto.runtime.certificate"]
    # cronie leaves crond stopped after install: the job needs it running.
    crond = args(hs["mosquitto-runtime-renewal-cron-service-running"])
    assert crond["_function"] == "mosquitto_service.running"
    assert crond["name"] == "crond" and crond["enable"] is True and "provider" not in crond
    assert {"pkg": "mosquitto-runtime-renewal-cron-pkg-installed"} in crond["require"]


def test_masterless_debian_runs_its_cron_daemon_too(tmp_path):
    for grains, provider in ((DEBIAN12_SYSTEMD, None),
                             (dict(DEBIAN12_SYSTEMD, init="sysvinit"), "debian_service")):
        _, hs = render(tmp_path / (provider or "systemd"), grains)
        cron = args(hs["mosquitto-runtime-renewal-cron-service-running"])
        assert cron["name"] == "cron" and cron["enable"] is True
        if provider:  # no systemd: the distribution's sysv module, as for the broker
            assert cron["provider"] == [{"service": provider}, {"service": "mosquitto_service"}]
        else:
            assert "provider" not in cron
