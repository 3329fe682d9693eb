"""Every package keeps its errors in its own errors.py, each with a one-line docstring and a lakesync base."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

from lakesync.errors import LakesyncError

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("lakesync", "changes", "connectors", "streaming", "batch", "observability", "deploy")
ERROR_MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for package in PACKAGES
    for path in (ROOT / package).rglob("errors.py")
)


def _exception_classes(tree: ast.Module) -> list[str]:
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and (node.name.endswith("Error") or node.name.endswith("Exception"))
    ]


def test_no_error_class_is_defined_outside_an_errors_module() -> None:
    """An error is found by its package's errors.py alone."""
    stray = [
        f"{path.relative_to(ROOT)}: {name}"
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "errors.py"
        for name in _exception_classes(ast.parse(path.read_text()))
    ]
    assert stray == []


@pytest.mark.parametrize("module_name", ERROR_MODULES)
def test_each_error_has_a_one_line_docstring_and_a_lakesync_base(module_name: str) -> None:
    module = importlib.import_module(module_name)
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module_name]
    assert classes
    for error in classes:
        assert issubclass(error, LakesyncError), error
        doc = error.__doc__ or ""
        assert doc.strip() and "\n" not in doc.strip(), error


def test_errors_modules_import_no_spark() -> None:
    """The CLI classifies any error by its class without loading pyspark (the consumer image has none)."""
    for module_name in ERROR_MODULES:
        source = (ROOT / Path(*module_name.split("."))).with_suffix(".py").read_text()
        assert "pyspark" not in source, module_name
