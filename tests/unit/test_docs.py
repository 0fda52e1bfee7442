"""docs/ agrees with the code it describes (the site itself is built with --strict by `make docs`)."""

from __future__ import annotations

import re

from jobgraph.sam.template import load_template
from tests.lambda_support import ROOT


def section(markdown: str, heading: str) -> str:
    """The text under ``## heading`` up to the next heading of the same level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.MULTILINE | re.DOTALL)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def test_deploy_md_lists_every_output_of_template_yaml_and_no_other():
    table = section((ROOT / "docs" / "deploy.md").read_text(), "Outputs")
    first_column = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    documented = [name for cell in first_column for name in re.findall(r"`(\w+)`", cell)]
    assert len(documented) == len(set(documented)), "an output is listed twice"
    assert set(documented) == set(load_template(ROOT / "template.yaml")["Outputs"])
