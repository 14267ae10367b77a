"""The Kubernetes pods mosquitto.kubernetes renders (issue #23), booted under
the suite's Docker engine as a kubelet would run them (test/support/kubepod.py:
the manifest's image, command, env, user, read-only root, dropped
capabilities, ConfigMap and Secret keys as files at the mountPaths, tmpfs
emptyDirs, a shared network namespace per pod, the Services' DNS names as
network aliases). No API server runs here; what needs one (scheduling,
Services' virtual IPs, NetworkPolicy enforcement) is not tested.

The cluster pillar renders a hub and two spokes (one pod each here): every
broker serves TLS by its Service name with its Secret's certificate, the
exporter sidecar scrapes its broker, the probes' commands succeed, and the
spokes' bridges carry QoS 1 from one spoke to the other through the hub."""
import contextlib
import json
import pathlib
import shutil
import socket
import ssl
import tempfile
import time
import urllib.request

import pytest

from test.containers import engine as eng
from test.support import kubepod
from test.support import kubernetes as k8s
from test.support.container import EXPORTER_IMAGE, IMAGE, wait_for
from test.support.modules import load_util
from test.support.mqtt import Client

pytestmark = pytest.mark.containers

connect_packet = load_util("mosquitto_mqtt").connect_packet
# Not the other modules' 198.19.0.0/24 and .128/26 networks: all may exist.
NETWORK, SUBNET, GATEWAY = "mqk8s-net", "198.19.0.192/27", "198.19.0.193"
PODS = {("mosquitto-hub", 0): "198.19.0.194", ("mosquitto-spoke", 0): "198.19.0.195",
        ("mosquitto-spoke", 1): "198.19.0.196"}
PASSWORDS = {"alice": "k8s-alice-pw", "bob": "k8s bob pw"}


def fqdn(service):
    return f"{service}.{k8s.NAMESPACE}.svc.cluster.local"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, engine):
    work = tmp_path_factory.mktemp("k8s-pods")
    eng.build_exporter_image(engine, EXPORTER_IMAGE, IMAGE, work)
    salt = k8s.renderer(work, k8s.pillar(work, PASSWORDS, cluster=True, image=IMAGE,
                                         exporter_image=EXPORTER_IMAGE))
    rc, ret, err = salt.call("state.apply", "mosquitto")
    assert rc == 0 and all(r["result"] for r in ret.values()), (ret, err)
    built = k8s.build(work / "out")
    return {"objects": {(d["kind"], d["metadata"]["name"]): d for d in built},
            "sets": k8s.by_kind(built, "StatefulSet"), "work": work}


@pytest.fixture(scope="module")
def pods(rendered, engine):
    root = pathlib.Path(tempfile.mkdtemp(prefix="mqk8s-", dir="/tmp"))
    engine.docker("network", "create", "--driver", "bridge", "--subnet", SUBNET, "--gateway", GATEWAY,
                  "-o", "com.docker.network.bridge.name=mqk8s0", NETWORK)
    started = {}
    try:
        for (name, ordinal), ip in PODS.items():
            # What cluster DNS would answer with this pod: its Services' names.
            aliases = [svc + suffix for svc in (name, f"{name}-headless")
                       for suffix in ("", f".{k8s.NAMESPACE}", f".{k8s.NAMESPACE}.svc",
                                      f".{k8s.NAMESPACE}.svc.cluster.local")]
            started[(name, ordinal)] = kubepod.run_pod(engine, rendered["sets"][name], ordinal,
                                                       rendered["objects"], root, NETWORK, ip, aliases)
        yield started
    finally:
        for names in started.values():
            engine.docker("rm", "-f", *names, check=False)
        engine.docker("network", "rm", NETWORK, check=False)
        shutil.rmtree(root, ignore_errors=True)


def secret_files(rendered, name, suffix):
    (secret,) = [obj for (kind, n), obj in rendered["objects"].items()
                 if kind == "Secret" and n.startswith(f"{name}-{suffix}-")]
    return k8s.data_of(secret)


def tls_login(ip, hostname, cafile, user, password):
    """(CONNACK bytes, the server's certificate DER) over TLS verified by name."""
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((ip, 8883), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=hostname) as tls:
        tls.sendall(connect_packet("k8s-test", user, password))
        return tls.recv(4), tls.getpeercert(binary_form=True)


def metrics(ip):
    with urllib.request.urlopen(f"http://{ip}:9234/metrics", timeout=5) as resp:
        return resp.read().decode()


def inspect(engine, name):
    return json.loads(engine.docker("inspect", name).stdout)[0]


