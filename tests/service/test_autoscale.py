"""KEDA's rule for the predict workers (deploy/kubernetes/base/autoscaling.yaml), run against a
live Redis with real workers started and stopped (SIGTERM) while a load rises and falls: the
workers scale out soon after a backlog, back in once it drains, and no job is lost, answered
twice or run twice. The run is bench/autoscale.py's, with the rule's durations divided by 12 (a
10 s scale-down window instead of 120 s) so it takes about a minute; `make bench-autoscale`
prints the same figures.
"""

from __future__ import annotations

import pytest

from bench import autoscale
from tests.conftest import OUTPUT

pytestmark = pytest.mark.slow

SCALE_OUT_S = 30  # the goal: a worker more ready within this of a backlog


def test_workers_scale_out_on_a_backlog_and_in_when_it_drains_losing_nothing():
    report = autoscale.run(OUTPUT / "test_autoscale", speedup=12, load_s=20, clients=2, give_up_s=150)
    print("\n" + "\n".join(report.lines()))
    assert report.accepted > 0 and report.backlog_at is not None, "the load never made a backlog"
    assert report.scale_out_s is not None, "no worker was added"
    assert report.scale_out_s <= SCALE_OUT_S, f"a worker more was ready {report.scale_out_s:.1f} s after the backlog"
    assert report.peak_replicas > report.rule.min_replicas
    # Back at the minimum: no sooner than the scale-down window allows, and within a few policy periods more.
    assert report.scale_in_s is not None, "the workers did not scale back in"
    down = report.rule.down
    assert report.scale_in_s <= down.window_s + 4 * max(p.period_s for p in down.policies) + 30
    assert not report.lost, f"{len(report.lost)} accepted jobs did not succeed: {report.statuses}"
    assert not report.answered_twice, f"{len(report.answered_twice)} jobs answered twice"
    assert not report.run_twice, f"{len(report.run_twice)} jobs taken over from a worker stopped holding them"
