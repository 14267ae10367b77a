"""logging:types: validated, owned by the formula (not under config), and
rendered as mosquitto.conf's log_type lines. What a real broker then logs
is measured in test/functional/test_idle_log.py."""
import re

import pytest

from test.support.config import cfg, error_of, settings
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)
from test.unit.test_config_model import render


def log_types(**pillar):
    return re.findall(r"^log_type (\S+)$", "\n".join(render(**pillar)), re.M)


def test_default_leaves_out_information_where_autosaves_are_logged():
    assert log_types() == ["error", "warning", "notice"]


def test_types_from_pillar_replace_the_default():
    assert log_types(logging={"types": ["all"]}) == ["all"]
    assert cfg.validate(settings(logging={"types": ["none"]}))["logging"]["types"] == ["none"]


def test_log_type_under_config_points_to_logging_types():
    assert "mosquitto:config:log_type: is managed by the formula: set logging:types instead" in \
        error_of(config={"log_type": "all"})


@pytest.mark.parametrize("logging,message", [
    ({"types": []}, "mosquitto:logging:types: must name at least one type"),
    ({"types": "all"}, "mosquitto:logging:types: must be a list, got str"),
    ({"types": ["notice", "info"]}, "mosquitto:logging:types:1: must be one of error, warning"),
    ({"types": ["all"], "rotate": 7}, "mosquitto:logging:rotate: unknown key (known: types)"),
])
def test_bad_logging_names_the_key(logging, message):
    assert message in error_of(logging=logging)
