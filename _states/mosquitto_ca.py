"""
States for Mosquitto's CA and server certificate (thin wrappers around the
``mosquitto_ca`` execution module).

.. code-block:: yaml

    mosquitto-configure-tls-ca:
      mosquitto_ca.ca_present:
        - name: /etc/mosquitto/ca/ca.crt
        - key_path: /etc/mosquitto/ca/ca.key

    mosquitto-configure-tls-server-cert:
      mosquitto_ca.certificate_managed:
        - name: /etc/mosquitto/certs/server.crt
        - key_path: /etc/mosquitto/certs/server.key
        - ca_cert: /etc/mosquitto/ca/ca.crt
        - ca_key: /etc/mosquitto/ca/ca.key
        - common_name: mqtt.example.com
        - dns_names: [mqtt2.example.com]

With ``ca_server: <minion id>`` the certificate is signed by that minion
through ``publish.publish`` (the master's ``peer`` setting must allow
``mosquitto_ca.sign_csr``; ``mosquitto_ca.read_ca_cert`` too for the fallback
below). The CA minion signs with its own CA, for the minion id Salt gives the
call, within its signing policy; the CA cert is also kept at ``ca_cert``
locally. Its answer is data: ``{"certificate": pem}`` or ``{"error": why}``;
anything else (no answer, Salt's own error string, an older CA minion) fails
the state with what came back.

The CA minion puts its CA certificate in the Salt mine
(``ca_cert_published``, mine name ``mosquitto_ca_cert``); the other brokers
read it from there, an answer from the master alone, and ask the CA minion
itself (peer publish) only when the mine has no usable entry yet. A broker
whose certificate is current thus never waits for the CA minion.

``changes`` only ever hold certificate metadata, never key material.
"""
import os
import time

from salt.exceptions import CommandExecutionError

__virtualname__ = "mosquitto_ca"

# The mine entry under which a CA minion publishes its CA certificate.
MINE_NAME = "mosquitto_ca_cert"
SIGN = "mosquitto_ca.sign_csr"
READ_CA = "mosquitto_ca.read_ca_cert"

# Fields of cert_info shown in changes: enough to see what happened, nothing secret.
META = ("serial", "not_after", "dns_names", "ip_addresses", "key_type", "key_size", "fingerprint")


def __virtual__():
    if "mosquitto_ca.cert_info" not in __salt__:
        return (False, "the mosquitto_ca execution module is not available")
    if "mosquitto_names.new_key_path" not in __utils__:
        return (False, "mosquitto_ca states need the formula's _utils (run saltutil.sync_all)")
    return __virtualname__


def _ret(name):
    return {"name": name, "result": False, "changes": {}, "comment": ""}


def _meta(info):
    return {k: info[k] for k in META}


def _current_meta(path):
    """Metadata of the cert at path, or {} when there is none (or it is garbage)."""
    try:
        return _meta(__salt__["mosquitto_ca.cert_info"](path)) if os.path.exists(path) else {}
    except CommandExecutionError:
        return {}


def _publish(ca_server, fun, kwargs, timeout, retries=0, interval=3):
    """Call fun on the CA minion and return its answer as it came, or raise
    a clear error when none came.

    No answer (CA minion busy, restarting) is asked again ``retries`` times;
    an answer, even a refusal, is final: asking again would only be refused again.
    """
    if "publish.publish" not in __salt__:
        raise CommandExecutionError(
            f"ca_server {ca_server} needs publish.publish: run on a minion connected to a master"
        )
    for attempt in range(int(retries) + 1):
        if attempt:
            time.sleep(interval)
        # A {"__kwarg__": True} dict travels as keyword arguments, untouched by
        # the YAML parsing plain string arguments get on the way.
        answer = __salt__["publish.publish"](ca_server, fun, arg=[{"__kwarg__": True, **kwargs}], timeout=timeout)
        if isinstance(answer, dict) and ca_server in answer:
            break
    else:
        raise CommandExecutionError(
            f"CA minion {ca_server} did not answer {fun}: check peer config on the master "
            f"(peer must allow {fun} for this minion) and that {ca_server} is up"
        )
    return answer[ca_server]


