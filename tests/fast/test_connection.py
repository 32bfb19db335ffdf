"""REDIS_URL's two forms: a plain Redis URL, and a Sentinel URL that every client of the service
(redis-py, Celery through kombu, the rate limit) follows to the primary."""

from __future__ import annotations

import base64

import pytest
import redis

from jobs import keys, queue
from jobs.connection import RedisUrlError, SentinelUrl, celery_broker, parse_sentinel_url
from jobs.transport import Channel
from tests.conftest import png_bytes
from web import create_app


@pytest.mark.parametrize(
    ("url", "read"),
    [
        (
            "redis+sentinel://s1:26379,s2:26380,s3/mymaster/2",
            SentinelUrl((("s1", 26379), ("s2", 26380), ("s3", 26379)), "mymaster", 2),
        ),
        ("redis+sentinel://s1/mymaster", SentinelUrl((("s1", 26379),), "mymaster", 0)),
        (
            "redis+sentinel://:p%40ss@s1:1,[::1]:2/m/0?sentinel_password=sp",
            SentinelUrl((("s1", 1), ("::1", 2)), "m", 0, None, "p@ss", "sp"),
        ),
        ("redis+sentinel://app:pw@s1:1/m/", SentinelUrl((("s1", 1),), "m", 0, "app", "pw")),
    ],
)
def test_a_sentinel_url_names_the_sentinels_the_primary_and_the_database(url, read):
    assert parse_sentinel_url(url) == read


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel:///mymaster/0", "a sentinel host is missing"),
        ("redis+sentinel://s1:26379,/mymaster/0", "a sentinel host is missing"),
        ("redis+sentinel://s1:port/mymaster/0", "'port' is not a port number"),
        ("redis+sentinel://s1:70000/mymaster/0", "'70000' is not a port number"),
        ("redis+sentinel://s1:26379", "no primary name"),
        ("redis+sentinel://s1:26379/mymaster/zero", "the database must be a number, not 'zero'"),
        ("redis+sentinel://s1:26379/mymaster/0/extra", "the database must be a number"),
        ("redis+sentinel://s1:26379/mymaster/0?ssl=true", "unknown option 'ssl'"),
    ],
)
def test_a_malformed_sentinel_url_says_what_is_wrong_and_what_is_expected(url, says):
    with pytest.raises(RedisUrlError, match="expected redis\\+sentinel://") as raised:
        parse_sentinel_url(url)
    assert says in str(raised.value)


def test_a_malformed_sentinel_url_stops_the_web_at_start_without_showing_the_password():
    with pytest.raises(RedisUrlError) as raised:
        create_app({"REDIS_URL": "redis+sentinel://:hunter2@s1:x/mymaster/0"})
    assert "not a port number" in str(raised.value) and "hunter2" not in str(raised.value)


def test_celery_gets_one_kombu_sentinel_url_per_sentinel_and_the_primary_name():
    broker, options = celery_broker("redis+sentinel://:p%40ss@s1:1,s2:2/mymaster/3?sentinel_password=sp")
    assert broker == "sentinel://:p%40ss@s1:1/3;sentinel://:p%40ss@s2:2/3"
    assert options == {"master_name": "mymaster", "sentinel_kwargs": {"password": "sp"}}
    assert celery_broker("redis://h:6379/0") == ("redis://h:6379/0", {})


def test_every_client_finds_the_primary_through_the_sentinels(replicated, mnist):
    primary = redis.Redis(port=replicated.primary.port)
    primary.flushall()
    client = queue.connect(replicated.url)
    client.set("digits:test:probe", "1")
    assert primary.get("digits:test:probe") == b"1"

    celery = queue.create_celery(replicated.url)
    celery.send_task(queue.TRAIN_TASK, args=["x"], queue=keys.TRAIN_QUEUE)
    assert primary.llen(keys.TRAIN_QUEUE) == 1  # kombu's sentinel transport, on the primary

    app = create_app({"REDIS_URL": replicated.url, "RATE_LIMIT": "1000 per second", "SECRET_KEY": "k" * 40})
    image = base64.b64encode(png_bytes(mnist.x_test[0])).decode()
    for _ in range(2):  # the second is counted by the rate limit: its client has a job pending
        answer = app.test_client().post("/api/v1/predictions", json={"images": [image]})
        assert answer.status_code == 202, answer.json
    job_id = answer.json["jobs"][0]["job_id"]
    assert primary.hget(keys.job(job_id), "status") == b"queued"
    assert primary.keys(f"{keys.RATE_LIMIT_PREFIX}*"), "the rate limit counts on the primary too"


def test_plain_redis_urls_use_the_transport_that_keeps_one_client_per_channel(redis_server):
    app = queue.create_celery(redis_server.url.replace("/0", "/1"))
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert isinstance(channel, Channel) and first is second
        assert first.ping()
    tls = queue.create_celery("rediss://127.0.0.1:1/0?ssl_cert_reqs=required")
    assert tls.connection_for_write().transport_cls == "rediss"  # kombu's own, which knows TLS
