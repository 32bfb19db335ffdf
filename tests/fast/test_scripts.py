"""The Lua scripts (jobs/scripts/): each file has its header and exactly one wrapper.

What each script does is tested through its callers against a real Redis (test_records.py,
test_lanes.py, test_feedback.py)."""

from __future__ import annotations

from importlib import resources

from jobs import scripts


def test_every_script_file_has_a_header_naming_its_arguments_and_exactly_one_wrapper():
    files = sorted(p.name.removesuffix(".lua") for p in resources.files(scripts).iterdir() if p.name.endswith(".lua"))
    wrappers = sorted(wrapper.name for wrapper in scripts.Script.__subclasses__())
    assert files == wrappers and len(files) >= 8
    for name in files:
        header = scripts.source(name).partition("\nlocal ")[0]  # the comment before the first line of code
        assert header.startswith(f"-- {name}: ")
        assert all(f"\n-- {part} " in header for part in ("KEYS", "ARGV", "Returns")), name