def _signed_cert(ca_server, answer):
    """The certificate in sign_csr's answer, or an error saying what came instead."""
    if isinstance(answer, dict) and isinstance(answer.get("certificate"), str):
        return answer["certificate"]
    if isinstance(answer, dict) and ("error" in answer or "errors" in answer):
        errors = [answer["error"]] if "error" in answer else list(answer["errors"] or [])
        raise CommandExecutionError(f"CA minion {ca_server} refused {SIGN}: {'; '.join(map(str, errors))[:2000]}")
    # Salt's own "Passed invalid arguments ..." or "ERROR: ..." string, a
    # traceback, or the bare PEM string of a CA minion older than this formula.
    raise CommandExecutionError(
        f"CA minion {ca_server} gave no certificate for {SIGN} (is the formula's mosquitto_ca synced there? "
        f"saltutil.sync_all), it answered: {str(answer)[:1000]}"
    )


def _ca_pem(value):
    """value when it is the PEM text of a CA certificate, else None."""
    if not isinstance(value, str):
        return None
    try:
        return value if __salt__["mosquitto_ca.cert_info"](pem=value)["is_ca"] else None
    except CommandExecutionError:
        return None


def _mined_ca_cert(minion, fresh=False):
    """The CA certificate ``minion`` put in the Salt mine, or None.

    Asked once per state run: ca_cert_present and certificate_managed both
    need it, and each mine.get is a master round trip (0.1-0.2 s on a busy
    3-host fleet). The run's first answer holds for the whole run (both
    states then check against the same certificate); a missing entry is
    asked again. ``fresh`` asks the master regardless.
    """
    if "mine.get" not in __salt__:
        return None
    cache = __context__.setdefault("mosquitto_ca.mined_ca_cert", {})
    if not fresh and minion in cache:
        return cache[minion]
    mined = __salt__["mine.get"](minion, MINE_NAME)
    pem = _ca_pem(mined.get(minion) if isinstance(mined, dict) else None)
    if pem:
        cache[minion] = pem
    return pem


def _ca_cert_of(ca_server, timeout, retries=0, interval=3):
    """The CA minion's CA certificate: from the mine (the master answers; the
    CA minion may be busy), else by asking the CA minion (peer publish)."""
    mined = _mined_ca_cert(ca_server)
    if mined:
        return mined
    # The CA minion answers with its own CA certificate; no path is sent.
    answer = _publish(ca_server, READ_CA, {}, timeout, retries=retries, interval=interval)
    pem = _ca_pem(answer)
    if not pem:
        raise CommandExecutionError(f"CA minion {ca_server} gave no CA certificate for {READ_CA}: {str(answer)[:1000]}")
    return pem


def _same_cert(path, pem):
    """True when path holds exactly the certificate in pem (formatting aside)."""
    if not os.path.exists(path):
        return False
    try:
        return __salt__["mosquitto_ca.cert_info"](path)["fingerprint"] == _pem_fingerprint(pem)
    except CommandExecutionError:
        return False


def _pem_fingerprint(pem):
    return __salt__["mosquitto_ca.cert_info"](pem=pem)["fingerprint"]


