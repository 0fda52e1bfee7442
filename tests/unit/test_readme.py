"""README and docs/ name only what exists: the command table matches the parser and the Makefile, and every
make target, jobgraph command, module and repository path they mention is there (issue 18.7)."""

from __future__ import annotations

import argparse
import importlib.util
import re

import pytest

from jobgraph.cli.main import build_parser
from tests.lambda_support import ROOT

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
MAKEFILE = (ROOT / "Makefile").read_text()


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


COMMANDS = subcommands(build_parser())
TARGETS = set(re.findall(r"^([a-z][\w-]*)\s*:(?!=)", MAKEFILE, re.MULTILINE))
DOCUMENTED_TARGETS = set(re.findall(r"^## make ([a-z][\w-]*)", MAKEFILE, re.MULTILINE))


def table_rows() -> list[str]:
    text = README.read_text()
    table = text[text.index("## Every command and make target") :]
    return re.findall(r"^\| `([^`]+)` \|", table, re.MULTILINE)


def test_readme_is_at_most_250_lines():
    assert len(README.read_text().splitlines()) <= 250


def test_the_table_lists_every_jobgraph_command_once_and_no_other():
    rows = [row.split()[1] for row in table_rows() if row.startswith("jobgraph ")]
    assert len(rows) == len(set(rows)), "a command is listed twice"
    assert set(rows) == set(COMMANDS)


def test_the_table_lists_every_documented_make_target_once_and_no_other():
    rows = [row.split()[1] for row in table_rows() if row.startswith("make ")]
    assert len(rows) == len(set(rows)), "a target is listed twice"
    assert DOCUMENTED_TARGETS and set(rows) == DOCUMENTED_TARGETS


def code(markdown: str) -> list[str]:
    """The code a page shows: fenced blocks and inline code spans (prose is not checked)."""
    fenced = re.findall(r"^```[^\n]*\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL))
    return fenced + inline


def mentions(pattern: str) -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for snippet in code(page.read_text()):
            for line in snippet.splitlines():
                line = line.split(" #")[0]  # a shell comment is prose
                found += [(page.name, match) for match in re.findall(pattern, line)]
    return found


@pytest.mark.parametrize("what", ["make", "jobgraph"])
def test_every_command_named_exists(what):
    if what == "make":
        # a command line (its start, after a shell operator or a prompt), not an output line's "(make does ...)"
        named = mentions(r"(?:^\s*|[;&|]\s*|\$ )make ([a-z][\w-]*)")
        missing = [(page, target) for page, target in named if target not in TARGETS]
    else:
        # a command line, not an output line that says "jobgraph did not ..."
        named = mentions(r"(?:^|[;&|(]\s*|\$ |bin/)jobgraph ([a-z][\w-]*)(?: ([a-z][\w-]*))?")
        missing = [
            (page, " ".join(words).strip())
            for page, words in named
            if words[0] not in COMMANDS
            or (words[1] and subcommands(COMMANDS[words[0]]) and words[1] not in subcommands(COMMANDS[words[0]]))
        ]
    assert named, f"no {what} command found: the scan is broken"
    assert not missing, f"named but not there: {missing}"


PATH = r"(?<![\w./-])((?:src|tests|scripts|benchmarks|functions|layers|templates|statemachine|docker|docs|events|sequences)/[\w./*-]*\w)"


def exists(path: str) -> bool:
    return any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()


def test_every_repository_path_named_exists():
    named = mentions(PATH)
    assert len(named) > 20, "the scan is broken"
    assert not [(page, path) for page, path in named if not exists(path)]


NOT_MODULES = {"jobgraph.orchestrator"}  # the EventBridge source triggers put events under (docs/triggers.md)


def test_every_jobgraph_module_named_exists():
    # jobgraph.asl.json (a file) and jobgraph.failed-run/1 (a schema name) are not modules: the look-arounds skip them
    named = mentions(r"(?<![\w./-])(jobgraph(?:\.[A-Za-z_]\w*)+)(?![\w/.-])")
    named = [(page, dotted) for page, dotted in named if dotted not in NOT_MODULES]
    assert named, "the scan is broken"
    missing = []
    for page, dotted in named:
        # jobgraph.a.b may be a module or a name inside one: the longest importable prefix must hold the rest
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            module = ".".join(parts[:cut])
            try:
                if importlib.util.find_spec(module) is not None:
                    break
            except ModuleNotFoundError:  # a name inside a module, not a submodule
                continue
        rest = parts[cut:]
        if rest:
            obj = importlib.import_module(module)
            for name in rest:
                obj = getattr(obj, name, None)
            if obj is None:
                missing.append((page, dotted))
    assert not missing, f"named but not there: {missing}"
