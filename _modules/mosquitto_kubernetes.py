"""
Kubernetes manifests from the formula's validated settings (issue #23).

:py:func:`plan` turns ``mosquitto_map.data`` into what ``mosquitto.kubernetes``
writes into a kustomize directory: per role (``broker`` alone, or the
cluster's ``hub`` and ``spoke``) a StatefulSet with a volume claim, a
headless Service, a Service for the TLS port, the exporter as a sidecar with
its own Service (and a ServiceMonitor when asked), a PodDisruptionBudget and
a NetworkPolicy; the kustomization whose generators turn the files the
states write (mosquitto.conf, ACL, password file, certificates, bridge
files) into ConfigMaps and Secrets. Everything returned here is free of
secrets: it is state arguments (file contents), so users come back as
pillar keys and secret files as paths the states fill while they run.

The plain listener stays on the pod's loopback (the exporter sidecar shares
the pod's network namespace): it is in no Service and no containerPort.
"""

import copy

import yaml

__virtualname__ = "mosquitto_kubernetes"

# Where the pod sees its files (fixed: the manifests and mosquitto.conf
# agree on them, the operator has no reason to move them).
POD_CONFIG = "/etc/mosquitto/config"
POD_SECRETS = "/etc/mosquitto/secrets"
POD_DATA = "/var/lib/mosquitto/"
POD_EXPORTER = "/opt/mosquitto-exporter"
POD_EXPORTER_SECRETS = "/etc/mosquitto-exporter"
BRIDGE_SECRET = "secrets/cluster-bridge.secret"
LABEL = "app.kubernetes.io"


def __virtual__():
    return __virtualname__


def _roles(mosquitto):
    """[(role, resource name, replicas)]: one broker, or the hub and spokes."""
    k8s = mosquitto["kubernetes"]
    if (mosquitto.get("cluster") or {}).get("hub"):
        return [("hub", f"{k8s['name']}-hub", 1), ("spoke", f"{k8s['name']}-spoke", k8s["spokes"])]
    return [("broker", k8s["name"], 1)]


def _service_names(k8s, service):
    """Every name a pod in the namespace or the cluster resolves ``service`` by."""
    ns, domain = k8s["namespace"], k8s["cluster_domain"]
    return [service, f"{service}.{ns}", f"{service}.{ns}.svc", f"{service}.{ns}.svc.{domain}"]


def service_fqdn(k8s, service):
    """The Service's full DNS name (what bridges dial and certificates hold)."""
    return _service_names(k8s, service)[-1]


def _labels(k8s, role):
    return {f"{LABEL}/name": "mosquitto", f"{LABEL}/instance": k8s["name"],
            f"{LABEL}/component": role, f"{LABEL}/managed-by": "salt"}


def _selector(k8s, role):
    return {f"{LABEL}/name": "mosquitto", f"{LABEL}/instance": k8s["name"], f"{LABEL}/component": role}


def _bridge_user(k8s):
    return f"bridge.{k8s['name']}-spoke"


# ------------------------------------------------------------------ files

def _pod_settings(mosquitto):
    """The dict mosquitto.conf.jinja renders for a pod: the validated
    settings without users and bridges, with the pod's paths. ``container``
    on: logs go to stderr and no drop-in directory is included."""
    settings = copy.deepcopy(mosquitto)
    for key in ("users", "bridges", "kubernetes"):
        settings.pop(key, None)
    settings["paths"].update({
        "conf": f"{POD_CONFIG}/mosquitto.conf", "acl": f"{POD_CONFIG}/acl",
        "passwd": f"{POD_SECRETS}/passwd", "bridges_dir": POD_SECRETS,
        "pid_file": "", "log_file": "", "include_dir": "",
    })
    settings["tls"].update({"ca_cert": f"{POD_SECRETS}/ca.crt", "cert": f"{POD_SECRETS}/server.crt",
                            "key": f"{POD_SECRETS}/server.key"})
    settings["persistence"]["location"] = POD_DATA
    # Never reachable from outside the pod, whatever the hosts' pillar says.
    settings["listeners"]["mqtt"]["bind_address"] = "127.0.0.1"
    settings["listeners"]["mqtts"]["bind_address"] = ""
    settings["container"] = dict(settings["container"], enabled=True)
    return settings


