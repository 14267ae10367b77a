"""monitoring/: scrape config, alert rules and dashboard, checked with the
real promtool and a real Prometheus server scraping the real exporter."""
import datetime
import json
import re
import secrets
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from test.exporter.helpers import ANON, PYTHONS, ROOT, SYS_FAST, Exporter, libraries, mosquitto_pub, write_cert
from test.support.broker import Broker, free_port
from test.support.prometheus import running_prometheus

MONITORING = ROOT / "monitoring"
NAME = re.compile(r"\b((?:broker|mosquitto_exporter|mosquitto_certificate)_[a-z0-9_]*[a-z0-9]"
                  r"|mosquitto_max_connections)\b")
# A job matcher with a literal value; the dashboard may say job=~"$job".
JOB_LITERAL = re.compile(r'\bjob\s*(?:=~|!~|!=|=)\s*"(?!\$job")')
README_HEADING = re.compile(r"^#+ (.+)$", re.M)


def promtool(*args):
    # A guard against a hang, not a speed check: the rules' unit tests need
    # about 12 s of CPU, and took 90 s on a loaded 2-core machine.
    result = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_prometheus_config_is_valid():
    promtool("check", "config", str(MONITORING / "prometheus.yml"))
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "node"  # the original's queries say job="node"
    assert job["static_configs"][0]["targets"][0].endswith(":9234")


def test_alert_rules_are_valid():
    promtool("check", "rules", str(MONITORING / "alerts.yml"))


def test_alert_rules_unit_tests():
    promtool("test", "rules", str(MONITORING / "alerts_test.yml"))


def alert_rules():
    return yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"][0]["rules"]


def test_alert_rules_name_no_job():
    """The operator picks the job name (issue 21): no rule may match one."""
    for rule in alert_rules():
        assert not re.search(r"\bjob\s*(?:=~|!~|!=|=)", rule["expr"]), rule["alert"]


def test_alert_rules_unit_tests_under_another_job_name(tmp_path):
    """alerts_test.yml feeds job="mqtt"; the same tests pass under a job
    name no rule could know (the original-query test keeps its "node")."""
    job = f"scraped-as-{secrets.token_hex(4)}"
    text = (MONITORING / "alerts_test.yml").read_text()
    renamed = text.replace('job="mqtt"', f'job="{job}"').replace("job: mqtt", f"job: {job}")
    assert renamed.count(job) >= 20, "alerts_test.yml no longer uses job mqtt"
    config = yaml.safe_load(renamed)
    config["rule_files"] = [str(MONITORING / "alerts.yml")]
    (tmp_path / "alerts_test.yml").write_text(yaml.safe_dump(config))
    promtool("test", "rules", str(tmp_path / "alerts_test.yml"))


