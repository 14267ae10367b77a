"""tls:auto_renew and the renewal job's lookup keys in validation."""
import pytest

from test.support.config import cfg, error_of, settings
from test.support.config import (
    configure_loader_modules as configure_loader_modules,  # fixture: salt-factories looks it up on the module
)


def test_auto_renew_is_on_by_default_and_may_be_switched_off():
    assert cfg.validate(settings())["tls"]["auto_renew"] is True
    assert cfg.validate(settings(tls={"auto_renew": False}))["tls"]["auto_renew"] is False


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_auto_renew_must_be_a_boolean(value):
    assert "mosquitto:tls:auto_renew: must be true or false" in error_of(tls={"auto_renew": value})


def test_renew_cron_path_must_be_absolute():
    assert "mosquitto:lookup:paths:renew_cron: must be an absolute path" in \
        error_of(paths={"renew_cron": "cron.d/renew"})
