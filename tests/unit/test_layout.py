"""Unit tests mirror the package tree: the tests of `streaming/consumer/batch.py` are in
`tests/unit/streaming/consumer/`, and test helpers live in `tests/support/` only."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parent
ROOT = UNIT.parents[1]


def test_every_unit_test_folder_is_a_folder_of_the_package_tree() -> None:
    folders = {p.parent for p in UNIT.rglob("test_*.py")} - {UNIT}
    assert [str(f.relative_to(UNIT)) for f in folders if not (ROOT / f.relative_to(UNIT)).is_dir()] == []


def test_no_unit_test_sits_at_the_top_of_tests_unit() -> None:
    assert sorted(p.name for p in UNIT.glob("test_*.py")) == ["test_layout.py"]


def test_conftest_modules_export_no_helpers_to_tests() -> None:
    """Fixtures only: a helper a test imports comes from tests/support."""
    tests = [p for p in (ROOT / "tests").rglob("test_*.py") if p != Path(__file__).resolve()]
    assert [str(p.relative_to(ROOT)) for p in tests if "conftest import" in p.read_text()] == []