def ca_present(name, key_path, common_name="Mosquitto CA", days_valid=3650, key_type="ec", key_size=2048, warn_days=90):
    """
    A CA certificate at ``name`` with its key at ``key_path``. Created when
    neither exists; never replaced. Half a CA (one file missing) or a key that
    does not belong to the cert fails the state: an operator must decide.

    warn_days
        Warn (never replace) when the CA expires within this many days.
    """
    ret = _ret(name)
    cert_exists, key_exists = os.path.exists(name), os.path.exists(key_path)

    if not cert_exists and not key_exists:
        spec = {"common_name": common_name, "days_valid": days_valid, "key_type": key_type, "key_size": key_size}
        return _create_ca(ret, name, key_path, spec)

    if cert_exists != key_exists:
        present, missing = (name, key_path) if cert_exists else (key_path, name)
        ret["comment"] = (
            f"CA is incomplete: {present} exists but {missing} does not. Not creating a new CA over it "
            "(clients trust the old one): restore the missing file, or remove both deliberately."
        )
        return ret

    try:
        days, warnings = _existing_ca(name, key_path, common_name, warn_days)
    except CommandExecutionError as exc:
        ret["comment"] = str(exc)
        return ret
    try:
        perms = __salt__["mosquitto_ca.ensure_permissions"](
            key_path, user="root", group="root", mode="0600", test=__opts__["test"])
    except CommandExecutionError as exc:
        ret["comment"] = f"cannot check permissions of CA key {key_path}: {exc}"
        return ret
    comment = f"CA {name} present, valid for {days} more days"
    ret.update(result=True, comment="; ".join([comment] + warnings))
    if warnings:
        ret["warnings"] = warnings
    if perms:
        ret["changes"] = {"key_permissions": perms}
        if __opts__["test"]:
            ret.update(result=None, comment=ret["comment"] + f"; permissions of {key_path} would be fixed")
        else:
            ret["comment"] += f"; permissions of {key_path} fixed"
    return ret


def _create_ca(ret, name, key_path, spec):
    """ca_present when neither file exists: a new CA (planned under test=True)."""
    if __opts__["test"]:
        planned = {k: spec[k] for k in ("common_name", "key_type", "days_valid")}
        ret.update(result=None, comment=f"CA {name} would be created", changes={"old": {}, "new": planned})
        return ret
    try:
        info = __salt__["mosquitto_ca.create_ca"](name, key_path, **spec)
    except CommandExecutionError as exc:
        ret["comment"] = f"CA {name} not created: {exc}"
        return ret
    ret.update(result=True, comment=f"CA {name} created", changes={"old": {}, "new": _meta(info)})
    return ret


def _existing_ca(name, key_path, common_name, warn_days):
    """(days remaining, warnings) of the CA at name/key_path; raises with the
    state's comment when it is unusable (never touched then)."""
    try:
        info = __salt__["mosquitto_ca.cert_info"](name)
        if not __salt__["mosquitto_ca.key_fits"](key_path):
            raise CommandExecutionError(f"CA key {key_path} is no readable unencrypted PEM key")
        matches = __salt__["mosquitto_ca.key_fits"](key_path, cert_path=name)
    except CommandExecutionError as exc:
        raise CommandExecutionError(f"CA {name} unusable, not touching it: {exc}") from exc
    if not matches:
        raise CommandExecutionError(f"CA key {key_path} does not belong to CA certificate {name}: not touching either")
    if not info["is_ca"]:
        raise CommandExecutionError(f"{name} is not a CA certificate: not touching it")
    days = info["days_remaining"]
    if days < 0:
        raise CommandExecutionError(
            f"CA {name} expired on {info['not_after']}: clients reject its certificates. "
            "Roll over the CA by hand (it is never replaced automatically)."
        )
    warnings = []
    if info["subject_cn"] != common_name:
        warnings.append(f"existing CA is named {info['subject_cn']!r}, not {common_name!r}; it is kept as it is")
    if days < int(warn_days):
        warnings.append(f"CA {name} expires in {days} days: plan a rollover (it is never replaced automatically)")
    return days, warnings


