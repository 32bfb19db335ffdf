"""The scaling rule bench/autoscale.py runs: KEDA's and the HPA's arithmetic, decision by decision,
and the rule read from deploy/kubernetes (the service test runs it against real workers)."""

from __future__ import annotations

from bench.autoscale import Behavior, Hpa, KedaRule, Policy, Trigger, count
from jobs import keys

RULE = KedaRule(
    triggers=(Trigger("bulk", "lane", 256, 0), Trigger("in-hand", "running", 192, 0)),
    min_replicas=1,
    max_replicas=8,
    polling_s=5,
    cooldown_s=300,
    up=Behavior(0, (Policy("Pods", 4, 15),)),
    down=Behavior(120, (Policy("Percent", 50, 60),)),
    grace_s=30,
)


def metrics(bulk: int = 0, in_hand: int = 0) -> dict[str, int]:
    return {"bulk": bulk, "in-hand": in_hand}


def test_the_rule_is_read_from_the_manifests_keda_is_given():
    rule = KedaRule.from_manifests()
    assert {t.key for t in rule.triggers} == {*(keys.lane(lane) for lane in keys.PREDICT_QUEUES), keys.RUNNING_JOBS}
    assert all(t.target > 0 for t in rule.triggers)
    assert 1 <= rule.min_replicas < rule.max_replicas
    assert rule.down.window_s > rule.polling_s and rule.grace_s > 0
    quick = rule.quickened(12)
    assert quick.down.window_s == rule.down.window_s / 12 and quick.grace_s == rule.grace_s


def test_each_trigger_asks_for_ceil_of_value_over_target_and_the_largest_wins():
    hpa = Hpa(RULE)
    assert hpa.wanted(metrics(bulk=1000), current=1) == 4  # ceil(1000 / 256)
    assert hpa.wanted(metrics(bulk=300, in_hand=600), current=1) == 4  # ceil(600 / 192)
    assert hpa.wanted(metrics(bulk=1000), current=4) == 4  # within the HPA's 10% tolerance: no change
    assert hpa.wanted(metrics(bulk=1200), current=4) == 5  # 17% over: ceil(1200 / 256)


def test_scaling_up_is_bounded_by_the_maximum_and_the_pods_policy():
    hpa = Hpa(RULE)
    assert hpa.decide(metrics(bulk=1000), current=1, now=0) == 4
    assert hpa.decide(metrics(bulk=10_000), current=4, now=5) == 5  # at most 4 more per 15 s
    assert hpa.decide(metrics(bulk=10_000), current=5, now=16) == 8  # the maximum


def test_scaling_down_waits_for_the_window_then_halves_at_most_per_period():
    hpa = Hpa(RULE)
    assert hpa.decide(metrics(bulk=2048), current=8, now=0) == 8
    assert hpa.decide(metrics(), current=8, now=60) == 8  # 8 was recommended within the window
    assert hpa.decide(metrics(), current=8, now=121) == 4  # the window passed: half at most
    assert hpa.decide(metrics(), current=4, now=150) == 4  # the policy's period is not over
    assert hpa.decide(metrics(), current=4, now=182) == 2
    assert hpa.decide(metrics(), current=2, now=243) == 1  # never below the minimum
    assert hpa.decide(metrics(), current=1, now=400) == 1


def test_keda_scales_from_zero_on_activation_and_to_zero_after_the_cooldown():
    rule = KedaRule(
        triggers=(Trigger("bulk", "lane", 256, 10),),
        min_replicas=0,
        max_replicas=8,
        polling_s=5,
        cooldown_s=300,
        up=Behavior(0, ()),
        down=Behavior(0, ()),
        grace_s=30,
    )
    hpa = Hpa(rule)
    assert hpa.decide({"bulk": 10}, current=0, now=0) == 0  # not above the activation threshold
    assert hpa.decide({"bulk": 11}, current=0, now=5) == 1
    assert hpa.decide({"bulk": 0}, current=1, now=200) == 1  # inactive, but not for the cooldown yet
    assert hpa.decide({"bulk": 0}, current=1, now=305) == 0


def test_keys_are_counted_as_kedas_redis_scaler_counts_them(redis_client):
    redis_client.rpush("a-list", "x", "y")
    redis_client.zadd("a-zset", {"x": 1, "y": 2, "z": 3})
    assert [count(redis_client, key) for key in ("a-list", "a-zset", "missing")] == [2, 3, 0]
