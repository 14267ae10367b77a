"""Container mode: the version-bound bridge checks (QoS 2 on a bridge needs
mosquitto >= 2.0.15) ask the image, not the host's packages. The image is
asked what it says of itself without running it: a version tag, its
VERSION environment variable (eclipse-mosquitto sets it) or its OCI
version label; an image that says nothing is refused, naming the image.

Rendered (state.show_sls) against the suite's engine with real images made
FROM the suite's broker image; the host's own mosquitto package (2.0.11 on
this machine) would give the wrong answer for every one of them.
"""
import copy

import pytest

from test.support.container import IMAGE, engine_salt

pytestmark = pytest.mark.containers

PILLAR = {"mosquitto": {
    "domain": "mqtt.example.com",
    "users": {"alice": {"password": "pw"}},
    "firewall": {"enabled": False},
    "bridges": {"uplink": {"address": "peer.example.com:8883", "topics": ["site/# out 2"]}},
    # Names not in use here: the render only reads them.
    "lookup": {"service": {"user": "mosquitto-render", "group": "mosquitto-render"}},
}}
# Tag -> Dockerfile lines over the suite's image (which says nothing).
IMAGES = {
    "local/mosquitto-ver:env-old": "ENV VERSION=2.0.11",
    "local/mosquitto-ver:label-new": "LABEL org.opencontainers.image.version=2.0.18",
    "local/mosquitto-ver:2.0.18": "",
}


@pytest.fixture(scope="module")
def images(engine, tmp_path_factory):
    for tag, line in IMAGES.items():
        ctx = tmp_path_factory.mktemp("ctx")
        (ctx / "Dockerfile").write_text(f"FROM {IMAGE}\n{line}\n")
        engine.docker("build", "--network", "none", "-q", "-t", tag, str(ctx))
    yield
    engine.docker("image", "rm", *IMAGES, check=False)


@pytest.fixture(scope="module")
def salt(tmp_path_factory, engine, images):
    return engine_salt(tmp_path_factory.mktemp("render-version"), pillar(IMAGE), engine)


def pillar(image):
    data = copy.deepcopy(PILLAR)
    data["mosquitto"]["container"] = {"enabled": True, "name": "mosquitto-render", "image": image}
    return data


def render(salt, image):
    salt.write_pillar(pillar(image))
    return salt.call("state.show_sls", "mosquitto")


@pytest.mark.parametrize("image", ["local/mosquitto-ver:label-new", "local/mosquitto-ver:2.0.18"])
def test_an_image_that_says_2_0_18_takes_qos_2_bridges(salt, image):
    rc, highstate, err = render(salt, image)
    assert rc == 0 and isinstance(highstate, dict), (highstate, err)
    assert "mosquitto-runtime-container-broker-running" in highstate


@pytest.mark.parametrize("image, says", [
    ("local/mosquitto-ver:env-old", "image local/mosquitto-ver:env-old runs 2.0.11"),
    (IMAGE, f"image {IMAGE} does not say which mosquitto it runs"),
    ("local/not-in-the-engine:latest", "image local/not-in-the-engine:latest does not say"),
])
def test_an_image_that_says_older_or_nothing_is_refused_naming_it(salt, image, says):
    rc, out, err = render(salt, image)
    text = f"{out}\n{err}"
    assert rc != 0, out
    assert "mosquitto:bridges:uplink:topics:0: QoS 2 on a bridge" in text, text
    assert says in text, text
