"""What a firewalld zone on a fleet host opens, read with firewall-cmd
(test/hosts: the fleet, the cluster's hosts of both releases, the firewall
states' own host)."""

# What the formula opens by default (exclusive mode): the original's
# promise of only 22, 8883 and 9234.
WANTED = (["8883/tcp", "9234/tcp"], ["ssh"])


def zone(h, name="public", permanent=False):
    """(sorted ports, sorted services) as firewall-cmd reports them."""
    scope = ["--permanent"] if permanent else []
    ports = h.run(["firewall-cmd", *scope, f"--zone={name}", "--list-ports"]).stdout.split()
    services = h.run(["firewall-cmd", *scope, f"--zone={name}", "--list-services"]).stdout.split()
    return sorted(ports), sorted(services)


def rich_rules(h, permanent=False):
    scope = ["--permanent"] if permanent else []
    return [r for r in h.run(["firewall-cmd", *scope, "--zone=public", "--list-rich-rules"]).stdout.splitlines() if r]


def openings(h, permanent=False):
    """Everything the zone opens: (ports, services, rich rules)."""
    return (*zone(h, permanent=permanent), rich_rules(h, permanent))


def assert_only_wanted(h):
    """Runtime and permanent zone open exactly WANTED, nothing else."""
    for permanent in (False, True):
        assert openings(h, permanent) == (*WANTED, []), (h.name, permanent, openings(h, permanent))