def _users(mosquitto, role, directory):
    """The password file's users as the passwd state takes them: pillar keys
    and secret files, never values."""
    users = {}
    for name, spec in mosquitto["users"].items():
        field = "password" if "password" in spec else "password_hash"
        users[name] = {f"{field}_pillar": f"mosquitto:users:{name}:{field}"}
    if role == "hub":
        users[_bridge_user(mosquitto["kubernetes"])] = {"password_file": f"{directory}/{BRIDGE_SECRET}"}
    if mosquitto["exporter"]["enabled"]:
        users[mosquitto["exporter"]["user"]] = {
            "password_file": f"{directory}/secrets/{role}/exporter-password", "generate_password": True}
    return users


def _acl_users(mosquitto, role):
    acl = {name: spec["acl"] for name, spec in mosquitto["users"].items()}
    if role == "hub":
        # Each spoke pod's bridge (client id <pod name>.cluster) may carry
        # the cluster topics and write its connection state.
        acl[_bridge_user(mosquitto["kubernetes"])] = mosquitto["cluster"]["acl"] + [
            "write $SYS/broker/connection/+/state"]
    if mosquitto["exporter"]["enabled"]:
        acl[mosquitto["exporter"]["user"]] = ["read $SYS/#"]
    return acl


def _bridges(mosquitto, role, directory):
    """Bridge settings for the bridges state: pillar bridges go on the
    broker or the hub, the cluster's own bridge on every spoke (passwords
    as references, never values)."""
    if role == "spoke":
        cluster, k8s = mosquitto["cluster"], mosquitto["kubernetes"]
        hub = service_fqdn(k8s, f"{k8s['name']}-hub")
        # No remote_clientid: mosquitto's default <hostname>.cluster is the
        # pod's name there, unique per spoke of the StatefulSet.
        return {"cluster": {
            "address": [f"{hub}:{mosquitto['ports']['mqtts']}"], "topics": list(cluster["topic_lines"]),
            "remote_username": _bridge_user(k8s), "remote_password_file": f"{directory}/{BRIDGE_SECRET}",
            "tls": True, "cleansession": False, "notifications": True,
            "keepalive_interval": int(cluster["keepalive_interval"]),
            "options": {"try_private": True, "restart_timeout": cluster["restart_timeout"]}}}
    bridges = {}
    for name, bridge in mosquitto["bridges"].items():
        spec = {k: v for k, v in bridge.items() if k != "remote_password"}
        if "remote_password" in bridge:
            spec["remote_password_pillar"] = f"mosquitto:bridges:{name}:remote_password"
        bridges[name] = spec
    return bridges


def _dns_names(mosquitto, resource):
    """The server certificate's names: the broker's domain, tls:dns_names
    and every name of its Services."""
    k8s = mosquitto["kubernetes"]
    names = [mosquitto["domain"], *mosquitto["tls"]["dns_names"]]
    names += _service_names(k8s, resource) + _service_names(k8s, f"{resource}-headless")
    return list(dict.fromkeys(n for n in names if n))


# -------------------------------------------------------------- manifests

def _probe(command, period, failures):
    return {"exec": {"command": ["sh", "-c", command]}, "periodSeconds": period,
            "timeoutSeconds": 5, "failureThreshold": failures}


