"""Unit suite hooks.

Salt's deferred stderr log handler would print every WARNING a module logs
(the CA minion's refusals) as a "Logging error" at interpreter exit when
this suite runs alone: drop it (test/support/saltlog.py).

The mosquitto_ca fixtures (loader globals set through monkeypatch, a CA
minion answering peer calls) are here so the CA test modules share them
without importing one another; their stand-ins are in test/support/ca.py.
"""
import types

import pytest

from test.support import ca as support_ca
from test.support import saltlog


def pytest_unconfigure(config):
    saltlog.drop_salt_temp_handler()


# --- mosquitto_ca: loader globals and stand-ins (test/support/ca.py) -------------


@pytest.fixture
def ca_loader(monkeypatch):
    """mosquitto_ca's loader globals for minion "ca1", with no pillar (the map's defaults)."""
    return support_ca.ca_loader(monkeypatch)


@pytest.fixture
def salt_env(monkeypatch, ca_loader):
    """The states' loader globals: the real execution module behind __salt__,
    one state run's __context__."""
    funcs = {f"mosquitto_ca.{name}": getattr(support_ca.camod, name) for name in support_ca.FUNCS}
    opts = {"test": False, "id": support_ca.BROKER_ID}
    monkeypatch.setattr(support_ca.st, "__salt__", funcs, raising=False)
    monkeypatch.setattr(support_ca.st, "__opts__", opts, raising=False)
    monkeypatch.setattr(support_ca.st, "__context__", {}, raising=False)
    return types.SimpleNamespace(salt=funcs, opts=opts)


@pytest.fixture
def paths(tmp_path):
    return types.SimpleNamespace(
        root=tmp_path,
        ca_crt=str(tmp_path / "ca.crt"),
        ca_key=str(tmp_path / "ca.key"),
        crt=str(tmp_path / "server.crt"),
        key=str(tmp_path / "server.key"),
    )


@pytest.fixture
def ca_minion(salt_env, tmp_path, monkeypatch):
    """A CA minion 'ca1' whose files live under tmp_path/ca-host (its own "/").

    Its pillar names its CA files and lets broker1 have localhost,
    *.example.com and 127.0.0.0/8 (signing_policies); calls reach it the way
    peer publish delivers them (support_ca.peer_publish)."""
    local, remote = tmp_path / "local", tmp_path / "ca-host"
    local.mkdir()
    remote.mkdir()
    pillar = {"mosquitto": {"tls": {
        "ca_cert": str(remote / "ca.crt"), "ca_key": str(remote / "ca.key"),
        "signing_policies": [{"minions": support_ca.BROKER_ID, "dns_names": ["localhost", "*.example.com"],
                              "ip_networks": ["127.0.0.0/8"]}],
    }}}
    support_ca.ca_loader(monkeypatch, pillar)
    support_ca.camod.create_ca(str(remote / "ca.crt"), str(remote / "ca.key"))
    calls = []
    salt_env.salt["publish.publish"] = support_ca.peer_publish(salt_env.salt, "ca1", support_ca.BROKER_ID, calls)
    return types.SimpleNamespace(
        local=local, remote=remote, calls=calls, pillar=pillar,
        ca_crt=str(local / "ca.crt"), ca_key=str(local / "ca.key"),
        crt=str(local / "server.crt"), key=str(local / "server.key"),
    )
