"""Log lines as jobs/logs.py writes them: JSON objects with only the known context fields, text lines
that cannot be forged. That the web writes them under gunicorn: tests/service/test_logs.py."""

from __future__ import annotations

import json
import logging

import pytest

from jobs.logs import JsonFormatter, TextFormatter, configure_logging


def record(message: str, **extra) -> logging.LogRecord:
    entry = logging.LogRecord("web.submit", logging.INFO, __file__, 1, message, None, None)
    entry.__dict__.update(extra)
    return entry


def test_json_lines_carry_the_context_fields_and_nothing_else():
    line = JsonFormatter().format(record("accepted 2", job_ids=["a", "b"], batch_id="c", password="x"))
    parsed = json.loads(line)
    assert parsed["message"] == "accepted 2" and parsed["level"] == "INFO" and parsed["logger"] == "web.submit"
    assert parsed["timestamp"].endswith("Z") and parsed["job_ids"] == ["a", "b"] and parsed["batch_id"] == "c"
    assert "password" not in parsed  # only the known context fields are written


def test_text_lines_cannot_be_forged_with_line_breaks():
    line = TextFormatter().format(record("GET /x\nFAKE 200", path="/x\r\nINFO forged"))
    assert "\n" not in line and "\r" not in line
    assert "GET /x\\nFAKE 200" in line and "path=/x\\r\\nINFO forged" in line


def test_configure_logging_replaces_its_own_handler_and_rejects_unknown_formats():
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        configure_logging("json")
        configure_logging("text")
        added = [h for h in root.handlers if h not in before]
        assert len(added) == 1 and isinstance(added[0].formatter, TextFormatter)
        with pytest.raises(ValueError, match="LOG_FORMAT"):
            configure_logging("xml")
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
