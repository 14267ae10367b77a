"""Version-bound bridge checks on a host without the broker yet:
broker_version asks the package manager what it would install
(pkg.latest_version, refresh=False) so an operator with a 2.0.15+ repository
converges in one command, and validate keeps refusing (naming the key and
both versions) below it. map.jinja makes the same two calls."""
import pytest
from salt.exceptions import CommandExecutionError

from test.support.config import BRIDGE, CLUSTER, cfg, settings
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)

QOS2 = {"b": dict(BRIDGE, topics=["x/# out 2"])}
V21 = {"b": dict(BRIDGE, options={"bridge_receive_maximum": 10})}


@pytest.fixture
def pkg(monkeypatch):
    """The package manager as validate sees it: pkg.version / latest_version."""
    state = {"installed": "", "candidate": "", "calls": []}

    def version(name):
        state["calls"].append(("version", name))
        return state["installed"]

    def latest_version(name, **kwargs):
        state["calls"].append(("latest_version", name, kwargs))
        return state["candidate"]

    funcs = dict(getattr(cfg, "__salt__", {}), **{"pkg.version": version, "pkg.latest_version": latest_version})
    monkeypatch.setattr(cfg, "__salt__", funcs, raising=False)
    return state


def check(**pillar):
    # As map.jinja does: the version probed first, then validated with it.
    data = settings(**pillar)
    return cfg.validate(data, minion_id="mqtt2", broker_version=cfg.broker_version(data))


def refusal(**pillar):
    with pytest.raises(CommandExecutionError) as exc:
        check(**pillar)
    return str(exc.value)


def test_installed_version_decides_and_the_candidate_is_not_asked(pkg):
    pkg.update(installed="2.0.11-1.2+deb12u2", candidate="2.0.18-1")
    message = refusal(bridges=QOS2)
    assert "mosquitto:bridges:b:topics:0: QoS 2 on a bridge" in message
    assert "before mosquitto 2.0.15" in message and "installed: 2.0.11-1.2+deb12u2" in message
    assert [c[0] for c in pkg["calls"]] == ["version"]


def test_candidate_only_allows_what_it_supports(pkg):
    pkg.update(candidate="2.0.18-0mosquitto1")
    assert check(bridges=QOS2)["bridges"]["b"]["topics"] == ["x/# out 2"]
    assert ("latest_version", "mosquitto", {"refresh": False}) in pkg["calls"]
    pkg.update(candidate="2.1.2-1")
    assert check(bridges=V21)["bridges"]["b"]["options"]["bridge_receive_maximum"] == 10


def test_candidate_only_below_the_bound_is_refused_naming_both_versions(pkg):
    pkg.update(candidate="2.0.11-1.2+deb12u2")
    message = refusal(bridges=QOS2)
    assert "mosquitto:bridges:b:topics:0:" in message and "before mosquitto 2.0.15" in message
    assert "not installed yet; the package manager would install 2.0.11-1.2+deb12u2" in message
    message = refusal(cluster=dict(CLUSTER, topics=["fleet/# both 2"]))
    assert "mosquitto:cluster:topics:0:" in message and "would install 2.0.11-1.2+deb12u2" in message
    pkg.update(candidate="2.0.18-1")
    message = refusal(bridges=V21)
    assert "mosquitto:bridges:b:options:bridge_receive_maximum: needs mosquitto 2.1" in message
    assert "would install 2.0.18-1" in message


def test_unknown_version_is_refused(pkg):
    """No package and no candidate (e.g. package lists not fetched yet)."""
    message = refusal(bridges=QOS2)
    assert "mosquitto:bridges:b:topics:0:" in message and "installed: unknown" in message


def test_a_failing_package_manager_counts_as_unknown(pkg, monkeypatch):
    def broken(name, **kwargs):
        raise RuntimeError("apt-cache: lock held")
    monkeypatch.setitem(cfg.__salt__, "pkg.latest_version", broken)
    assert "installed: unknown" in refusal(bridges=QOS2)
    assert check(bridges={"b": BRIDGE})  # nothing version-bound: no refusal


def test_the_candidate_is_asked_only_when_a_line_or_option_depends_on_it(pkg):
    """apt-cache policy costs ~0.5-0.8 s: not asked for a pillar without
    QoS 2 lines or 2.1-only options (nor is the installed version: no rule
    needs it then)."""
    assert cfg.broker_version(settings(bridges={"b": BRIDGE}, cluster=CLUSTER)) is None
    assert check(bridges={"b": BRIDGE}, cluster=CLUSTER)
    assert pkg["calls"] == []


def test_broker_version_says_where_the_version_comes_from(pkg):
    pkg.update(installed="2.0.11-1.2+deb12u2", candidate="2.0.18-1")
    assert cfg.broker_version(settings(bridges=QOS2)) == {"version": "2.0.11-1.2+deb12u2", "where": "installed"}
    pkg.update(installed="")
    assert cfg.broker_version(settings(bridges=V21)) == {"version": "2.0.18-1", "where": "candidate"}
    pkg.update(candidate="")
    assert cfg.broker_version(settings(bridges=QOS2)) == {"version": None, "where": "installed"}
    image = {"enabled": True, "image": "eclipse-mosquitto:2.0.18"}
    assert cfg.broker_version(settings(bridges=QOS2, container=image)) == {
        "version": "2.0.18", "where": "image eclipse-mosquitto:2.0.18"}


def test_validate_asks_nothing_itself(pkg):
    """validate is a function of its arguments: the version is what it is given."""
    pkg.update(installed="2.1.2")
    message = refusal_with(None, bridges=QOS2)
    assert "installed: unknown" in message and pkg["calls"] == []
    assert cfg.validate(settings(bridges=QOS2), minion_id="mqtt2",
                        broker_version={"version": "2.0.18", "where": "candidate"})
    assert pkg["calls"] == []


def refusal_with(broker_version, **pillar):
    with pytest.raises(CommandExecutionError) as exc:
        cfg.validate(settings(**pillar), minion_id="mqtt2", broker_version=broker_version)
    return str(exc.value)


def test_container_mode_asks_the_image_not_the_host(pkg):
    """The host's package says nothing of the image's broker: a version tag
    decides and pkg.* is never asked (the engine is asked in
    test/containers/test_container_version.py)."""
    pkg.update(installed="2.0.11-1.2+deb12u2", candidate="2.0.11-1.2+deb12u2")
    container = {"enabled": True, "image": "eclipse-mosquitto:2.0.18"}
    assert check(bridges=QOS2, container=container)["bridges"]["b"]["topics"] == ["x/# out 2"]
    assert pkg["calls"] == []
    message = refusal(bridges=QOS2, container=dict(container, image="eclipse-mosquitto:2.0.14"))
    assert "image eclipse-mosquitto:2.0.14 runs 2.0.14" in message