def probe_commands(mosquitto):
    """(liveness, readiness) shell commands: an anonymous MQTT CONNECT is
    refused "not authorised", which mosquitto_sub reports as exit code 5
    (no answer at all is 1), so no credential is needed. Liveness asks the
    plain listener on loopback, readiness the TLS listener with the CA."""
    ports = mosquitto["ports"]
    live = (f"mosquitto_sub -h 127.0.0.1 -p {ports['mqtt']} -t health -C 1 -W 3 -i probe-live"
            " >/dev/null 2>&1; [ $? -eq 5 ]")
    ready = (f"mosquitto_sub -h 127.0.0.1 -p {ports['mqtts']} --cafile {POD_SECRETS}/ca.crt --insecure"
             " -t health -C 1 -W 3 -i probe-ready >/dev/null 2>&1; [ $? -eq 5 ]")
    return live, ready


def _container_security(k8s):
    return {"runAsNonRoot": True, "runAsUser": k8s["uid"], "runAsGroup": k8s["gid"],
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def _broker_container(mosquitto):
    k8s = mosquitto["kubernetes"]
    live, ready = probe_commands(mosquitto)
    return {
        "name": "mosquitto", "image": k8s["image"],
        "command": ["mosquitto", "-c", f"{POD_CONFIG}/mosquitto.conf"],
        # Only the TLS port: the plain listener is the pod's loopback.
        "ports": [{"name": "mqtts", "containerPort": mosquitto["ports"]["mqtts"], "protocol": "TCP"}],
        "livenessProbe": dict(_probe(live, 20, 3), initialDelaySeconds=5),
        "readinessProbe": _probe(ready, 10, 3),
        "resources": copy.deepcopy(k8s["resources"]["broker"]),
        "securityContext": _container_security(k8s),
        "volumeMounts": [
            {"name": "config", "mountPath": POD_CONFIG, "readOnly": True},
            {"name": "secrets", "mountPath": POD_SECRETS, "readOnly": True},
            {"name": "data", "mountPath": POD_DATA.rstrip("/")},
        ],
    }


def _exporter_container(mosquitto):
    k8s, ports, exporter = mosquitto["kubernetes"], mosquitto["ports"], mosquitto["exporter"]
    env = {
        "BROKER_ENDPOINT": f"tcp://127.0.0.1:{ports['mqtt']}",
        "BIND_ADDRESS": f"0.0.0.0:{ports['exporter']}",
        "MQTT_USER": exporter["user"],
        "MQTT_PASS_FILE": f"{POD_EXPORTER_SECRETS}/password",
        "SERVER_CERT_FILE": f"{POD_EXPORTER_SECRETS}/server.crt",
        "CA_CERT_FILE": f"{POD_EXPORTER_SECRETS}/ca.crt",
        "MAX_CONNECTIONS": str(mosquitto["listeners"]["mqtts"]["max_connections"]),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    http = {"httpGet": {"path": "/metrics", "port": "metrics"}, "periodSeconds": 20, "timeoutSeconds": 5}
    return {
        "name": "exporter", "image": k8s["exporter_image"],
        "command": ["python3", f"{POD_EXPORTER}/mosquitto_exporter.py"],
        "env": [{"name": key, "value": value} for key, value in env.items()],
        "ports": [{"name": "metrics", "containerPort": ports["exporter"], "protocol": "TCP"}],
        "livenessProbe": http, "readinessProbe": dict(http, periodSeconds=10),
        "resources": copy.deepcopy(k8s["resources"]["exporter"]),
        "securityContext": _container_security(k8s),
        "volumeMounts": [
            {"name": "exporter-program", "mountPath": POD_EXPORTER, "readOnly": True},
            {"name": "exporter-secrets", "mountPath": POD_EXPORTER_SECRETS, "readOnly": True},
            {"name": "exporter-tmp", "mountPath": "/tmp"},
        ],
    }


def _volumes(mosquitto, resource):
    volumes = [
        {"name": "config", "configMap": {"name": f"{resource}-config", "defaultMode": 0o444}},
        {"name": "secrets", "secret": {"secretName": f"{resource}-broker", "defaultMode": 0o440}},
    ]
    if mosquitto["exporter"]["enabled"]:
        name = mosquitto["kubernetes"]["name"]
        volumes += [
            {"name": "exporter-program", "configMap": {"name": f"{name}-exporter-program", "defaultMode": 0o444}},
            {"name": "exporter-secrets", "secret": {"secretName": f"{resource}-exporter", "defaultMode": 0o440}},
            {"name": "exporter-tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        ]
    return volumes


def _claim(k8s):
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": k8s["storage"]}}}
    if k8s["storage_class"]:
        spec["storageClassName"] = k8s["storage_class"]
    return {"metadata": {"name": "data"}, "spec": spec}


def _statefulset(mosquitto, role, resource, replicas):
    k8s = mosquitto["kubernetes"]
    containers = [_broker_container(mosquitto)]
    if mosquitto["exporter"]["enabled"]:
        containers.append(_exporter_container(mosquitto))
    pod = {
        "automountServiceAccountToken": False,
        # No service environment variables in the broker's environment.
        "enableServiceLinks": False,
        # The broker saves its database on SIGTERM.
        "terminationGracePeriodSeconds": 30,
        "securityContext": {"runAsNonRoot": True, "runAsUser": k8s["uid"], "runAsGroup": k8s["gid"],
                            "fsGroup": k8s["gid"], "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": containers,
        "volumes": _volumes(mosquitto, resource),
    }
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": resource, "labels": _labels(k8s, role)},
        "spec": {
            "serviceName": f"{resource}-headless", "replicas": replicas,
            # One pod at a time, each on its own claim: two brokers never
            # share a data volume.
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": _selector(k8s, role)},
            "template": {"metadata": {"labels": _labels(k8s, role)}, "spec": pod},
            "volumeClaimTemplates": [_claim(k8s)],
        },
    }


def _service(k8s, role, name, ports, **spec):
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "labels": _labels(k8s, role)},
            "spec": dict(spec, selector=_selector(k8s, role), ports=ports)}


def _services(mosquitto, role, resource):
    k8s, ports = mosquitto["kubernetes"], mosquitto["ports"]
    tls = [{"name": "mqtts", "port": ports["mqtts"], "targetPort": "mqtts", "protocol": "TCP"}]
    out = [
        _service(k8s, role, f"{resource}-headless", tls, clusterIP="None", publishNotReadyAddresses=True),
        _service(k8s, role, resource, tls, type=k8s["service_type"]),
    ]
    if mosquitto["exporter"]["enabled"]:
        metrics = [{"name": "metrics", "port": ports["exporter"], "targetPort": "metrics", "protocol": "TCP"}]
        service = _service(k8s, role, f"{resource}-metrics", metrics)
        # A label of its own, for the ServiceMonitor's selector.
        service["metadata"]["labels"][f"{LABEL}/part"] = "metrics"
        out.append(service)
    return out


def _disruption_budget(k8s, role, resource):
    # One broker of a role down at a time (a drain waits for the next);
    # never minAvailable 1 on a single replica: no node could be drained.
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": resource, "labels": _labels(k8s, role)},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(k8s, role)}}}


def _network_policy(mosquitto, role, resource):
    """In: TLS from anywhere, metrics from the monitoring namespace only,
    nothing else (the plain listener is loopback anyway)."""
    k8s, ports = mosquitto["kubernetes"], mosquitto["ports"]
    ingress = [{"ports": [{"protocol": "TCP", "port": ports["mqtts"]}]}]
    if mosquitto["exporter"]["enabled"]:
        ingress.append({
            "from": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": k8s["monitoring_namespace"]}}}],
            "ports": [{"protocol": "TCP", "port": ports["exporter"]}]})
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": resource, "labels": _labels(k8s, role)},
            "spec": {"podSelector": {"matchLabels": _selector(k8s, role)},
                     "policyTypes": ["Ingress"], "ingress": ingress}}


def _service_monitor(k8s, role, resource):
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": {"name": resource, "labels": _labels(k8s, role)},
            "spec": {"selector": {"matchLabels": dict(_selector(k8s, role), **{f"{LABEL}/part": "metrics"})},
                     "namespaceSelector": {"matchNames": [k8s["namespace"]]},
                     "endpoints": [{"port": "metrics", "path": "/metrics", "interval": "30s"}]}}


