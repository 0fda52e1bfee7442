"""Records what pytest collects (before any -m/-k deselection), for tests/test_collection.py."""

from __future__ import annotations

from pathlib import Path

import pytest

COLLECTED = pytest.StashKey[dict[Path, set[str]]]()


def record(item: pytest.Item) -> None:
    collected = item.config.stash.setdefault(COLLECTED, {})
    # "Class::function" or "function", without parametrisation (whose ids may hold "::" themselves)
    name = getattr(item, "originalname", item.name)
    if getattr(item, "cls", None) is not None:
        name = f"{item.cls.__name__}::{name}"
    collected.setdefault(Path(item.path), set()).add(name)


def whole_suite(config: pytest.Config) -> bool:
    """True when pytest was asked for the whole suite (no file, folder or -k given)."""
    tests = Path(config.rootpath, "tests")
    args = [Path(config.invocation_params.dir, a).resolve() for a in config.args]
    return not config.getoption("keyword") and all(a in (tests, config.rootpath) for a in args)


def summary(config: pytest.Config) -> str:
    """One line for the end of the run: how many tests were collected per top-level folder."""
    per_folder: dict[str, int] = {}
    for path, names in config.stash.get(COLLECTED, {}).items():
        folder = path.parent.name if path.parent.name != "tests" else "."
        per_folder[folder] = per_folder.get(folder, 0) + len(names)
    parts = ", ".join(f"tests/{folder}: {count}" for folder, count in sorted(per_folder.items()))
    return f"collected test functions: {sum(per_folder.values())} ({parts})"
