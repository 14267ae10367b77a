"""Fixtures for the exporter tests.

Every test that takes the `python` fixture runs twice: on Debian's own
interpreter with python3-paho-mqtt 1.6 / python3-prometheus-client 0.16, and
on the project venv with current PyPI releases (paho-mqtt 2.x).
"""
import os

import pytest

from test.exporter.helpers import PYTHONS, Exporter, libraries


@pytest.fixture(params=sorted(PYTHONS), scope="session")
def python(request):
    path = PYTHONS[request.param]
    if not os.path.exists(path) or libraries(path) is None:
        # `make test` installs both; a missing one is a broken setup, not a
        # reason to report the distro path as covered.
        pytest.fail(f"{path} lacks paho-mqtt/prometheus-client "
                    "(Debian: apt-get install python3-paho-mqtt python3-prometheus-client)")
    return path


@pytest.fixture
def exporter_factory(python):
    """exporter_factory(*args, env=...) -> a started Exporter on `python`."""
    started = []

    def make(*args, env=None):
        exporter = Exporter(python, *args, env=env).start()
        started.append(exporter)
        return exporter

    yield make
    for exporter in started:
        exporter.__exit__(None, None, None)
