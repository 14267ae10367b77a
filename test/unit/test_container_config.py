"""mosquitto_config.validate for mosquitto:container: each bad value names its key."""
import pytest

from test.support.config import cfg, error_of, settings
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)


def container(**values):
    return {"container": {"enabled": True, **values}}


def test_container_defaults_are_valid_and_off():
    out = cfg.validate(settings())
    assert out["container"]["enabled"] is False
    assert out["container"]["network"] == "host" and out["container"]["uid"] == 1883


def test_a_named_network_with_address_and_publishing_is_valid():
    cfg.validate(settings(**container(network="mqtt-net", subnet="198.19.0.0/24", ip="198.19.0.10",
                                      publish=["8883:8883", "127.0.0.1:1883:1883"],
                                      restart_policy="on-failure:5")))


@pytest.mark.parametrize("values,message", [
    ({"enabled": "yes"}, "mosquitto:container:enabled: must be true or false"),
    ({"uid": 0}, "mosquitto:container:uid: must not be 0"),
    ({"gid": 0}, "mosquitto:container:gid: must not be 0"),
    ({"uid": "1883"}, "mosquitto:container:uid: must be an integer"),
    ({"name": "-bad"}, "mosquitto:container:name: is not a container name"),
    ({"image": "bad image"}, "mosquitto:container:image: is not an image reference"),
    ({"image": ""}, "mosquitto:container:image: must not be empty"),
    ({"network": "bridge"}, "mosquitto:container:network: must be host or the name"),
    ({"network": "none"}, "mosquitto:container:network: must be host or the name"),
    ({"subnet": "198.19.0.0/24"}, "mosquitto:container:subnet: only for a named network"),
    ({"network": "n", "subnet": "198.19.0.0/33"}, "mosquitto:container:subnet: is not a network"),
    ({"ip": "198.19.0.10"}, "mosquitto:container:ip: only for a named network"),
    ({"network": "n", "subnet": "198.19.0.0/24", "ip": "10.0.0.1"},
     "mosquitto:container:ip: 10.0.0.1 is not in subnet"),
    ({"network": "n", "ip": "198.19.0.10"}, "mosquitto:container:ip: needs container:subnet"),
    ({"publish": ["8883:8883"]}, "mosquitto:container:publish:0: has no effect with network host"),
    ({"network": "n", "publish": ["8883"]},
     "mosquitto:container:publish:0: must be '[host_ip:]host_port:container_port'"),
    ({"network": "n", "publish": ["1883:1883"]},
     "mosquitto:container:publish:0: plain MQTT (ports:mqtt) may only be published on 127.0.0.1"),
    ({"restart_policy": "sometimes"}, "mosquitto:container:restart_policy: must be no, always"),
    ({"nofile": 100}, "mosquitto:container:nofile: must be between 1024 and 1048576"),
    ({"healthcheck": {"interval": 0}}, "mosquitto:container:healthcheck:interval: must be between 1 and 3600"),
    ({"healthcheck": {"command": "x"}}, "mosquitto:container:healthcheck:command: unknown key"),
    ({"memory": "1g"}, "mosquitto:container:memory: unknown key"),
])
def test_bad_container_pillar_names_the_key(values, message):
    assert message in error_of(**container(**values))
