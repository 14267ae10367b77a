"""`make apply`: converge this host into a broker with a demo pillar.

The demo user's password is generated here once and kept in a root-only
file (.salt-local/demo-password); no fixed password ever reaches a host.
Override the demo with environment variables:
  DOMAIN=mqtt.example.com  DEMO_USER=demo  FIREWALL=false|auto|true
  MQTT_DEMO_DIR=<dir>  Salt's config, cache and log (default .salt-local)

It says which step it is on (each Salt state as it starts, read from
salt-call's log) and, when something fails, where that full log is.
"""
import os
import pathlib
import re
import secrets
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from scripts.saltlocal import REPO, SaltLocal, changed, failed  # noqa: E402

WORKDIR = pathlib.Path(os.environ.get("MQTT_DEMO_DIR") or REPO / ".salt-local")
# Salt logs this (level info) as each state starts.
STATE_STARTS = re.compile(r"Executing state (\S+) for \[(.*)\]")
STEPS = 3


def step(n, text):
    print(f"[{n}/{STEPS}] {text}", flush=True)


def apply_showing_states(salt):
    """salt.apply(), printing each state as salt-call's log shows it start."""
    cmd = salt.command("state.apply", "mosquitto")
    out, err = salt.dir / "apply.out", salt.dir / "apply.err"
    offset = salt.log.stat().st_size if salt.log.exists() else 0
    count = 0
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr)
        while True:
            done = proc.poll() is not None
            if salt.log.exists():
                with open(salt.log, "rb") as log:
                    log.seek(offset)
                    data = log.read()
                # Only whole lines: the rest is read on the next round.
                data = data[:data.rfind(b"\n") + 1]
                offset += len(data)
                for function, name in STATE_STARTS.findall(data.decode(errors="replace")):
                    count += 1
                    print(f"      state {count}: {function} {name}", flush=True)
            if done:
                break
            time.sleep(0.5)
    return salt.result(cmd, proc.returncode, out.read_text(), err.read_text())


def report_failure(salt, what, details):
    print(f"{what}:", file=sys.stderr)
    for sid, comment in details.items():
        print(f"  {sid}: {comment}", file=sys.stderr)
    print(f"Full log: {salt.log}", file=sys.stderr)
    return 1


def demo_password():
    path = WORKDIR / "demo-password"
    if path.exists():
        return path.read_text().strip()
    WORKDIR.mkdir(mode=0o700, exist_ok=True)
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


def main():
    domain = os.environ.get("DOMAIN", "mosquittodemo.example.com")
    user = os.environ.get("DEMO_USER", "demo")
    firewall = {"false": False, "true": True}.get(os.environ.get("FIREWALL", "false"), "auto")
    password = demo_password()
    pillar = {"mosquitto": {
        "domain": domain,
        "users": {user: {"password": password}},
        # firewalld is left alone by default: on a shared dev machine it would
        # firewall the whole host. FIREWALL=auto manages it where it runs.
        "firewall": {"enabled": firewall},
    }}
    step(1, f"Salt config and demo pillar in {WORKDIR}")
    salt = SaltLocal(WORKDIR).setup(pillar)
    step(2, "Syncing the formula's modules (saltutil.sync_all)")
    try:
        salt.sync()
    except RuntimeError as exc:
        return report_failure(salt, "saltutil.sync_all failed", {"salt-call": exc})
    step(3, f"Applying mosquitto to this host (domain {domain}); each state as it starts:")
    rc, states, err = apply_showing_states(salt)
    bad = failed(states)
    if rc != 0 or bad:
        return report_failure(salt, f"state.apply failed (rc={rc})", bad or {"salt-call": err or states})
    print(f"Done: {len(states)} states, {len(changed(states))} changed. Log: {salt.log}")
    ca = "/etc/mosquitto/certs/ca.crt"
    login = f'--cafile {ca} -u "{user}" -P "$(cat {WORKDIR / "demo-password"})"'
    print(f"""
The broker serves MQTT over TLS on 8883 and plain MQTT on 127.0.0.1:1883.
User '{user}', password in {WORKDIR / 'demo-password'} (root only).
Clients verify the server with {ca}. The certificate is for {domain}:
map that name to this host first, e.g.  echo "127.0.0.1 {domain}" >> /etc/hosts

  mosquitto_sub -h {domain} -t demo/topic -p 8883 {login}
  mosquitto_pub -h {domain} -t demo/topic -p 8883 {login} -m "hello"
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
