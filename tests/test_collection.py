"""Guard against tests that exist but never run (a folder pytest skips, a misnamed class, a shadowed name).

Every ``tests/**/test_*.py`` file and every ``test_*`` function in it (module level or in a ``Test*``
class) must be collected by a whole-suite run. Runs of a subset (``pytest tests/unit``, ``-k``) skip the
check: only the whole suite can be compared with what is on disk.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.collection_guard import COLLECTED, whole_suite

TESTS = Path(__file__).parent


def defined_tests(path: Path) -> set[str]:
    """Names of the test functions a file defines, as pytest would name them (Class::function)."""
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names |= {
                f"{node.name}::{item.name}"
                for item in node.body
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test")
            }
    return names


def test_every_test_file_and_function_is_collected(request):
    if not whole_suite(request.config):
        pytest.skip("only a whole-suite run can be compared with the test files on disk")
    collected = request.config.stash[COLLECTED]
    files = sorted(p for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts)
    missing_files = [str(p.relative_to(TESTS.parent)) for p in files if p not in collected]
    assert missing_files == [], f"test files pytest never collected (norecursedirs? naming?): {missing_files}"
    missing = {
        str(p.relative_to(TESTS.parent)): sorted(defined_tests(p) - collected[p])
        for p in files
        if defined_tests(p) - collected[p]
    }
    assert missing == {}, f"test functions defined but not collected (shadowed name? __init__ in a class?): {missing}"
