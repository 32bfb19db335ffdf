"""The cluster's histogram buckets as /metrics shows them (web/cluster_metrics.py). The scrape itself,
over gunicorn's processes and a real worker: tests/service/test_metrics.py."""

from __future__ import annotations

from web.cluster_metrics import cumulative


def test_cumulative_buckets_keep_unknown_bounds_and_end_in_inf():
    buckets = cumulative({"0.5": "2", "1": "3", "+Inf": "1", "0.75": "4"}, ("0.5", "1", "2"))
    assert buckets == [("0.5", 2.0), ("0.75", 6.0), ("1.0", 9.0), ("2.0", 9.0), ("+Inf", 10.0)]
    assert cumulative({}, ("1",)) == [("1.0", 0.0), ("+Inf", 0.0)]
