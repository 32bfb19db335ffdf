"""The Grafana dashboard (deploy/grafana/): its JSON is what its script writes, and every metric
its PromQL queries name is in a live scrape of a real stack that has ended jobs."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from stack.processes import ROOT
from tests.conftest import png_bytes
from tests.service.helpers import submit, wait_for

DASHBOARD = ROOT / "deploy" / "grafana" / "digits-dashboard.json"
GENERATOR = ROOT / "deploy" / "grafana" / "generate.py"

# PromQL's words that look like names but are not metrics (operators and modifiers).
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w.:])[a-zA-Z_:][\w:]*(?![\w:])(?!\s*\()")  # not inside a number, not a function call


def metric_names(query: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label matchers,
    ranges, groupings, function names and keywords are taken out."""
    text = _STRING.sub('""', query)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    return {name for name in _NAME.findall(text) if name not in KEYWORDS}


def queries() -> list[str]:
    document = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in document["panels"] for target in panel["targets"]]


def test_the_parser_finds_the_metrics_and_nothing_else():
    query = (
        'histogram_quantile(0.95, max by (le, lane) (rate(digits_job_queue_wait_seconds_bucket{lane="predict"}[5m])))'
    )
    assert metric_names(query) == {"digits_job_queue_wait_seconds_bucket"}
    assert metric_names("max(rate(a_sum[5m])) / max(rate(b:count[5m] offset 1h)) > 1e3 and on (x) c") == {
        "a_sum",
        "b:count",
        "c",
    }
    assert metric_names('sum without (instance) (up{job="x"}) or vector(0)') == {"up"}


def test_the_committed_dashboard_is_what_the_script_writes():
    assert subprocess.run([sys.executable, str(GENERATOR), "--check"], check=False).returncode == 0


@pytest.mark.slow
def test_every_metric_the_dashboard_queries_is_in_a_live_scrape(stack, mnist):
    images = [png_bytes(mnist.x_test[0]), png_bytes(mnist.x_test[1])[:60]]  # one read, one that fails in the worker
    for job_id in submit(stack.web_url, images):
        wait_for(stack.web_url, job_id)
    scrape = requests.get(f"{stack.web_url}/metrics", timeout=10).text
    scraped = {sample.name for family in text_string_to_metric_families(scrape) for sample in family.samples}

    named = set().union(*(metric_names(query) for query in queries()))

    assert len(queries()) >= 15 and len(named) >= 15
    assert named - scraped == set()
