"""docker-compose.yml cannot run here (no Docker engine), so check its shape: it parses and is scalable."""

from __future__ import annotations

from pathlib import Path

import yaml

from stack.processes import PREDICT_QUEUES

ROOT = Path(__file__).resolve().parents[2]


def test_compose_names_the_production_services():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "web", "grpc", "worker", "trainer", "flower"} <= set(services)

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
    assert (
        services["grpc"]["command"][:3] == ["python", "-m", "web.grpc_server"]
        and "8001:8001" in services["grpc"]["ports"]
    )
    for name in ("web", "grpc", "worker", "trainer", "flower"):
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"


def test_the_image_installs_the_packages_compose_runs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("model", "web", "worker", "jobs"):
        assert f"COPY {package} ./{package}" in dockerfile
    assert "settings.py" in dockerfile.split("RUN pip install")[0]  # every process reads its settings there
