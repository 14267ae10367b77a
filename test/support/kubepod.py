"""A Kubernetes pod, as `kubectl kustomize` built it, run under Docker the way
a kubelet would run it (issue #23; no API server runs here):

* every container with the manifest's image, command, args and env;
  ``--user runAsUser:runAsGroup`` plus fsGroup as a supplementary group,
  ``--read-only`` for readOnlyRootFilesystem, ``--cap-drop`` of the dropped
  capabilities, no-new-privileges for allowPrivilegeEscalation false (the
  engine's default seccomp profile is RuntimeDefault);
* ConfigMap and Secret volumes as files of their keys at the mountPaths
  (the volume's defaultMode; Secrets group-owned by fsGroup, as the kubelet
  does), emptyDirs as tmpfs, the volume claim as a directory group-owned
  by fsGroup (setgid, group-writable: what fsGroup does to a volume);
* the containers share one network namespace (the first container's), on
  a Docker network where the pod answers to its Services' DNS names.

Nothing here reads more than the manifest says: a field it does not
translate (ports, probes) is read by the tests themselves."""
import os
import pathlib

_NO_PRIVS = "no-new-privileges"


def volume_files(volume, objects):
    """{key: (bytes, mode)} of a ConfigMap or Secret volume."""
    from test.support.kubernetes import data_of

    if "configMap" in volume:
        source, kind, name = volume["configMap"], "ConfigMap", volume["configMap"]["name"]
    else:
        source, kind, name = volume["secret"], "Secret", volume["secret"]["secretName"]
    obj = objects[(kind, name)]
    mode = source.get("defaultMode", 0o644)
    return {key: (value, mode) for key, value in data_of(obj).items()}


def _materialise(pod, objects, root):
    """Host paths for the pod's volumes: {volume name: (kind, host path)}."""
    fs_group = pod["securityContext"].get("fsGroup")
    out = {}
    for volume in pod["volumes"]:
        path = root / volume["name"]
        if "emptyDir" in volume:
            out[volume["name"]] = ("tmpfs", volume["emptyDir"].get("sizeLimit", "16Mi"))
            continue
        path.mkdir(parents=True)
        if "configMap" in volume or "secret" in volume:
            for key, (data, mode) in volume_files(volume, objects).items():
                (path / key).write_bytes(data)
                os.chmod(path / key, mode)
                if "secret" in volume and fs_group is not None:
                    os.chown(path / key, 0, fs_group)
            os.chmod(path, 0o755)
        out[volume["name"]] = ("dir", path)
    return out


def claim_dirs(sts, root):
    """The claim templates as host directories (fsGroup: setgid, group rw)."""
    fs_group = sts["spec"]["template"]["spec"]["securityContext"].get("fsGroup")
    out = {}
    for claim in sts["spec"].get("volumeClaimTemplates", []):
        path = root / claim["metadata"]["name"]
        path.mkdir(parents=True)
        if fs_group is not None:
            os.chown(path, 0, fs_group)
        os.chmod(path, 0o2770)
        out[claim["metadata"]["name"]] = ("dir", path)
    return out


def _security_args(pod, container):
    sc = dict(pod.get("securityContext", {}))
    sc.update(container.get("securityContext", {}))
    args = []
    if "runAsUser" in sc:
        args += ["--user", f"{sc['runAsUser']}:{sc.get('runAsGroup', sc['runAsUser'])}"]
    if "fsGroup" in pod.get("securityContext", {}):
        args += ["--group-add", str(pod["securityContext"]["fsGroup"])]
    if sc.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    for cap in sc.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", cap]
    if sc.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", _NO_PRIVS]
    return args


def _mount_args(container, volumes):
    args = []
    for mount in container.get("volumeMounts", []):
        kind, where = volumes[mount["name"]]
        if kind == "tmpfs":
            args += ["--tmpfs", f"{mount['mountPath']}:rw,nosuid,nodev,size={where.replace('Mi', 'm')},mode=1777"]
        else:
            args += ["-v", f"{where}:{mount['mountPath']}:{'ro' if mount.get('readOnly') else 'rw'}"]
    return args


def docker_run_args(pod, container, volumes, network):
    """`docker run` arguments for one container of ``pod`` (its name and
    network options come from ``network``: a list to put first)."""
    args = [*network, *_security_args(pod, container), *_mount_args(container, volumes)]
    for env in container.get("env", []):
        args += ["-e", f"{env['name']}={env['value']}"]
    command = container.get("command", [])
    if command:
        args += ["--entrypoint", command[0]]
    return [*args, container["image"], *command[1:], *container.get("args", [])]


def run_pod(engine, sts, ordinal, objects, root, network, ip, aliases):
    """Start pod ``<statefulset>-<ordinal>``: its containers' names, first
    the one that holds the network namespace."""
    name = f"{sts['metadata']['name']}-{ordinal}"
    pod = sts["spec"]["template"]["spec"]
    root = pathlib.Path(root) / name
    volumes = {**_materialise(pod, objects, root), **claim_dirs(sts, root / "claims")}
    names = []
    for i, container in enumerate(pod["containers"]):
        cname = f"{name}-{container['name']}"
        if i == 0:
            net = ["--name", cname, "--hostname", name, "--network", network, "--ip", ip]
            for alias in aliases:
                net += ["--network-alias", alias]
        else:
            net = ["--name", cname, "--network", f"container:{names[0]}"]
        engine.docker("run", "-d", *docker_run_args(pod, container, volumes, net))
        names.append(cname)
    return names
