"""
Swarm mode: the broker, or a cluster's hub and spokes, as a stack of swarm
services deployed from a manager through the Docker engine's API (the
Docker SDK the docker states use; ``docker.url`` in the minion's config
names a non-default engine).

The stack is the formula's own objects, each labelled with the stack's
namespace as ``docker stack deploy`` labels them: one overlay network,
per broker one service, one volume and its configs (mosquitto.conf, ACL)
and secrets (password file, server key and certificate, CA certificate, a
spoke's bridge file); with ``swarm:exporter_image``, per broker an
exporter service (the exporter program a config, its MQTT password a
secret). Every object is named from its content
(``_utils/mosquitto_swarm.py``), so :py:func:`plan` compares names and a
service's spec label and never needs a secret's value back from the
engine (it cannot give one). File contents are read from the manager's
root-only files while a call runs: no value is an argument or a return.

CLI Example:

.. code-block:: bash

    salt-call mosquitto_swarm.manager
    salt-call mosquitto_swarm.objects mosquitto
"""
import hashlib
import os
import time

from salt.exceptions import CommandExecutionError

try:
    import docker

    HAS_DOCKER = True
except ImportError:
    HAS_DOCKER = False

__virtualname__ = "mosquitto_swarm"


def __virtual__():
    if not HAS_DOCKER:
        return (False, "mosquitto_swarm needs the Docker SDK (salt-pip install docker)")
    if "mosquitto_swarm.service_spec" not in __utils__:
        return (False, "mosquitto_swarm needs the formula's _utils (run saltutil.sync_all)")
    return __virtualname__


def _u(name):
    return __utils__[f"mosquitto_swarm.{name}"]


def _client():
    url = __salt__["config.get"]("docker.url") or os.environ.get("DOCKER_HOST") or None
    if url:
        return docker.DockerClient(base_url=url, version="auto", timeout=120)
    return docker.from_env(version="auto", timeout=120)


def manager():
    """
    True when the engine is a swarm manager (services can be deployed).

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_swarm.manager
    """
    info = _client().info().get("Swarm") or {}
    return info.get("LocalNodeState") == "active" and bool(info.get("ControlAvailable"))


# ---------------------------------------------------------------- helpers
# (the network, configs, secrets and services already in the engine)


def _ns(stack):
    return {"label": f"{_u('labels')()['namespace']}={stack}"}


def _current(api, stack):
    """What the engine holds of the stack, by name."""
    return {
        "networks": {n["Name"]: n for n in api.networks(filters=_ns(stack))},
        "configs": {c["Spec"]["Name"]: c["ID"] for c in api.configs(filters=_ns(stack))},
        "secrets": {s["Spec"]["Name"]: s["ID"] for s in api.secrets(filters=_ns(stack))},
        "services": {s["Spec"]["Name"]: s for s in api.services(filters=_ns(stack))},
    }


