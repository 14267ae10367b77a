"""Shared fixtures for functional tests: Salt's real loaders with the
formula's _modules/, _states/ and _utils/ on the module path, against temp dirs.

Usage in a test module::

    def test_something(states, modules, tmp_path):
        ret = states.mosquitto_passwd.managed(name=str(tmp_path / "f"), users={})
        assert ret.result is True
"""

import pathlib

import pytest
from saltfactories.utils import random_string
from saltfactories.utils.functional import Loaders

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package", autouse=True)
def _no_deferred_salt_log():
    """Drop Salt's import-time deferred stderr handler.

    It queues every warning until interpreter exit and then writes them to a
    stream pytest has closed ("--- Logging error ---" noise). pytest already
    captures and shows the records itself.
    """
    import salt._logging.impl

    salt._logging.impl.shutdown_temp_handler()
    yield
    salt._logging.impl.shutdown_temp_handler()


@pytest.fixture(scope="package")
def minion_opts(salt_factories, tmp_path_factory):
    """Masterless minion opts whose loaders also search ROOT/_modules, ROOT/_states
    and ROOT/_utils (the real `__utils__` of the formula's modules).

    `module_dirs`/`states_dirs`/`utils_dirs` name extra directories loaded as they are
    (not ROOT itself: the loader would then import ROOT/test as a module and
    collide with salt's `test` module). file_roots points at an empty dir, so
    the sync Loaders does at start-up has nothing to copy.
    """
    file_root = tmp_path_factory.mktemp("file_root")
    factory = salt_factories.salt_minion_daemon(
        random_string("functional-"),
        overrides={
            "file_client": "local",
            "file_roots": {"base": [str(file_root)]},
            "module_dirs": [str(ROOT / "_modules")],
            "utils_dirs": [str(ROOT / "_utils")],
            "states_dirs": [str(ROOT / "_states")],
        },
    )
    return factory.config.copy()


@pytest.fixture(scope="package")
def loaders(minion_opts):
    return Loaders(minion_opts)


@pytest.fixture(autouse=True)
def _reset_loaders_state(loaders):
    try:
        yield
    finally:
        loaders.reset_state()


@pytest.fixture
def modules(loaders):
    return loaders.modules


@pytest.fixture
def states(loaders):
    return loaders.states