def certificate_managed(
    name,
    key_path,
    ca_cert,
    ca_key=None,
    common_name=None,
    dns_names=None,
    ip_addresses=None,
    days_valid=825,
    renew_days=30,
    key_type="ec",
    key_size=2048,
    user="root",
    group="mosquitto",
    mode="0640",
    ca_server=None,
    publish_timeout=30,
    publish_retries=0,
    publish_interval=3,
):
    """
    A server certificate at ``name`` (key at ``key_path``) signed by the CA,
    reissued only when ``mosquitto_ca.needs_reissue`` says so: missing files,
    key mismatch, SANs or key type changed, another CA, or within
    ``renew_days`` of expiry. The key is kept across reissues when it still fits.

    ca_server
        Minion id of the CA minion: sign there through publish.publish, so the
        CA key never leaves it. The CA cert is fetched to ``ca_cert`` too.
        Only the CSR, names, validity and common name are sent: the CA minion
        signs with its own CA under its own policy (``ca_key`` is not used).
        A refusal fails the state with the CA minion's reason and leaves the
        key, the certificate and the CA certificate here as they were.

    publish_retries, publish_interval
        Ask the CA minion again this many times, this many seconds apart,
        when it does not answer (never when it refuses).
    """
    ret = _ret(name)
    want = {
        "common_name": common_name,
        "dns_names": dns_names or [],
        "ip_addresses": ip_addresses or [],
        "days_valid": days_valid,
        "key_type": key_type,
        "key_size": key_size,
    }
    owner = {"user": user, "group": group, "mode": mode}
    publish = {"timeout": publish_timeout, "retries": publish_retries, "interval": publish_interval}
    try:
        if not common_name:
            raise CommandExecutionError("common_name is required")
        if not ca_key and not ca_server:
            raise CommandExecutionError("ca_key is required (the CA key path) without ca_server")
        # An unknown user or group fails the state now, under test=True too.
        __utils__["mosquitto_files.owner_ids"](user, group)
        plan = _plan(name, key_path=key_path, ca_cert=ca_cert, ca_server=ca_server, want=want, owner=owner,
                     publish=publish, renew_days=renew_days)
    except CommandExecutionError as exc:
        ret["comment"] = f"certificate {name}: {exc}"
        return ret

    if not plan["reissue"] and not plan["perms"] and not plan["ca_update"]:
        info = __salt__["mosquitto_ca.cert_info"](name)
        ret.update(result=True, comment=f"certificate {name} is up to date ({info['days_remaining']} days remaining)")
        return ret
    if __opts__["test"]:
        ret.update(result=None, **_planned(name, key_path=key_path, ca_cert=ca_cert, ca_server=ca_server, plan=plan,
                                          want=want))
        return ret

    verb = "reissued" if plan["old"] else "issued"
    try:
        changes, comments = _apply(name, key_path=key_path, ca_cert=ca_cert, ca_key=ca_key, ca_server=ca_server,
                                   want=want, owner=owner, publish=publish, plan=plan)
    except CommandExecutionError as exc:
        ret["comment"] = f"certificate {name} not {verb}: {exc}"
        return ret
    ret.update(result=True, changes=changes, comment="; ".join(comments))
    return ret


def _apply(name, *, key_path, ca_cert, ca_key, ca_server, want, owner, publish, plan):
    """Carry out certificate_managed's plan: (changes, comments)."""
    changes, comments = {}, []
    if plan["reissue"]:
        if ca_server:
            # Signed and installed first: a refusal leaves the CA cert here as it was too.
            info, signed_with = _issue_remote(name, key_path=key_path, ca_pem=plan["ca_pem"], ca_server=ca_server,
                                              want=want, owner=owner, publish=publish)
            if signed_with != plan["ca_pem"]:  # the mine was behind the CA minion: its CA goes here
                plan["ca_pem"], plan["ca_update"] = signed_with, _ca_update(ca_cert, signed_with)
        else:
            info = __salt__["mosquitto_ca.issue_cert"](
                name, key_path, ca_cert_path=ca_cert, ca_key_path=ca_key, common_name=want["common_name"],
                dns_names=want["dns_names"], ip_addresses=want["ip_addresses"], days_valid=want["days_valid"],
                key_type=want["key_type"], key_size=want["key_size"], key_user=owner["user"],
                key_group=owner["group"], key_mode=owner["mode"],
            )
        changes.update(old=plan["old"], new=_meta(info))
        comments.append(f"certificate {name} {'reissued' if plan['old'] else 'issued'}: {'; '.join(plan['reasons'])}")
    elif plan["perms"]:
        __salt__["mosquitto_ca.ensure_permissions"](key_path, **owner)
        changes["key_permissions"] = plan["perms"]
        comments.append(f"permissions of {key_path} fixed")
    if plan["ca_update"]:
        __salt__["mosquitto_ca.install_cert"](ca_cert, plan["ca_pem"])
        changes["ca_cert"] = plan["ca_update"]
        comments.append(f"CA certificate {ca_cert} updated from {ca_server}")
    return changes, comments