def _read(path):
    """A file's bytes, None when it is not there (yet: test=True on a first
    run, before its state wrote it)."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def _objects(stack, broker_label, files, missing, pending):
    """target -> (object name, content) for one broker's configs or
    secrets; ``pending`` (test=True): path -> content the file would get
    (None: not known before it is written)."""
    out = {}
    for target, path in files.items():
        content = pending[path] if path in pending else _read(path)
        if content is None:
            # test=True: named ..._pending; a real run refuses (missing).
            missing.append(path)
        out[target] = (_u("object_name")(stack, broker_label, _u("kind_of")(target), content), content)
    return out


def _desired(stack, brokers, settings, pending=None):
    """The stack as it should be: per broker its service spec, and every
    config and secret (name -> content) the specs name."""
    configs, secrets, services, missing = {}, {}, [], []
    for broker_label, broker in brokers.items():
        conf = _objects(stack, broker_label, broker["configs"], missing, pending or {})
        secs = _objects(stack, broker_label, broker["secrets"], missing, pending or {})
        configs.update({name: content for name, content in conf.values()})
        secrets.update({name: content for name, content in secs.values()})
        spec = _u("service_spec")(stack, broker_label, broker, {t: n for t, (n, _) in conf.items()},
                                  {t: n for t, (n, _) in secs.items()}, settings)
        services.append(spec)
    # Each broker's exporter after every broker (it logs in to its broker).
    for broker_label, broker in brokers.items():
        if not broker.get("exporter"):
            continue
        conf = _objects(stack, broker_label, broker["exporter"]["configs"], missing, pending or {})
        secs = _objects(stack, broker_label, broker["exporter"]["secrets"], missing, pending or {})
        configs.update({name: content for name, content in conf.values()})
        secrets.update({name: content for name, content in secs.values()})
        services.append(_u("exporter_spec")(stack, broker_label, broker, {t: n for t, (n, _) in conf.items()},
                                            {t: n for t, (n, _) in secs.items()}, settings))
    return {"configs": configs, "secrets": secrets, "services": services, "missing": missing}


def _plan(current, desired, stack):
    """{what: {created/updated/removed: [names]}} to go from current to desired."""
    want = {s["Name"]: s for s in desired["services"]}
    have = current["services"]
    label = _u("labels")()["spec"]
    changes = {}

    def put(kind, verb, names):
        if names:
            changes.setdefault(kind, {})[verb] = sorted(names)

    put("network", "created", [] if _u("network_name")(stack) in current["networks"]
        else [_u("network_name")(stack)])
    for kind in ("configs", "secrets"):
        put(kind, "created", set(desired[kind]) - set(current[kind]))
        put(kind, "removed", set(current[kind]) - set(desired[kind]))
    put("services", "created", set(want) - set(have))
    put("services", "updated", [n for n in set(want) & set(have)
                                if (have[n]["Spec"].get("Labels") or {}).get(label) != want[n]["Labels"][label]])
    put("services", "removed", set(have) - set(want))
    return changes


def plan(stack, brokers, settings, pending=None):
    """
    What :py:func:`deploy` would change, as ``{"network"|"configs"|
    "secrets"|"services": {"created"|"updated"|"removed": [names]}}``
    (empty: the stack is as wanted), plus ``missing``: manager files not
    written yet. Arguments as for :py:func:`deploy`; ``pending``: path ->
    the content a file would get (from this run's test=True states; None:
    not known yet, the object is named ``..._pending``).

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_swarm.plan mosquitto brokers='{...}' settings='{...}'
    """
    api = _client().api
    desired = _desired(stack, brokers, settings, pending)
    changes = _plan(_current(api, stack), desired, stack)
    return {"changes": changes, "missing": desired["missing"]}


# ---------------------------------------------------------------- deploy


def _network(api, stack, subnet):
    name = _u("network_name")(stack)
    ipam = None
    if subnet:
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
    api.create_network(name, driver="overlay", attachable=True, scope="swarm", ipam=ipam,
                       labels={_u("labels")()["namespace"]: stack})


def _create_objects(api, stack, kind, wanted, have):
    """Configs or secrets not in the engine yet; returns name -> ID of all."""
    ids = dict(have)
    labels = {_u("labels")()["namespace"]: stack}
    for name, content in wanted.items():
        if name in ids:
            continue
        made = (api.create_config if kind == "configs" else api.create_secret)(name, content, labels=labels)
        ids[name] = made["ID"]
    return ids


def _with_ids(spec, config_ids, secret_ids):
    """The spec as the engine takes it: each config and secret by ID too."""
    container = spec["TaskTemplate"]["ContainerSpec"]
    for ref in container["Configs"]:
        ref["ConfigID"] = config_ids[ref["ConfigName"]]
    for ref in container["Secrets"]:
        ref["SecretID"] = secret_ids[ref["SecretName"]]
    return spec


def _post(api, path, spec, **params):
    """The engine's service API with the spec as it is (the SDK's helpers
    rebuild specs and know no newer fields, e.g. CapabilityDrop, Ulimits)."""
    res = api._post_json(api._url(path), data=spec, params=params)  # pylint: disable=protected-access
    return api._result(res, True)  # pylint: disable=protected-access


def _converged(api, name, spec_digest):
    """None while the service rolls; True once its one running task is of
    the wanted spec (swarm reports a task with a health check running only
    once healthy); a reason (str) when the engine gave up (rolled back,
    paused)."""
    status = api.inspect_service(name).get("UpdateStatus") or {}
    if status.get("State") in ("rollback_started", "rollback_completed", "paused", "rollback_paused"):
        return f"{name}: update {status['State']}: {status.get('Message', '')}"
    label = _u("labels")()["spec"]
    tasks = api.tasks(filters={"service": name, "desired-state": "running"})
    new = [t for t in tasks if (t["Spec"]["ContainerSpec"].get("Labels") or {}).get(label) == spec_digest]
    return True if len(tasks) == 1 and new and new[0]["Status"]["State"] == "running" else None


def _wait(api, name, spec_digest, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _converged(api, name, spec_digest)
        if state is True:
            return
        if isinstance(state, str):
            raise CommandExecutionError(state)
        time.sleep(0.5)
    raise CommandExecutionError(f"service {name} did not run its task within {timeout} s "
                                f"(docker service ps {name})")


def deploy(stack, brokers, settings, subnet="", wait=120):
    """
    Make the engine hold exactly the stack: the network, every config and
    secret the brokers' files give, one service per broker (created or
    rolled to the new objects one service at a time, each waited for up to
    ``wait`` seconds, the hub last), then old configs and secrets and
    services of brokers no longer wanted removed. Returns the changes
    (names only).

    brokers
        mosquitto_swarm layout: {label: {name, role, configs: {target:
        path}, secrets: {target: path}, publish}}
    settings
        image, uid, gid, nofile, healthcheck, data_dir, mqtt_port,
        mqtts_port, update_delay, restart_delay; with exporters:
        exporter_image, exporter_user, exporter_port, max_connections

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_swarm.deploy mosquitto brokers='{...}' settings='{...}'
    """
    api = _client().api
    desired = _desired(stack, brokers, settings)
    if desired["missing"]:
        raise CommandExecutionError(f"stack {stack}: files missing on the manager: {', '.join(desired['missing'])}")
    current = _current(api, stack)
    changes = _plan(current, desired, stack)
    if "network" in changes:
        _network(api, stack, subnet)
    config_ids = _create_objects(api, stack, "configs", desired["configs"], current["configs"])
    secret_ids = _create_objects(api, stack, "secrets", desired["secrets"], current["secrets"])
    services = changes.get("services", {})
    for spec in desired["services"]:
        name = spec["Name"]
        if name in services.get("created", []):
            _post(api, "/services/create", _with_ids(spec, config_ids, secret_ids))
        elif name in services.get("updated", []):
            version = current["services"][name]["Version"]["Index"]
            _post(api, "/services/{0}/update".replace("{0}", current["services"][name]["ID"]),
                  _with_ids(spec, config_ids, secret_ids), version=version)
        else:
            continue
        _wait(api, name, spec["Labels"][_u("labels")()["spec"]], wait)
    for name in services.get("removed", []):
        api.remove_service(name)
    _remove_unused(api, stack, changes)
    return changes


def _remove_unused(api, stack, changes):
    for name in changes.get("configs", {}).get("removed", []):
        api.remove_config(name)
    for name in changes.get("secrets", {}).get("removed", []):
        api.remove_secret(name)


# ---------------------------------------------------------------- remove


def objects(name):
    """
    The stack's objects in the engine, by kind (names only), volumes too.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_swarm.objects mosquitto
    """
    api = _client().api
    current = _current(api, name)
    out = {kind: sorted(current[kind]) for kind in ("services", "configs", "secrets", "networks")}
    out["volumes"] = sorted(v["Name"] for v in (api.volumes(filters=_ns(name)).get("Volumes") or []))
    return {kind: names for kind, names in out.items() if names}


def _gone(api, stack):
    """True once no task container of the stack is left on this node."""
    return not api.containers(all=True, filters=_ns(stack))


def _retry(call, arg, deadline):
    """An overlay network is still in use for a moment after its last task
    container went (its endpoints are freed after): ask again until the
    deadline."""
    while True:
        try:
            return call(arg)
        except docker.errors.APIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def remove(name, wait=120):
    """
    Remove the stack: its services (waiting for their containers to go),
    then its configs, secrets, network and volumes (the brokers' data).
    Returns what was removed.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_swarm.remove mosquitto
    """
    api = _client().api
    there = objects(name)
    for service in there.get("services", []):
        api.remove_service(service)
    deadline = time.monotonic() + wait
    while not _gone(api, name):
        if time.monotonic() > deadline:
            raise CommandExecutionError(f"stack {name}: task containers still there after {wait} s")
        time.sleep(0.5)
    for config in there.get("configs", []):
        api.remove_config(config)
    for secret in there.get("secrets", []):
        api.remove_secret(secret)
    for network in there.get("networks", []):
        _retry(api.remove_network, network, deadline)
    for volume in there.get("volumes", []):
        api.remove_volume(volume)
    return there


def content_hash(path):
    """
    The 10-hex SHA-256 prefix a file's config or secret name carries
    (None when missing): which object holds this file's current content.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_swarm.content_hash /etc/mosquitto/swarm/hub/mosquitto.conf
    """
    content = _read(path)
    return None if content is None else hashlib.sha256(content).hexdigest()[:10]


# ---------------------------------------------------------------- for the SLS files


def layout(data):
    """
    Each broker of the validated map ``data`` (mosquitto_map.data) with its
    files on the manager and their targets in its task: paths only.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_swarm.layout "$(salt-call --out=json mosquitto_map.data)"
    """
    return _u("layout")(data)


def broker_settings(data, name):
    """
    The settings mosquitto.conf.jinja renders broker ``name``'s task
    config from (no users, bridges or passwords).

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_swarm.broker_settings '{...}' mqtt1.example.com
    """
    return _u("broker_settings")(data, name, int(data["container"]["nofile"]))


def acl_users(data, broker):
    """
    user -> ACL rules for ``broker`` (an entry of :py:func:`layout`).

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_swarm.acl_users '{...}' '{"role": "hub"}'
    """
    return _u("acl_users")(data, broker)


def exporter_on(data):
    """
    Whether each broker of the validated map ``data`` gets an exporter
    service (exporter:enabled and swarm:exporter_image not '').

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_swarm.exporter_on '{...}'
    """
    return _u("exporter_on")(data)
