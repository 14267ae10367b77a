"""What the integration suite's tests and fixtures share: the broker's
names and paths on this host, the base pillar and the broker's PID."""
import pathlib

DOMAIN = "mqtt.integration.test"
CA = "/etc/mosquitto/certs/ca.crt"
PIDFILE = "/run/mosquitto/mosquitto.pid"


def base_pillar(passwords):
    return {
        "mosquitto": {
            "domain": DOMAIN,
            "tls": {"dns_names": ["alt.integration.test"], "ip_addresses": ["127.0.0.1"]},
            "users": {
                "alice": {"password": passwords["alice"], "acl": ["readwrite sensors/#", "read status/#"]},
                "bob": {"password": passwords["bob"]},
            },
            # Never firewalld on this machine: it would firewall the host.
            "firewall": {"enabled": False},
            # $SYS every 2 s so the exporter tests need not wait 10 s.
            "config": {"sys_interval": 2},
        }
    }


def broker_pid():
    return int(pathlib.Path(PIDFILE).read_text().split()[0])