def _namespace(k8s):
    # The restricted Pod Security Standard enforced: the API server itself
    # refuses a pod of this namespace that would run as root or keep a
    # capability.
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": k8s["namespace"], "labels": {
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest"}}}


def _role_resources(mosquitto, role, resource, replicas):
    k8s = mosquitto["kubernetes"]
    docs = [_statefulset(mosquitto, role, resource, replicas), *_services(mosquitto, role, resource),
            _disruption_budget(k8s, role, resource), _network_policy(mosquitto, role, resource)]
    if mosquitto["exporter"]["enabled"] and k8s["service_monitor"]:
        docs.append(_service_monitor(k8s, role, resource))
    return docs


def _dump(docs):
    return yaml.safe_dump_all(docs, default_flow_style=False, sort_keys=False)


def _kustomization(mosquitto, roles):
    k8s = mosquitto["kubernetes"]
    config_maps, secrets = [], []
    for role, resource, _ in roles:
        config_maps.append({"name": f"{resource}-config",
                            "files": [f"mosquitto.conf=files/{role}/mosquitto.conf", f"acl=files/{role}/acl"]})
        broker = [f"passwd=secrets/{role}/passwd", "ca.crt=files/ca.crt",
                  f"server.crt=secrets/{role}/server.crt", f"server.key=secrets/{role}/server.key"]
        broker += [f"{name}.conf=secrets/{role}/bridges/{name}.conf"
                   for name in sorted(_bridges(mosquitto, role, ""))]
        secrets.append({"name": f"{resource}-broker", "type": "Opaque", "files": broker})
        if mosquitto["exporter"]["enabled"]:
            secrets.append({"name": f"{resource}-exporter", "type": "Opaque", "files": [
                f"password=secrets/{role}/exporter-password", "ca.crt=files/ca.crt",
                f"server.crt=secrets/{role}/server.crt"]})
    if mosquitto["exporter"]["enabled"]:
        config_maps.append({"name": f"{k8s['name']}-exporter-program",
                            "files": ["mosquitto_exporter.py=files/mosquitto_exporter.py"]})
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "namespace": k8s["namespace"],
        "resources": ["namespace.yaml"] + [f"{role}.yaml" for role, _, _ in roles],
        # Generated names carry a hash of their content: a changed
        # mosquitto.conf, ACL, password or certificate is a new name in the
        # pod template, so the StatefulSet rolls its pods one by one.
        "configMapGenerator": config_maps,
        "secretGenerator": secrets,
    }


