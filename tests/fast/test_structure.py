"""One owner per rule: settings come from settings.py, Redis keys from jobs/keys.py, nowhere else."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ("web", "worker", "jobs", "model")


def sources(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def test_the_service_reads_no_environment_variable_outside_settings():
    # Writing TensorFlow's own variable (from the setting) before it is imported is not reading one.
    exempt = 'os.environ["TF_CPP_MIN_LOG_LEVEL"] = level'
    readers = [
        str(path.relative_to(ROOT))
        for path in sources(*SERVICE)
        if re.search(r"os\.environ|getenv\(", path.read_text().replace(exempt, ""))
    ]
    assert readers == [], "read these settings from settings.py"


def test_no_redis_key_is_spelled_outside_jobs_keys():
    spellers = [
        str(path.relative_to(ROOT))
        for path in sources(*SERVICE, "stack", "bench", "client")
        if path != ROOT / "jobs" / "keys.py" and re.search(r"""["']digits:""", path.read_text())
    ]
    assert spellers == [], "name these keys in jobs/keys.py"