def _ca_update(ca_cert, ca_pem):
    """{old, new} when the CA certificate at ca_cert is not ca_pem, else {}."""
    if _same_cert(ca_cert, ca_pem):
        return {}
    return {"old": _current_meta(ca_cert), "new": {"fingerprint": _pem_fingerprint(ca_pem)}}


def _plan(name, *, key_path, ca_cert, ca_server, want, owner, publish, renew_days):
    """What certificate_managed has to do: reissue (and why), fix key
    permissions, update the CA certificate; and the old certificate's metadata."""
    ca_pem, ca_update = None, {}
    if ca_server:
        ca_pem = _ca_cert_of(ca_server, **publish)
        ca_update = _ca_update(ca_cert, ca_pem)
    check = __salt__["mosquitto_ca.needs_reissue"](
        name, key_path, ca_cert_path=ca_cert, ca_cert_pem=ca_pem, dns_names=want["dns_names"],
        ip_addresses=want["ip_addresses"], renew_days=renew_days, key_type=want["key_type"],
        key_size=want["key_size"], common_name=want["common_name"],
    )
    perms = {}
    if not check["reissue"]:
        perms = __salt__["mosquitto_ca.ensure_permissions"](key_path, test=True, **owner)
    return {"reissue": check["reissue"], "reasons": check["reasons"], "perms": perms,
            "ca_pem": ca_pem, "ca_update": ca_update, "old": _current_meta(name)}


def _planned(name, *, key_path, ca_cert, ca_server, want, plan):
    """comment and changes of certificate_managed under test=True."""
    changes, verb = {}, "reissued" if plan["old"] else "issued"
    if plan["reissue"]:
        new = {k: want[k] for k in ("dns_names", "ip_addresses", "key_type", "days_valid")}
        changes = {"old": plan["old"], "new": new}
        comment = f"certificate {name} would be {verb}: {'; '.join(plan['reasons'])}"
    else:
        comment = f"certificate {name} is up to date"
    if plan["perms"]:
        changes["key_permissions"] = plan["perms"]
        comment += f"; permissions of {key_path} would be fixed"
    if plan["ca_update"]:
        changes["ca_cert"] = plan["ca_update"]
        comment += f"; CA certificate {ca_cert} would be updated from {ca_server}"
    return {"comment": comment, "changes": changes}


def _ca_cert_that_signed(cert_pem, ca_pem, ca_server, *, retries, interval):
    """The CA certificate that verifies ``cert_pem``: ``ca_pem``, else the
    mine's entry for ``ca_server`` asked again.

    The run's mine answer can be older than the CA that signed: a CA minion
    made anew under an id the master already knew still has its old CA
    certificate in the mine until its own run publishes the new one, which
    it does right after making it. Asked again ``retries`` times, ``interval``
    seconds apart; when nothing verifies, ``ca_pem`` is returned and
    install_cert refuses the certificate, naming it.
    """
    if _signed_by(cert_pem, ca_pem):
        return ca_pem
    for attempt in range(int(retries) + 1):
        if attempt:
            time.sleep(interval)
        mined = _mined_ca_cert(ca_server, fresh=True)
        if mined and _signed_by(cert_pem, mined):
            return mined
    return ca_pem


def _signed_by(cert_pem, ca_pem):
    return __salt__["mosquitto_ca.verify_chain"](cert_pem=cert_pem, ca_cert_pem=ca_pem, dates=False)


