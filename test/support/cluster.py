"""The 3-host hub-and-spoke cluster of the hosts suite: its hosts, pillar
and first start, shared by test/hosts/test_cluster.py and
test/hosts/test_poisoned_mine.py (each builds its own module-scoped fleet
from it).

hub.test keeps the fleet CA and is the cluster hub; spoke-a.test and
spoke-b.test bridge to it. Short keepalive (10 s) and restart_timeout (2 s)
keep the modules quick; sys_interval 1 makes $SYS counters fresh every
second.
"""
import json
import secrets

HUB, SPOKE_A, SPOKE_B = "hub.test", "spoke-a.test", "spoke-b.test"
HOSTS = [HUB, SPOKE_A, SPOKE_B]
PASSWORD = "cluster-" + secrets.token_urlsafe(12)
KEEPALIVE = 10


def pillar_sls(extra_users=""):
    return f"""\
mosquitto:
  domain: {{{{ grains['id'] }}}}
  users:
    alice:
      password: {json.dumps(PASSWORD)}
      acl:
        - 'readwrite #'
        - 'read $SYS/broker/connection/#'
{extra_users}
  firewall:
    enabled: false
  config:
    sys_interval: 1
  # `information` as well: the hub's reload shows as "Reloading config"
  # (test_users_only_change_on_the_hub_keeps_bridges_connected).
  logging:
    types: [error, warning, notice, information]
  tls:
    ca_server: "{{{{ '' if grains['id'] == '{HUB}' else '{HUB}' }}}}"
  cluster:
    hub: {HUB}
    members: '*.test'
    topics:
      - fleet/# both 1
    keepalive_interval: {KEEPALIVE}
    restart_timeout: 2
"""




def start_fleet(fleet_factory, fleet_pillar_dir):
    """The three hosts under the session's master, with the cluster pillar."""
    (fleet_pillar_dir / "top.sls").write_text("base:\n  '*':\n    - mosquitto\n")
    (fleet_pillar_dir / "mosquitto.sls").write_text(pillar_sls())
    return fleet_factory(HOSTS)
