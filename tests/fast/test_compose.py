"""docker-compose.yml cannot run here (no Docker engine), so check its shape: it parses and is scalable."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version

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
    assert "settings.py" in dockerfile.split("RUN pip install --no-cache-dir --no-deps")[0]  # every process reads it


def test_every_service_is_started_again_when_it_dies():
    """A worker whose lane consumer died, or that went past WORKER_MEMORY_MB, exits non-zero for this."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("redis", "web", "grpc", "worker", "trainer"):
        assert services[name].get("restart") in ("always", "unless-stopped", "on-failure"), name


def test_the_grpc_server_is_checked_by_its_health_service_and_given_time_to_drain():
    from settings import Settings
    from web.grpc_server import GRACE_S

    grpc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grpc"]
    test = grpc["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "-m", "web.grpc_health"] and test[4].endswith(":8001")
    assert float(grpc["stop_grace_period"].removesuffix("s")) >= Settings().drain_seconds + GRACE_S + 5


def test_flower_is_not_published_without_authentication():
    flower = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["flower"]
    for port in flower.get("ports", []):
        assert str(port).startswith("127.0.0.1:"), f"Flower published beyond this host: {port}"
    command = " ".join(flower["command"])
    assert "--basic-auth" in command and "FLOWER_BASIC_AUTH" in command
    assert "exit 1" in command, "Flower must refuse to start without credentials"


def test_the_image_installs_every_dependency_from_the_lock_file_with_hashes():
    dockerfile = (ROOT / "Dockerfile").read_text()
    lock_step = dockerfile.index("pip install --no-cache-dir --require-hashes -r requirements.lock")
    assert lock_step < dockerfile.index("pip install --no-cache-dir --no-deps ."), (
        "the project must bring no dependency"
    )


def locked() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, _, version = line.split(" ")[0].partition("==")
            pins[name.lower().replace("_", "-")] = Version(version)
    return pins


def test_the_lock_file_meets_every_requirement_of_the_project():
    """A dependency added or raised in pyproject.toml without compiling the lock again fails here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    image = {"python_version": "3.11", "platform_machine": "x86_64", "sys_platform": "linux", "extra": "ops"}
    for text in project["dependencies"] + project["optional-dependencies"]["ops"]:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate(image):
            continue
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in requirements.lock"
        assert pins[name] in requirement.specifier, f"{name}=={pins[name]} is locked; pyproject asks {requirement}"


@pytest.mark.parametrize(
    ("name", "floor"),
    [("keras", "3.12"), ("skops", "0.13"), ("pillow", "11.3"), ("flask", "3.1.1"), ("gunicorn", "23"),
     ("requests", "2.32.4")],
)  # fmt: skip
def test_dependencies_are_above_their_published_advisories(name, floor):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (requirement,) = [Requirement(text) for text in project["dependencies"] if Requirement(text).name.lower() == name]
    floors = [Version(clause.version) for clause in requirement.specifier if clause.operator == ">="]
    assert floors and max(floors) >= Version(floor), f"{requirement} admits versions below {floor}"
    assert locked()[name] >= Version(floor)