def _issue_remote(name, *, key_path, ca_pem, ca_server, want, owner, publish):
    """CSR from our key, signature from the CA minion, checked before install.

    A key that still fits is kept; otherwise a new one waits beside it
    (mosquitto_names.new_key_path) and replaces it only once its certificate
    is signed, so a refused or failed request changes nothing here.
    """
    new_key = None
    if not __salt__["mosquitto_ca.key_fits"](key_path, key_type=want["key_type"], key_size=want["key_size"]):
        new_key = __utils__["mosquitto_names.new_key_path"](key_path)
        __salt__["mosquitto_ca.ensure_key"](
            new_key, key_type=want["key_type"], key_size=want["key_size"], reuse_key=False, **owner)
    try:
        csr = __salt__["mosquitto_ca.create_csr"](
            new_key or key_path, want["common_name"], dns_names=want["dns_names"], ip_addresses=want["ip_addresses"])
        # Only what we ask for: the CA minion signs with its own CA and
        # decides by its own policy, for the minion id Salt tells it.
        request = {"csr_pem": csr, "days_valid": int(want["days_valid"]),
                   **{k: want[k] for k in ("dns_names", "ip_addresses", "common_name")}}
        pem = _signed_cert(ca_server, _publish(ca_server, SIGN, request, **publish))
        ca_pem = _ca_cert_that_signed(pem, ca_pem, ca_server, retries=publish["retries"], interval=publish["interval"])
        info = __salt__["mosquitto_ca.install_cert"](
            name, pem, key_path=key_path, new_key_path=new_key, ca_cert_pem=ca_pem)
    except BaseException:
        if new_key:
            __salt__["mosquitto_ca.discard_new_key"](new_key)
        raise
    if not new_key:
        __salt__["mosquitto_ca.ensure_permissions"](key_path, **owner)
    return info, ca_pem


def ca_cert_present(name, ca_server, publish_timeout=30):
    """
    The CA certificate of CA minion ``ca_server`` at ``name`` (0644), for
    hosts that only need to trust the CA (bridges, clients). The CA minion
    always hands out its own CA certificate, from its own map.
    """
    ret = _ret(name)
    try:
        pem = _ca_cert_of(ca_server, publish_timeout)
        if _same_cert(name, pem):
            ret.update(result=True, comment=f"CA certificate {name} matches the one on {ca_server}")
            return ret
        old = _current_meta(name)
        if __opts__["test"]:
            new = {"fingerprint": _pem_fingerprint(pem)}
            ret.update(result=None, comment=f"CA certificate {name} would be fetched from {ca_server}",
                       changes={"old": old, "new": new})
            return ret
        info = __salt__["mosquitto_ca.install_cert"](name, pem)
    except CommandExecutionError as exc:
        ret["comment"] = f"CA certificate {name}: {exc}"
        return ret
    ret.update(result=True, comment=f"CA certificate {name} fetched from {ca_server}",
               changes={"old": old, "new": _meta(info)})
    return ret


def ca_cert_published(name):
    """
    The CA certificate at ``name`` in the Salt mine (as ``mosquitto_ca_cert``),
    so brokers with ``ca_server: <this minion>`` can read it from the master
    without asking this minion. Sent only when the mine lacks it or holds
    another certificate (a CA rolled over by hand).
    """
    ret = _ret(name)
    me = __opts__["id"]
    try:
        if not os.path.exists(name) and __opts__["test"]:
            ret.update(result=None, comment=f"CA certificate {name} would be put in the mine once it exists",
                       changes={"mine": {"old": None, "new": MINE_NAME}})
            return ret
        want = _pem_fingerprint(__salt__["mosquitto_ca.read_ca_cert"](name))
        mined = _mined_ca_cert(me, fresh=True)
        have = _pem_fingerprint(mined) if mined else None
        if have == want:
            ret.update(result=True, comment=f"CA certificate {name} is in the mine as {MINE_NAME}")
            return ret
        changes = {"mine": {"old": have, "new": want}}
        if __opts__["test"]:
            ret.update(result=None, comment=f"CA certificate {name} would be put in the mine as {MINE_NAME}",
                       changes=changes)
            return ret
        __context__.get("mosquitto_ca.mined_ca_cert", {}).pop(me, None)
        if not __salt__["mine.send"](MINE_NAME, mine_function="mosquitto_ca.read_ca_cert", ca_cert_path=name):
            raise CommandExecutionError("mine.send failed (see the minion log)")
    except CommandExecutionError as exc:
        ret["comment"] = f"CA certificate {name} not put in the mine: {exc}"
        return ret
    ret.update(result=True, comment=f"CA certificate {name} put in the mine as {MINE_NAME}", changes=changes)
    return ret
