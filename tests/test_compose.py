"""docker-compose.yml cannot run here (no Docker engine), so check its shape: it parses and is scalable."""

from __future__ import annotations

from pathlib import Path

import yaml

from stack.processes import PREDICT_QUEUES

ROOT = Path(__file__).resolve().parent.parent


def test_compose_names_the_production_services():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "web", "worker", "trainer", "flower"} <= set(services)

    redis_command = services["redis"]["command"]
    assert "--appendonly" in redis_command and "yes" in redis_command
    assert (
        redis_command[redis_command.index("--maxmemory-policy") + 1] == "noeviction" and "--maxmemory" in redis_command
    )
    assert {"SECRET_KEY", "DIGITS_ADMIN_TOKEN"} <= set(services["web"]["environment"])
    assert "--worker-class" not in services["web"]["command"]  # the gevent worker comes from stack/gunicorn_conf.py
    assert services["web"]["command"][:2] == ["gunicorn", "web:create_app()"]
    assert services["worker"]["command"][:4] == ["celery", "-A", "worker", "worker"]
    assert PREDICT_QUEUES in services["worker"]["command"] and "train" in services["trainer"]["command"]
    # A worker that can be scaled: no fixed name or published port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]
    for name in ("web", "worker", "trainer", "flower"):
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_the_image_installs_the_packages_compose_runs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("model", "web", "worker", "jobs"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert "settings.py" in dockerfile.split("RUN pip install")[0]  # every process reads its settings there


def test_every_service_is_started_again_when_it_dies():
    """A worker whose lane consumer died, or that went past WORKER_MEMORY_MB, exits non-zero for this."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("redis", "web", "worker", "trainer"):
        assert services[name].get("restart") in ("always", "unless-stopped", "on-failure"), name


def test_flower_is_not_published_without_authentication():
    flower = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["flower"]
    for port in flower.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"Flower published beyond this host: {port}"
    command = " ".join(flower["command"])
    assert "--basic-auth" in command and "FLOWER_BASIC_AUTH" in command
    assert "exit 1" in command, "Flower must refuse to start without credentials"
