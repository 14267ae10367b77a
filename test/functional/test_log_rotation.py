"""The formula's own logrotate file (Rocky/EPEL, or wherever
lookup:paths:logrotate is set) run by the real logrotate against a real
broker writing its log: the old lines end up compressed beside it, and the
broker keeps logging into the fresh file with no signal (copytruncate; the
broker appends). Debian's own file is checked in test/render/test_logrotate.py."""
import gzip
import subprocess

from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)
from test.support.formula_broker import PASSWORD, FormulaBroker, template
from test.support.mqtt import Client


def login(broker, client_id):
    client = Client(broker.ports[0], "alice", PASSWORD, client_id=client_id)
    assert client.connect()
    client.close()
    broker.wait_for(rf"Client {client_id} disconnected\.")


def test_logrotate_rotates_the_log_the_broker_keeps_writing(tmp_path):
    broker = FormulaBroker(tmp_path / "broker")
    try:
        broker.started()
        login(broker, "before-rotation")
        conf = tmp_path / "logrotate.conf"
        conf.write_text(template("logrotate.jinja", log_file=str(broker.log), user="root", group="root"))
        run = subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "state"), str(conf)],
                             capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stdout + run.stderr
        login(broker, "after-rotation")
        rotated = gzip.decompress((tmp_path / "broker/mosquitto.log.1.gz").read_bytes()).decode()
        assert "Client before-rotation disconnected." in rotated
        assert "after-rotation" not in rotated
        fresh = "\n".join(broker.lines())
        assert "before-rotation" not in fresh and "Client after-rotation disconnected." in fresh
        # copytruncate and append mode: no NUL padding where the old lines were
        assert "\0" not in broker.log.read_text(errors="replace")
    finally:
        broker.stop()