def test_containers_run_as_the_manifest_says(rendered, pods, engine):
    for (name, _), names in pods.items():
        spec = rendered["sets"][name]["spec"]["template"]["spec"]
        for container, cname in zip(spec["containers"], names, strict=True):
            info = inspect(engine, cname)
            assert info["State"]["Running"], (cname, engine.docker("logs", cname, check=False).stderr[-2000:])
            assert info["Config"]["Image"] == container["image"]
            assert info["Config"]["Entrypoint"] + info["Config"]["Cmd"] == container["command"]
            assert info["Config"]["User"] == "1883:1883" and info["HostConfig"]["GroupAdd"] == ["1883"]
            assert info["HostConfig"]["ReadonlyRootfs"] is True and info["HostConfig"]["CapDrop"] == ["ALL"]
            env = dict(e.split("=", 1) for e in info["Config"]["Env"])
            assert {e["name"]: e["value"] for e in container.get("env", [])}.items() <= env.items()
            mounts = {m["Destination"]: m["RW"] for m in info["Mounts"]}
            wanted = {m["mountPath"]: not m.get("readOnly", False) for m in container["volumeMounts"]}
            tmpfs = set(info["HostConfig"].get("Tmpfs") or {})
            assert {p: rw for p, rw in wanted.items() if p not in tmpfs} == mounts
        # The kernel's view of the broker: uid 1883, no capabilities.
        status = pathlib.Path(f"/proc/{inspect(engine, names[0])['State']['Pid']}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines())
        assert fields["Uid"].split() == ["1883"] * 4 and fields["CapEff"].strip() == "0" * 16


def test_each_broker_serves_tls_by_its_service_name_with_its_secret(rendered, pods):
    for (name, _), ip in PODS.items():
        files = secret_files(rendered, name, "broker")
        cafile = rendered["work"] / f"{name}-ca.crt"
        cafile.write_bytes(files["ca.crt"])
        for hostname in (fqdn(name), fqdn(f"{name}-headless"), "mqtt.k8s.test"):
            connack, der = wait_for(
                lambda ip=ip, hostname=hostname, cafile=cafile: _login_or_none(ip, hostname, cafile), timeout=60)
            assert connack == b"\x20\x02\x00\x00", (name, hostname)
        assert ssl.DER_cert_to_PEM_cert(der).strip() == files["server.crt"].decode().strip()
        # Verified by name: a name not in the certificate fails.
        with pytest.raises(ssl.SSLCertVerificationError):
            tls_login(ip, "mosquitto-elsewhere.example", cafile, "alice", PASSWORDS["alice"])
        connack, _ = tls_login(ip, fqdn(name), cafile, "alice", "wrong")
        assert connack[:2] == b"\x20\x02" and connack[3] != 0


def _login_or_none(ip, hostname, cafile):
    with contextlib.suppress(OSError):
        return tls_login(ip, hostname, cafile, "alice", PASSWORDS["alice"])
    return None


def test_exporter_sidecar_scrapes_its_broker(pods):
    for (name, _), ip in PODS.items():
        text = wait_for(lambda ip=ip: _connected_metrics(ip), timeout=60)
        # It reads the certificates the exporter Secret mounts (server and CA).
        read_ok = [line for line in text.splitlines() if line.startswith("mosquitto_certificate_read_ok{")]
        assert len(read_ok) == 2 and all(line.endswith(" 1.0") for line in read_ok), (name, read_ok)


def _connected_metrics(ip):
    with contextlib.suppress(OSError):
        text = metrics(ip)
        if "mosquitto_exporter_connected 1.0" in text and "broker_uptime" in text:
            return text
    return None


def test_probe_commands_succeed_against_the_broker(rendered, pods, engine):
    for (name, ordinal), names in pods.items():
        spec = rendered["sets"][name]["spec"]["template"]["spec"]
        broker, exporter = spec["containers"]
        for probe in (broker["livenessProbe"], broker["readinessProbe"]):
            command = probe["exec"]["command"]
            assert engine.docker("exec", names[0], *command, check=False).returncode == 0, command
            # The probe can fail: the same command against a port nothing serves.
            wrong = [c.replace("-p 1883 ", "-p 1999 ").replace("-p 8883 ", "-p 1999 ") for c in command]
            assert engine.docker("exec", names[0], *wrong, check=False).returncode != 0, wrong
        for probe in (exporter["livenessProbe"], exporter["readinessProbe"]):
            port = {p["name"]: p["containerPort"] for p in exporter["ports"]}[probe["httpGet"]["port"]]
            url = f"http://{PODS[(name, ordinal)]}:{port}{probe['httpGet']['path']}"
            with urllib.request.urlopen(url, timeout=5) as resp:
                assert resp.status == 200


def test_spokes_bridge_through_the_hub_qos1_exactly_once(rendered, pods, tmp_path):
    hub_ip = PODS[("mosquitto-hub", 0)]
    # Both spokes' bridges up, as the hub's exporter sees them.
    wait_for(lambda: all(f'broker_connection_state{{connection="mosquitto-spoke-{i}.cluster"}} 1.0'
                         in (_connected_metrics(hub_ip) or "") for i in (0, 1)), timeout=90)
    cafile = tmp_path / "ca.crt"
    cafile.write_bytes(secret_files(rendered, "mosquitto-spoke", "broker")["ca.crt"])
    spoke = fqdn("mosquitto-spoke")
    # The spokes share their Service's name: each client resolves it to
    # "its" pod, and verifies the certificate by that name.
    sub = Client(8883, "alice", PASSWORDS["alice"], client_id="k8s-sub", cafile=str(cafile), host=spoke)
    pub = Client(8883, "alice", PASSWORDS["alice"], client_id="k8s-pub", cafile=str(cafile), host=spoke)
    with resolving(spoke, PODS[("mosquitto-spoke", 1)]):
        assert sub.connect()
    try:
        sub.subscribe("fleet/#", 1)
        with resolving(spoke, PODS[("mosquitto-spoke", 0)]):
            assert pub.connect()
        for i in range(20):
            pub.publish(f"fleet/k8s/{i}", f"m{i}".encode(), qos=1)
        got = [sub.get(timeout=30)[:2] for _ in range(20)]
        # Exactly once: nothing more comes.
        time.sleep(3)
        assert sub.messages.empty()
    finally:
        sub.close()
        pub.close()
    assert sorted(got) == sorted((f"fleet/k8s/{i}", f"m{i}".encode()) for i in range(20))


@contextlib.contextmanager
def resolving(name, ip):
    """``name`` resolves to ``ip`` in this process while connecting (what
    cluster DNS would answer); the host's resolver is never touched."""
    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        return real(ip if host == name else host, *args, **kwargs)

    socket.getaddrinfo = fake
    try:
        yield
    finally:
        socket.getaddrinfo = real
