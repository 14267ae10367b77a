"""mosquitto_ca states through Salt's real loaders and state.single, against temp dirs.

Fixtures (loaders, modules, states) come from conftest.py beside this file.
"""
import os

import pytest


def snapshot(*paths):
    return {p: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns) for p in paths}


@pytest.fixture
def pki(tmp_path):
    ca_dir, certs = tmp_path / "ca", tmp_path / "certs"
    ca_dir.mkdir()
    certs.mkdir()
    return {
        "ca_crt": ca_dir / "ca.crt",
        "ca_key": ca_dir / "ca.key",
        "crt": certs / "server.crt",
        "key": certs / "server.key",
    }


def test_modules_are_loaded(modules, states):
    assert "mosquitto_ca.issue_cert" in modules
    assert "mosquitto_ca.ca_present" in states
    assert "mosquitto_ca.certificate_managed" in states
    assert "mosquitto_ca.ca_cert_present" in states


def test_ca_and_certificate(states, modules, pki):
    ca_args = {"name": str(pki["ca_crt"]), "key_path": str(pki["ca_key"]), "common_name": "Test CA"}
    cert_args = {
        "name": str(pki["crt"]),
        "key_path": str(pki["key"]),
        "ca_cert": str(pki["ca_crt"]),
        "ca_key": str(pki["ca_key"]),
        "common_name": "mqtt.example.com",
        "dns_names": ["localhost"],
        "ip_addresses": ["127.0.0.1"],
    }

    dry = states.mosquitto_ca.ca_present(test=True, **ca_args)
    assert dry.result is None and dry.changes["new"]["common_name"] == "Test CA"
    assert not pki["ca_crt"].exists() and not pki["ca_key"].exists()

    ret = states.mosquitto_ca.ca_present(**ca_args)
    assert ret.result is True, ret.comment
    assert ret.changes["new"]["key_type"] == "ec"

    dry = states.mosquitto_ca.certificate_managed(test=True, **cert_args)
    assert dry.result is None and "would be issued: certificate missing" in dry.comment
    assert not pki["crt"].exists() and not pki["key"].exists()

    ret = states.mosquitto_ca.certificate_managed(**cert_args)
    assert ret.result is True, ret.comment
    assert ret.changes["new"]["dns_names"] == ["mqtt.example.com", "localhost"]
    assert "PRIVATE KEY" not in repr(ret.full_return)
    assert modules.mosquitto_ca.verify_chain(str(pki["crt"]), str(pki["ca_crt"])) is True
    assert os.stat(pki["key"]).st_mode & 0o777 == 0o640

    before = snapshot(*pki.values())
    for test in (False, True):
        assert states.mosquitto_ca.ca_present(test=test, **ca_args).changes == {}
        again = states.mosquitto_ca.certificate_managed(test=test, **cert_args)
        assert again.result is True and again.changes == {}, again.comment
    assert snapshot(*pki.values()) == before

    cert_args["dns_names"] = ["localhost", "mqtt2.example.com"]
    dry = states.mosquitto_ca.certificate_managed(test=True, **cert_args)
    assert dry.result is None and "SANs changed (added mqtt2.example.com)" in dry.comment
    assert snapshot(*pki.values()) == before
    ret = states.mosquitto_ca.certificate_managed(**cert_args)
    assert ret.result is True and ret.comment.endswith("reissued: SANs changed (added mqtt2.example.com)")
    assert ret.changes["old"]["serial"] != ret.changes["new"]["serial"]


def test_ca_is_never_replaced(states, pki):
    args = {"name": str(pki["ca_crt"]), "key_path": str(pki["ca_key"])}
    pki["ca_crt"].write_text("a CA that clients trust, unreadable to us\n")
    ret = states.mosquitto_ca.ca_present(**args)
    assert ret.result is False and "CA is incomplete" in ret.comment
    assert pki["ca_crt"].read_text().startswith("a CA that clients trust")
    assert not pki["ca_key"].exists()
