"""Settings: one definition each, read from the environment with clear errors, and the documented table true to them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from settings import SettingError, Settings

CONFIGURATION_PAGE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def service_table() -> dict[str, str]:
    """Variable name -> default cell, from the first table of docs/configuration.md (the service's settings)."""
    page = CONFIGURATION_PAGE.read_text()
    first_table = re.search(r"\| variable \| default \| meaning \|\n\|---\|---\|---\|\n((?:\|.*\n)+)", page)
    rows = {}
    for line in first_table.group(1).splitlines():
        names_cell, default_cell = line.split("|")[1:3]
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", names_cell):
            rows[name] = default_cell
    return rows


def shown(default: object) -> str:
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def test_the_configuration_page_documents_every_setting_and_no_other():
    documented = service_table()
    assert set(documented) == set(Settings.variables()), "docs/configuration.md's table and settings.py differ"
    for name, field in Settings.variables().items():
        if field.default != "":
            assert f"`{shown(field.default)}`" in documented[name], (
                f"{name}: docs/configuration.md's default is not {field.default!r}"
            )


def test_values_come_from_the_environment_typed():
    settings = Settings.from_environ(
        {
            "MAX_IMAGE_BYTES": "5",
            "PREDICTIONS_NEED_TOKEN": "Yes",
            "PREDICT_BATCH_BUDGET_MS": "5.5",
            "LOG_FORMAT": "TEXT",
        }
    )
    assert settings.max_image_bytes == 5 and settings.predictions_need_token is True
    assert settings.predict_batch_budget_ms == 5.5 and settings.log_format == "text"
    assert Settings.from_environ({}) == Settings()  # nothing set: every default


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("MAX_IMAGE_BYTES", "ten", "MAX_IMAGE_BYTES must be a whole number"),
        ("MAX_WAIT_SECONDS", "-1", "MAX_WAIT_SECONDS must not be negative"),
        ("PREDICTIONS_NEED_TOKEN", "maybe", "PREDICTIONS_NEED_TOKEN must be true or false"),
        ("MODEL_BACKEND", "torch", "MODEL_BACKEND must be one of litert, tensorflow"),
    ],
)
def test_a_value_that_does_not_parse_names_the_variable(variable, value, says):
    with pytest.raises(SettingError, match=says):
        Settings.from_environ({variable: value})


def test_overrides_by_variable_name():
    settings = Settings().overridden({"RATE_LIMIT": "", "TESTING": True})
    assert settings.rate_limit == "" and settings.max_image_bytes == Settings().max_image_bytes
