"""Grafana and Prometheus for compose: every series a panel of
docker/grafana/dashboards/breaker.json or an alert of docker/prometheus/alerts.yml queries exists
in what the running services export, with the labels the query uses; the Prometheus config and
rules validate with promtool (Debian's, unpacked into .tools/, nothing installed), and the
alerts fire when their unit tests say (promtool test rules)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devstack.testing.mp3 import make_mp3
from devstack.testing.stack import wait_until
from tests.fixture_types import StackStarter

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "docker" / "grafana" / "dashboards" / "breaker.json"
PROMETHEUS_CONFIG = REPO / "docker" / "prometheus" / "prometheus.yml"
ALERTS = REPO / "docker" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "docker" / "prometheus" / "alerts.test.yml"
TOOLS = REPO / ".tools" / "prometheus"
# PromQL words that are not series names.
PROMQL = {"sum", "max", "min", "avg", "rate", "by", "without", "count", "irate", "increase"}
PROMQL |= {"histogram_quantile", "deriv", "and", "or", "unless", "on", "ignoring"}
# Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}


def panel_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p["targets"]]
    rules = yaml.safe_load(ALERTS.read_text())["groups"][0]["rules"]
    return panels + [(f"alert {r['alert']}", r["expr"]) for r in rules]


def series_and_labels(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """{series name: labels its matchers name}, and the labels of `by (...)` clauses."""
    grouped = {label.strip() for g in re.findall(r"by \(([^)]*)\)", expr) for label in g.split(",")}
    bare = re.sub(r"by \([^)]*\)|\[[^\]]*\]", "", expr)
    series: dict[str, set[str]] = {}
    for name, matchers in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?", bare):
        if name in PROMQL or re.fullmatch(r"\d+", name):
            continue
        series.setdefault(name, set()).update(re.findall(r"(\w+)\s*!?=~?", matchers))
    return series, grouped


@pytest.fixture(scope="module")
def exported(start_module_stack: StackStarter) -> dict[str, set[str]]:
    """{sample name: its label names} across every service of a stack that has done some work."""
    stack = start_module_stack("grafana")
    resource_id = stack.upload(make_mp3(1, title="for the metrics")).json()["id"]
    stack.wait_permanent(resource_id, timeout=30)

    def scrape() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for service in stack.services:
            text = stack.http.get(f"{service.url}/metrics").text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    found.setdefault(sample.name, set()).update(sample.labels)
        return found

    # The parked-message and queue gauges appear once the broker link's watcher has looked
    # (every 10 s).
    watched = {"dead_letter_messages", "queue_consumers", "outbox_events_pending"}

    def all_watched() -> dict[str, set[str]] | None:
        found = scrape()
        return found if watched <= set(found) else None

    return wait_until(all_watched, 30)


@pytest.mark.parametrize(("panel", "expr"), panel_queries())
def test_every_panel_query_is_backed_by_a_real_series(
    exported: dict[str, set[str]], panel: str, expr: str
) -> None:
    series, grouped = series_and_labels(expr)
    assert series, f"{panel}: no series in {expr!r}"
    labels_seen: set[str] = set()
    for name, labels in series.items():
        assert name in exported, f"{panel}: {name} is not exported"
        assert labels <= exported[name], f"{panel}: {name} has no {labels - exported[name]}"
        labels_seen |= exported[name]
    assert grouped <= labels_seen | TARGET_LABELS, f"{panel}: no {grouped - labels_seen}"


@pytest.fixture(scope="module")
def promtool() -> Path:
    """Debian's promtool, from its package unpacked into .tools/ (no daemon installed)."""
    binary = TOOLS / "usr" / "bin" / "promtool"
    if not binary.exists():
        TOOLS.mkdir(parents=True, exist_ok=True)
        download = ["apt-get", "download", "prometheus"]
        if subprocess.run(download, cwd=TOOLS).returncode != 0:  # no package lists yet
            subprocess.run(["apt-get", "update", "-q"], check=True)
            subprocess.run(download, cwd=TOOLS, check=True)
        package = next(TOOLS.glob("prometheus_*.deb"))
        subprocess.run(["dpkg", "-x", str(package), str(TOOLS)], check=True)
        package.unlink()
    return binary


def test_the_prometheus_config_validates(promtool: Path) -> None:
    checked = subprocess.run(
        [str(promtool), "check", "config", str(PROMETHEUS_CONFIG)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout + checked.stderr


def test_the_alert_rules_validate_and_fire_as_their_unit_tests_say(promtool: Path) -> None:
    """StorageBreakerOpen after a minute OPEN, MessagesParked at once, OutboxBacklogGrowing
    after five minutes of growth, NoProcessorConsuming after a minute without one; none
    before (docker/prometheus/alerts.test.yml, run by promtool as Prometheus evaluates)."""
    for command in (["check", "rules", ALERTS.name], ["test", "rules", ALERT_TESTS.name]):
        run = subprocess.run(
            [str(promtool), *command], cwd=ALERTS.parent, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert "SUCCESS" in run.stdout + run.stderr
