"""Docker helpers without Docker: which base image and how SAM is told, the stand-in recipe and its hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lambda_support import ROOT
from tests.samlocal import containers


def test_image_choice_turns_into_sam_options():
    local = containers.choose_image("local", "x86_64")  # asks Docker nothing
    assert local.sam_args() == ["--invoke-image", containers.STANDIN_IMAGE, "--skip-pull-image"]
    official = containers.ImageChoice("official", containers.official_image("x86_64"), "here")
    assert official.image == "public.ecr.aws/lambda/python:3.13-x86_64"
    assert official.sam_args() == ["--skip-pull-image"]
    assert containers.ImageChoice("official", official.image, "pull", pull=True).sam_args() == []
    with pytest.raises(ValueError, match="auto, official or local"):
        containers.choose_image("latest", "x86_64")


def test_recipe_hash_follows_the_recipe_files(tmp_path):
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    (recipe / "requirements.txt").write_text("awslambdaric==4.2.2\n")
    before = containers.recipe_hash(recipe, "x86_64")
    assert containers.recipe_hash(recipe, "x86_64") == before
    assert containers.recipe_hash(recipe, "arm64") != before
    (recipe / "requirements.txt").write_text("awslambdaric==4.2.3\n")
    assert containers.recipe_hash(recipe, "x86_64") != before


def test_the_stand_in_recipe_is_complete():
    recipe = ROOT / "docker" / "lambda-python3.13"
    assert Path(recipe / "bootstrap").stat().st_mode & 0o111
    assert "/var/runtime/bootstrap.py" in (recipe / "bootstrap").read_text()
    requirements = (recipe / "requirements.txt").read_text()
    assert "awslambdaric==" in requirements and "boto3==" in requirements
