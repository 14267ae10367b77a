"""Shared stand-ins for the mosquitto_ca tests (module and states).

- ``map_data``: a stand-in for ``mosquitto_map.data`` (the merged map the CA
  reads its paths, days and policies from): defaults.yaml + Debian.yaml +
  the pillar's ``lookup`` + the pillar, with the signing policies checked
  the way the real map's validation does.
- ``ca_loader``: the loader globals of the real execution module
  (``__salt__``, ``__pillar__``, ``__opts__``, ``__context__``), set through
  a pytest MonkeyPatch so nothing outlives the test.
- ``peer_publish``: publish.publish as the master and a CA minion would run
  it (arguments parsed by the minion's own load_args_and_kwargs, ``id`` =
  the caller).
- ``managed``/``snapshot``/``assert_no_secrets``: the states tests' helpers.

The fixtures built on these live in test/unit/conftest.py.
"""
import copy
import functools
import os
import types

import salt.minion
import yaml
from salt.exceptions import CommandExecutionError, SaltInvocationError

from test.support.modules import ROOT, load
from test.support.pillar import pillar_items

camod = load("_modules", "mosquitto_ca")
cfgmod = load("_modules", "mosquitto_config")
st = load("_states", "mosquitto_ca")

BROKER_ID = "broker1"  # the minion id of the broker in the states tests

# Every public function of the execution module, as __salt__ offers them to the states.
FUNCS = [
    "create_ca", "cert_info", "key_fits", "verify_chain", "ensure_key", "ensure_permissions", "issue_cert",
    "create_csr", "sign_csr", "check_request", "issued", "read_ca_cert", "install_cert", "discard_new_key",
    "needs_reissue",
]


def _merge(a, b):
    for k, v in b.items():
        a[k] = _merge(a.get(k, {}), v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return a


@functools.lru_cache(maxsize=1)
def _defaults():
    params = ROOT / "mosquitto" / "parameters"
    data = yaml.safe_load((params / "defaults.yaml").read_text())["values"]
    return _merge(data, yaml.safe_load((params / "os_family" / "Debian.yaml").read_text())["values"])


def map_data(minion_pillar):
    """mosquitto_map.data for a minion whose in-memory pillar is ``minion_pillar``;
    ``pillar=`` (a pillar compiled anew) replaces it, as the CA's fresh reads do."""
    def data(pillar=None):
        mosquitto = copy.deepcopy(((minion_pillar if pillar is None else pillar) or {}).get("mosquitto") or {})
        lookup = mosquitto.pop("lookup", None) or {}
        out = _merge(_merge(copy.deepcopy(_defaults()), lookup), mosquitto)
        out["tls"]["signing_policies"] = cfgmod.signing_policies(out["tls"]["signing_policies"])
        return out
    return data


def ca_loader(mp, pillar=None, fresh_pillar=None, minion_id="ca1"):
    """Loader globals of mosquitto_ca for a minion ``minion_id``.

    ``pillar`` is the minion's in-memory pillar (``__pillar__``, what the map
    reads by default); ``fresh_pillar`` what the master compiles now
    (pillar.items), default the same object. Both stay live: edits count."""
    pillar = {} if pillar is None else pillar
    fresh = pillar if fresh_pillar is None else fresh_pillar
    funcs = {"pillar.items": pillar_items(fresh), "mosquitto_map.data": map_data(pillar)}
    mp.setattr(camod, "__salt__", funcs, raising=False)
    mp.setattr(camod, "__pillar__", pillar, raising=False)
    mp.setattr(camod, "__opts__", {"id": minion_id}, raising=False)
    mp.setattr(camod, "__context__", {}, raising=False)
    return types.SimpleNamespace(salt=funcs, pillar=pillar, fresh_pillar=fresh, context=camod.__context__)


def peer_publish(funcs, ca_id, requester, calls):
    """publish.publish from minion ``requester``: only ``ca_id`` answers; a
    target nobody answers for gets {} (as with a missing peer rule)."""
    def publish(tgt, fun, arg=None, timeout=5, **kwargs):
        calls.append(fun)
        if tgt != ca_id:
            return {}
        func = funcs[fun]
        data = {"fun": fun, "arg": arg, "tgt": tgt, "jid": "1", "ret": "", "id": requester, "user": "root"}
        # What a minion answers when the call fails (salt.minion's _thread_return).
        try:
            args, kw = salt.minion.load_args_and_kwargs(func, arg, data)
            return {tgt: func(*args, **kw)}
        except CommandExecutionError as exc:
            return {tgt: f"ERROR: {exc}"}
        except (TypeError, SaltInvocationError) as exc:
            return {tgt: f"Passed invalid arguments to {fun}: {exc}"}
    return publish


def snapshot(*files):
    """Content, inode and mtime: a rewrite with the same bytes still shows."""
    out = {}
    for f in files:
        if os.path.exists(f):
            s = os.stat(f)
            out[f] = (open(f, "rb").read(), s.st_ino, s.st_mtime_ns)
    return out


def assert_no_secrets(ret):
    assert "PRIVATE KEY" not in repr(ret)


def managed(p, **kwargs):
    """certificate_managed for paths ``p`` (localhost + 127.0.0.1 unless told)."""
    args = dict(key_path=p.key, ca_cert=p.ca_crt, ca_key=p.ca_key, common_name="localhost", ip_addresses=["127.0.0.1"])
    args.update(kwargs)
    ret = st.certificate_managed(p.crt, **args)
    assert_no_secrets(ret)
    return ret
