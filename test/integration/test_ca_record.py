"""A single host's own CA records the certificates it issues, too.

`salt-call --local` on this host: the server certificate is removed (as if
lost), the formula reissues it, and `mosquitto_ca.issued` lists it with this
minion as requester. The record is root-only beside the CA key.
"""
import os
import pathlib
import stat

import pytest
from cryptography import x509

from scripts.saltlocal import changed, failed

pytestmark = pytest.mark.integration

CERT = pathlib.Path("/etc/mosquitto/certs/server.crt")
RECORD = pathlib.Path("/etc/mosquitto/ca/issued.json")


def test_a_reissued_server_certificate_is_recorded(applied, salt_local):
    CERT.unlink()
    rc, states, err = salt_local.apply()
    assert rc == 0 and not failed(states), (failed(states), err)
    assert "mosquitto-configure-tls-server-cert-managed" in changed(states)
    serial = f"{x509.load_pem_x509_certificate(CERT.read_bytes()).serial_number:X}"
    _, minion_id, _ = salt_local.call("grains.get", "id", check=True)
    _, records, _ = salt_local.call("mosquitto_ca.issued", check=True)
    last = records[-1]
    assert (last["serial"], last["requester"], last["how"]) == (serial, minion_id, "local")
    assert last["dns_names"][0] == "mqtt.integration.test"
    st = os.stat(RECORD)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    # Recording is part of issuing, not a change of its own: the next run is quiet.
    rc, states, err = salt_local.apply()
    assert rc == 0 and changed(states) == {}, changed(states)
