"""The inference protocol's types are generated from its vendored spec, and stay so."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_the_protocol_types_are_what_the_vendored_spec_generates():
    check = [sys.executable, "web/inference_spec/generate.py", "--check"]
    result = subprocess.run(check, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
