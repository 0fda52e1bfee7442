"""`make mutation` scores only the functions tests/mutation_score.py's SCOPE names: a function moved or renamed
would silently leave the score (DynamoRunStore._update_if became TableAccess._update_if in a refactor and was
counted nowhere). Every scoped name must be a function of its module, and every module mutmut mutates."""

from __future__ import annotations

import importlib
import inspect
import tomllib
from pathlib import Path

import pytest

from tests.mutation_score import SCOPE

ROOT = Path(__file__).resolve().parents[2]


def _defined(module, dotted: str) -> bool:
    owner = module
    for part in dotted.split("."):
        owner = vars(owner).get(part)
        if owner is None:
            return False
    return inspect.isfunction(owner)


@pytest.mark.parametrize("module_name", sorted(SCOPE))
def test_every_scoped_function_exists_where_the_score_looks_for_it(module_name):
    module = importlib.import_module(module_name)
    missing = sorted(name for name in SCOPE[module_name] or () if not _defined(module, name))
    assert not missing, f"{module_name} has no {missing}: point tests/mutation_score.py SCOPE at where they moved"


def test_the_scored_modules_are_the_mutated_files():
    mutated = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]
    as_modules = {path.removeprefix("src/").removesuffix(".py").replace("/", ".") for path in mutated}
    assert as_modules == set(SCOPE)
