"""
States of a hub-and-spoke cluster (see the ``mosquitto_cluster`` execution
module for who publishes what in the Salt mine).

.. code-block:: yaml

    hub-address:                       # on the hub
      mosquitto_cluster.hub_published:
        - domain: mqtt1.example.com
        - port: 8883

    bridge-identity:                   # on each spoke
      mosquitto_cluster.spoke_published:
        - name: /etc/mosquitto/cluster/bridge.secret

    accepted-by-hub:                   # on each spoke, broker running
      mosquitto_cluster.spoke_accepted:
        - name: mqtt1                  # the hub's minion id
        - ca_cert: /etc/mosquitto/certs/ca.crt
        - secret_path: /etc/mosquitto/cluster/bridge.secret

Nothing here shows a password or a hash: ``changes`` hold names, host names
and fingerprints of mine entries only.
"""
import hashlib
import json
import time

from salt.exceptions import CommandExecutionError

__virtualname__ = "mosquitto_cluster"


def __virtual__():
    if "mosquitto_cluster.hub_of" not in __salt__:
        return (False, "the mosquitto_cluster execution module is not available")
    return __virtualname__


def _mine_name(kind):
    """The mine function name of "cluster_hub" or "cluster_spoke" (_utils/mosquitto_names.py)."""
    return __utils__["mosquitto_names.mine_name"](kind)


def _ret(name):
    return {"name": name, "result": False, "changes": {}, "comment": ""}


def _digest(entry):
    return hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:16] if entry else None


def _mine_entry(fun):
    got = __salt__["mine.get"](__opts__["id"], fun)
    return got.get(__opts__["id"]) if isinstance(got, dict) else None


def _published(ret, fun, want, send_kwargs):
    have = _mine_entry(fun)
    if have == want:
        ret.update(result=True, comment=f"{fun} is in the mine")
        return ret
    changes = {"mine": {"old": _digest(have), "new": _digest(want)}}
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"{fun} would be put in the mine")
        return ret
    if not __salt__["mine.send"](fun, **send_kwargs):
        ret["comment"] = f"{fun}: mine.send failed (see the minion log)"
        return ret
    ret.update(result=True, changes=changes, comment=f"{fun} put in the mine")
    return ret


def hub_published(name, domain, port):
    """The hub's ``{domain, port}`` in the mine (``mosquitto_cluster_hub``)."""
    ret = _ret(name)
    mod = "mosquitto_cluster"
    want = __salt__[f"{mod}.hub_address"](domain, port)
    return _published(ret, _mine_name("cluster_hub"), want,
                      {"mine_function": f"{mod}.hub_address", "domain": domain, "port": int(port)})


def spoke_published(name):
    """This spoke's bridge user and ``$7$`` hash in the mine (the secret in
    file ``name`` stays here). Changes show digests of the entry only."""
    ret = _ret(name)
    try:
        want = __salt__["mosquitto_cluster.spoke_identity"](name)
    except CommandExecutionError as exc:
        if __opts__["test"]:
            ret.update(result=None, comment=f"bridge identity would be published once {name} exists",
                       changes={"mine": {"old": None, "new": _mine_name("cluster_spoke")}})
            return ret
        ret["comment"] = str(exc)
        return ret
    return _published(ret, _mine_name("cluster_spoke"), want,
                      {"mine_function": "mosquitto_cluster.spoke_identity", "secret_path": name})


# CONNACK codes of a refused login (MQTT 3.1.1: bad user name or password,
# not authorised): the hub has not accepted this spoke's user yet.
_REFUSED = (4, 5)


