"""The model store in a real Redis: immutable versions, activation notices, one seeding."""

from __future__ import annotations

import json
import threading

import pytest

from jobs import keys
from jobs.model_store import ModelStore, parse_version


def test_versions_are_numbered_and_immutable(redis_client):
    store = ModelStore(redis_client)
    v1 = store.add(b"first", {"arch": "seed", "test_accuracy": 0.98})
    v2 = store.add(b"second", {"arch": "default", "test_accuracy": 0.99})
    assert (v1, v2) == (1, 2)
    assert store.file(1) == b"first" and store.file(2) == b"second"
    card = store.card(2)
    assert card["version"] == 2 and card["arch"] == "default" and card["file_bytes"] == 6
    assert [c["version"] for c in store.cards()] == [1, 2]
    assert store.active_version() is None


def test_activate_announces_and_rejects_unknown(redis_client):
    store = ModelStore(redis_client)
    version = store.add(b"x", {})
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(keys.MODEL_ACTIVATED_CHANNEL)
    pubsub.get_message(timeout=1)
    store.activate(version)
    assert store.active_version() == version
    assert pubsub.get_message(timeout=2)["data"] == str(version).encode()
    with pytest.raises(KeyError):
        store.activate(99)


def test_seeding_happens_once_under_concurrency(redis_client, tmp_path):
    shipped = tmp_path / "default.keras"
    shipped.write_bytes(b"model bytes")
    shipped.with_suffix(".json").write_text(json.dumps({"arch": "default"}))
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(ModelStore(redis_client).ensure_seeded(shipped)))
        for _ in range(5)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = ModelStore(redis_client)
    assert results == [1] * 5 and store.versions() == [1]
    assert store.card(1)["origin"] == "shipped with the code"


@pytest.mark.parametrize("text", ["../../etc/passwd", "0", "-1", "1.5", "", "01", "1" * 11, "v1"])
def test_only_plain_positive_integers_are_versions(text):
    assert parse_version(text) is None


def test_parse_version_accepts_numbers():
    assert parse_version("12") == 12
