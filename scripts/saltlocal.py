"""Run this checkout's formula with `salt-call --local` from a private config dir.

Used by `make apply` (scripts/demo-apply), the integration tests and bench/.
The config dir holds a minion config whose file_roots is this repository
(salt://mosquitto, salt://_modules, salt://_states) and whose pillar_roots
is a directory of our own, so nothing in /etc/salt is read or written.
"""
import json
import os
import pathlib
import subprocess
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
SALT_CALL = pathlib.Path(sys.executable).with_name("salt-call")


class SaltLocal:
    def __init__(self, workdir, file_roots=None):
        self.dir = pathlib.Path(workdir)
        self.pillar_dir = self.dir / "pillar"
        self.file_roots = [str(p) for p in (file_roots or [REPO])]

    def setup(self, pillar, extra_opts=None):
        """Write the minion config and the pillar (root-only: it holds passwords)."""
        for d in (self.dir, self.pillar_dir):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
        opts = {
            "file_client": "local",
            "file_roots": {"base": self.file_roots},
            "pillar_roots": {"base": [str(self.pillar_dir)]},
            "root_dir": str(self.dir / "root"),
            "cachedir": str(self.dir / "cache"),
            "log_file": str(self.log),
            "log_level_logfile": "info",
            "state_verbose": False,
            "enable_fqdns_grains": False,
        }
        opts.update(extra_opts or {})
        (self.dir / "minion").write_text(yaml.safe_dump(opts))
        self.write_pillar(pillar)
        return self

    def write_pillar(self, pillar):
        path = self.pillar_dir / "mosquitto.sls"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            # Plain YAML, no Jinja: at its `garbage` log level Salt logs the
            # text of every Jinja-rendered SLS, and masterless pillar renders
            # in this process, so such a log would hold the passwords.
            fh.write("#!yaml\n")
            yaml.safe_dump(pillar, fh)
        (self.pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")

    @property
    def log(self):
        """salt-call's own log (level info: each state as it starts). Under
        root_dir: Salt prefixes any other absolute log_file with root_dir."""
        return self.dir / "root" / "minion.log"

    def command(self, *args, out="json"):
        return [str(SALT_CALL), "--config-dir", str(self.dir), "--local",
                "--retcode-passthrough", f"--out={out}", "--log-level=quiet", *args]

    def call(self, *args, check=False, timeout=900, out="json"):
        """Run salt-call; returns (returncode, parsed JSON or raw text, stderr)."""
        cmd = self.command(*args, out=out)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return self.result(cmd, proc.returncode, proc.stdout, proc.stderr, check, out)

    @staticmethod
    def result(cmd, returncode, stdout, stderr, check=False, out="json"):
        """call()'s return value from a finished salt-call."""
        result = stdout
        if out == "json":
            try:
                result = json.loads(stdout)["local"]
            except (ValueError, KeyError, TypeError):
                pass
        if check and returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({returncode}):\n{stdout}\n{stderr}")
        return returncode, result, stderr

    def sync(self):
        return self.call("saltutil.sync_all", check=True)

    def apply(self, sls="mosquitto", test=False, **kw):
        args = ["state.apply", sls]
        if test:
            args.append("test=True")
        return self.call(*args, **kw)


def changed(states):
    """IDs of states that changed (or would, under test=True) something."""
    if not isinstance(states, dict):
        return {"<render error>": states}
    return {
        key.split("_|-")[1]: value.get("changes")
        for key, value in states.items()
        if value.get("changes") or value.get("result") is None
    }


def failed(states):
    if not isinstance(states, dict):
        return {"<render error>": states}
    return {key.split("_|-")[1]: value.get("comment") for key, value in states.items()
            if value.get("result") is False}