def github_anchor(heading):
    """The id GitHub (and GitLab) give a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_alert_has_a_runbook_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    anchors = {github_anchor(h) for h in README_HEADING.findall(readme)}
    for rule in alert_rules():
        url = rule["annotations"].get("runbook_url", "")
        assert url == f"README.md#runbook-{rule['alert'].lower()}", rule["alert"]
        assert url.split("#", 1)[1] in anchors, f"README has no heading for {url}"


def dashboard_exprs():
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return dashboard, exprs


def overlap(a, b):
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def test_dashboard_is_sound(tmp_path):
    dashboard, exprs = dashboard_exprs()
    assert dashboard["uid"] and dashboard["title"]
    assert dashboard["schemaVersion"] == 39  # what its panels are written for
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for i, panel in enumerate(dashboard["panels"]):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for other in dashboard["panels"][:i]:
            assert not overlap(grid, other["gridPos"]), (panel["title"], other["title"])
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
    for expr in exprs:
        assert not JOB_LITERAL.search(expr), expr
    # "All" must not become ".*": up{} would then match every target.
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert "allValue" not in variables["job"] and "allValue" not in variables["instance"]
    # Every query is valid PromQL once Grafana's variables are filled in:
    # let promtool parse them as recording rules.
    queries = [re.sub(r"label_values\((.*), \w+\)$", r"\1", e) for e in exprs]
    queries = [q.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")
               for q in queries]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": q} for i, q in enumerate(queries)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    promtool("check", "rules", str(path))


def test_every_metric_an_alert_uses_has_a_panel():
    _, exprs = dashboard_exprs()
    panels = "\n".join(exprs)
    for rule in alert_rules():
        used = set(NAME.findall(rule["expr"])) | ({"up"} if re.search(r"\bup\b", rule["expr"]) else set())
        assert used, rule["alert"]
        for name in used:
            assert re.search(rf"\b{name}\b", panels), f"{rule['alert']}: no panel shows {name}"


@pytest.fixture(scope="module")
def served_names(tmp_path_factory):
    """Every series name the exporter serves for a broker with a bridge and
    the certificate flags the formula sets."""
    cert = tmp_path_factory.mktemp("certs") / "server.crt"
    write_cert(cert, datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc))
    python = PYTHONS["pypi"]
    if libraries(python) is None:
        pytest.fail(f"{python} lacks paho-mqtt/prometheus-client: run `make setup-test`")
    with Broker(extra=ANON) as remote, Broker(extra=ANON + SYS_FAST + (
            "connection mqtt1-to-mqtt2\n"
            f"address 127.0.0.1:{remote.port}\n"
            "remote_clientid mqtt1_to_mqtt2\n"
            "topic bridged/# out 0\n")) as broker:
        with Exporter(python, "--endpoint", f"tcp://127.0.0.1:{broker.port}",
                      "--server-cert", str(cert), "--ca-cert", str(cert), "--max-connections", "100") as exporter:
            # The bridge's state, and every $SYS series the rules and the
            # dashboard use (they arrive over a second or two under load).
            used = set().union(*(NAME.findall((MONITORING / f).read_text())
                                 for f in ("alerts.yml", "grafana-dashboard.json")))
            _, values = exporter.wait_for(
                lambda t, v: 'broker_connection_state{connection="mqtt1_to_mqtt2"}' in v
                and used <= {series.split("{")[0] for series in v}, "the bridge state and the used series")
    return {series.split("{")[0] for series in values}


@pytest.mark.parametrize("source", ["alerts.yml", "grafana-dashboard.json"])
def test_monitoring_uses_only_served_series(served_names, source):
    text = (MONITORING / source).read_text()
    used = set(NAME.findall(text))
    assert used, source
    assert used <= served_names, sorted(used - served_names)


def test_bridge_states_labelled_and_under_the_go_name(served_names):
    """Rules and dashboard use the labelled family; the Go exporter's name
    per connection is served beside it for old dashboards (issue 21)."""
    (expr,) = [r["expr"] for r in alert_rules() if r["alert"] == "MosquittoBridgeDown"]
    assert expr.startswith("broker_connection_state ")
    assert sorted(n for n in served_names if n.startswith("broker_connection")) == [
        "broker_connection_mqtt1_to_mqtt2_state", "broker_connection_state"]


def query(base, expr):
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)["data"]["result"]


def test_real_prometheus_runs_the_original_query(exporter_factory, tmp_path):
    """Prometheus 2.x asks for OpenMetrics first; it must get and accept our
    0.0.4 text, and `rate(broker_messages_received{job="node"}[1h])` must work."""
    with Broker(extra=ANON + SYS_FAST) as broker:
        exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{broker.port}")
        exporter.wait_connected()
        config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(MONITORING / "alerts.yml")]
        config["scrape_configs"][0]["static_configs"] = [
            {"targets": [f"127.0.0.1:{exporter.port}"]}]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        with running_prometheus(tmp_path / "prometheus.yml", tmp_path) as base:
            deadline = time.monotonic() + 40
            while True:
                mosquitto_pub(broker.port, "test/prometheus", "tick")
                result = query(base, 'rate(broker_messages_received{job="node"}[1h])')
                if result and float(result[0]["value"][1]) > 0:
                    break
                assert time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
                time.sleep(1)
            assert query(base, 'up{job="node"}')[0]["value"][1] == "1"
            twin = query(base, 'rate(broker_messages_received_total{job="node"}[1h])')
            assert float(twin[0]["value"][1]) > 0
            with urllib.request.urlopen(
                    f"{base}/api/v1/targets", timeout=5) as resp:
                (target,) = json.load(resp)["data"]["activeTargets"]
            assert (target["health"], target["lastError"]) == ("up", "")
            # No alert fires against a healthy broker.
            with urllib.request.urlopen(f"{base}/api/v1/alerts", timeout=5) as resp:
                assert json.load(resp)["data"]["alerts"] == []


def test_real_prometheus_finds_a_down_exporter_by_its_series_not_its_job(exporter_factory, tmp_path):
    """MosquittoExporterDown's expression on a real Prometheus scraping the
    exporter under a job name no rule knows, on a port that is not 9234:
    nothing while it answers; its target once it is stopped (the rule's
    `for` is promtool's to test)."""
    (expr,) = [r["expr"] for r in alert_rules() if r["alert"] == "MosquittoExporterDown"]
    exporter = exporter_factory("--endpoint", f"tcp://127.0.0.1:{free_port()}")  # no broker needed
    assert exporter.port != 9234
    job, target = f"brokers-{secrets.token_hex(4)}", f"127.0.0.1:{exporter.port}"
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}]}
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    with running_prometheus(tmp_path / "prometheus.yml", tmp_path) as base:
        wait_query(base, "mosquitto_exporter_connected", lambda r: len(r) == 1, tmp_path)
        assert query(base, expr) == []
        exporter.stop()
        (down,) = wait_query(base, expr, lambda r: len(r) == 1, tmp_path)
    assert (down["metric"]["job"], down["metric"]["instance"]) == (job, target)


def wait_query(base, expr, predicate, workdir, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate(result := query(base, expr)):
        assert time.monotonic() < deadline, f"{expr}: {result}\n{(workdir / 'prometheus.log').read_text()}"
        time.sleep(0.5)
    return result
