"""After state.apply: the exporter answers like the Go one did, and a real
Prometheus server scrapes it with the original's job name and PromQL."""
import json
import pathlib
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from test.support.localhost import wait_for
from test.support.mqtt import Client
from test.support.prometheus import running_prometheus

pytestmark = pytest.mark.integration


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, resp.headers, resp.read().decode()


def test_metrics_answer_with_the_text_format(applied):
    # The original README's check: curl -I localhost:9234/metrics
    head = subprocess.run(["curl", "-sI", "http://localhost:9234/metrics"], capture_output=True, text=True)
    assert head.stdout.startswith("HTTP/1.0 200") or head.stdout.startswith("HTTP/1.1 200")
    assert "Content-Type: text/plain; version=0.0.4" in head.stdout


def test_exporter_is_connected_with_its_own_user(applied):
    def connected():
        return "mosquitto_exporter_connected 1.0" in get("http://127.0.0.1:9234/metrics")[2]
    assert wait_for(connected, timeout=20)
    body = get("http://127.0.0.1:9234/metrics")[2]
    assert "broker_clients_connected" in body and "broker_uptime" in body


def test_password_is_not_on_the_command_line(applied):
    secret = pathlib.Path("/etc/mosquitto/exporter/password").read_text().strip()
    pid = int(pathlib.Path("/run/mosquitto-exporter.pid").read_text())
    cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    assert secret not in cmdline and "--pass" not in cmdline
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    import pwd
    uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
    assert pwd.getpwuid(uid).pw_name == "mosquitto-exporter"


@pytest.fixture
def prometheus(tmp_path):
    config = tmp_path / "prometheus.yml"
    # The original README's scrape config, with a short interval for the test.
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n- job_name: node\n  static_configs:\n  - targets: ['localhost:9234']\n"
    )
    with running_prometheus(config, tmp_path) as base:
        yield base


def query(base, promql):
    status, _, body = get(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
    data = json.loads(body)
    assert data["status"] == "success", data
    return data["data"]["result"]


def test_prometheus_scrapes_and_the_original_promql_sees_traffic(applied, prometheus, passwords):
    # The original's PromQL, with a range short enough for a test.
    promql = 'rate(broker_messages_received{job="node"}[20s])'
    assert wait_for(lambda: query(prometheus, 'up{job="node"}') and
                    query(prometheus, 'up{job="node"}')[0]["value"][1] == "1", timeout=30)
    client = Client(1883, "alice", passwords["alice"])
    assert client.connect()
    try:
        deadline = time.monotonic() + 60
        rate = 0.0
        while time.monotonic() < deadline and rate <= 0:
            for i in range(20):
                client.publish("sensors/load", str(i).encode(), qos=0)
            result = query(prometheus, promql)
            rate = float(result[0]["value"][1]) if result else 0.0
            time.sleep(1)
    finally:
        client.close()
    assert rate > 0, query(prometheus, 'broker_messages_received{job="node"}')