def _login(name, hub, ca_cert, user, secret_path, clientid):
    """One login to the published hub: (CONNACK code or None, what the
    answer means, or None when there is nothing to report). A certificate
    that does not verify raises CommandExecutionError."""
    where = f"{hub['domain']}:{hub['port']}"
    try:
        rc = __salt__["mosquitto_cluster.probe"](hub["domain"], hub["port"], ca_cert, user, secret_path, clientid)
    except ConnectionError as exc:
        return None, f"hub {name} not reachable: {exc}"
    if rc in _REFUSED:
        return rc, f"hub {name} ({where}) refuses {user} (CONNACK {rc})"
    if rc not in (0, None):
        return rc, f"hub {name} ({where}) answered CONNACK {rc}"
    return rc, None


def _accepted(ret, name, hub, user, asked):
    """The hub took the login; a change when it had to be asked first."""
    where = f"{hub['domain']}:{hub['port']}"
    if asked:
        ret.update(result=True, changes={"accepted": {"old": False, "new": True}},
                   comment=f"hub {name} ({where}) accepts {user} after: {asked}")
    else:
        ret.update(result=True, comment=f"hub {name} ({where}) accepts {user}")
    return ret


def _ask_to_accept(name, publish_timeout):
    """The hub's answer to mosquitto_cluster.accept (peer publish), shortened."""
    answer = __salt__["publish.publish"](name, "mosquitto_cluster.accept", timeout=publish_timeout)
    return str((answer or {}).get(name, "no answer"))[:300]


# Answers of a hub that will take the request later (mosquitto_cluster.accept
# runs at most once per spoke per ACCEPT_INTERVAL, never twice at once).
_TRANSIENT = ("busy:", "already queued:")


def _may_ask(asked, asked_at, retry_ask):
    """Ask the hub (again): never asked yet, or its last answer said
    "later" and ``retry_ask`` seconds have passed since."""
    if not asked:
        return True
    return asked.startswith(_TRANSIENT) and time.monotonic() - asked_at >= float(retry_ask)


def spoke_accepted(name, ca_cert, secret_path, wait=300, interval=3, publish_timeout=300, retry_ask=60):
    """
    The hub ``name`` (minion id) accepts this spoke's bridge user: a TLS
    login to the hub's published address, the host name verified against
    ``ca_cert``. When the hub refuses the login (it has not read this
    spoke's mine entry yet), ask it to accept (``mosquitto_cluster.accept``
    by peer publish) and log in again. A hub not published or not listening
    yet (first run of the fleet) is waited for up to ``wait`` seconds; a
    certificate that does not verify fails at once. A hub that answers
    "busy" or "already queued" (its accept is rate-limited) is asked again
    after ``retry_ask`` seconds.
    """
    ret = _ret(name)
    me = __opts__["id"]
    mod = "mosquitto_cluster"
    user, clientid = __salt__[f"{mod}.username_of"](me), __salt__[f"{mod}.clientid_of"](me) + ".probe"
    deadline = time.monotonic() + float(wait)
    asked, asked_at = None, None
    last = "no answer"
    while True:
        hub = __salt__[f"{mod}.hub_of"](name)
        rc = None
        if hub is None:
            last = f"hub {name} has not published its address in the mine yet"
        else:
            try:
                rc, why = _login(name, hub, ca_cert, user, secret_path, clientid)
            except CommandExecutionError as exc:
                ret["comment"] = f"hub {name}: {exc}"
                return ret
            last = why or last
        if rc == 0:
            return _accepted(ret, name, hub, user, asked)
        if rc in _REFUSED:
            if __opts__["test"]:
                ret.update(result=None, changes={"accepted": {"old": False, "new": True}},
                           comment=f"hub {name} would be asked to accept {user}")
                return ret
            if _may_ask(asked, asked_at, retry_ask):
                asked, asked_at = _ask_to_accept(name, publish_timeout), time.monotonic()
                if asked.startswith("refused"):
                    ret["comment"] = f"hub {name} refused {user}: {asked}"
                    return ret
                continue
        if __opts__["test"]:
            ret.update(result=None, comment=f"{last}: the run would wait for it")
            return ret
        if time.monotonic() > deadline:
            ret["comment"] = f"{last} (waited {wait} s)"
            return ret
        time.sleep(interval)
