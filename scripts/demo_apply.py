"""`make apply`: converge this host into a broker with a demo pillar.

The demo user's password is generated here once and kept in a root-only
file (.salt-local/demo-password); no fixed password ever reaches a host.
Override the demo with environment variables:
  DOMAIN=mqtt.example.com  DEMO_USER=demo  FIREWALL=false|auto|true
"""
import os
import pathlib
import secrets
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from scripts.saltlocal import REPO, SaltLocal, changed, failed  # noqa: E402

WORKDIR = REPO / ".salt-local"


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
    salt = SaltLocal(WORKDIR).setup(pillar)
    salt.sync()
    print(f"Applying mosquitto to this host (domain {domain}) ...", flush=True)
    rc, states, err = salt.apply()
    bad = failed(states)
    if rc != 0 or bad:
        print(f"state.apply failed (rc={rc}):", file=sys.stderr)
        for sid, comment in (bad or {"salt-call": err or states}).items():
            print(f"  {sid}: {comment}", file=sys.stderr)
        return 1
    print(f"Done: {len(states)} states, {len(changed(states))} changed.")
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