def plan(mosquitto):
    """
    What ``mosquitto.kubernetes`` writes, from ``mosquitto_map.data``:
    ``{"roles": [{role, resource, replicas, settings, users, acl_users,
    bridges, dns_names}], "files": {path in the directory: text}}``. No
    secret in it: users and bridge passwords are references the states
    read while they run.

    CLI Example:

    .. code-block:: bash

        salt-call mosquitto_kubernetes.plan "$(salt-call --out=json mosquitto_map.data)"
    """
    directory = mosquitto["kubernetes"]["dir"].rstrip("/")
    roles = _roles(mosquitto)
    settings = _pod_settings(mosquitto)
    out = {"roles": [], "files": {"namespace.yaml": _dump([_namespace(mosquitto["kubernetes"])])}}
    for role, resource, replicas in roles:
        out["roles"].append({
            "role": role, "resource": resource, "replicas": replicas, "settings": settings,
            "users": _users(mosquitto, role, directory), "acl_users": _acl_users(mosquitto, role),
            "bridges": _bridges(mosquitto, role, directory), "dns_names": _dns_names(mosquitto, resource),
        })
        out["files"][f"{role}.yaml"] = _dump(_role_resources(mosquitto, role, resource, replicas))
    out["files"]["kustomization.yaml"] = _dump([_kustomization(mosquitto, roles)])
    return out
