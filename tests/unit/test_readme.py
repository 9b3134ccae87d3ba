"""The README's snippets are what a user copies: every `nhiguard …` command in its shell and YAML blocks is
one the CLI accepts (usage placeholders such as `[--by alice]` dropped), and its YAML, JSON and Python
blocks parse. A renamed flag or subcommand fails here, not in someone's CI job."""

from __future__ import annotations

import ast
import json
import re
import shlex
import textwrap

import pytest
import yaml

from nhiguard.streams.cli import build_parser
from tools import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, re.S)
_OPTIONAL = re.compile(r"\s\[[^\]'\"]*\]")  # a synopsis's optional part: `[--dump FILE]`, `[more.ndjson …]`


def _commands() -> list[str]:
    found = []
    for lang, body in BLOCKS:
        if lang not in ("bash", "yaml"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            if re.search(r"(^|[\s:;&(-])nhiguard\s+[a-z]", line.split("#")[0]):
                found.append(line.strip())
    return found


COMMANDS = _commands()


def _argv(line: str) -> list[str]:
    line = _OPTIONAL.sub("", line).replace("…", "")
    lex = shlex.shlex(line, posix=True, punctuation_chars="|;&<>")
    lex.whitespace_split, lex.commenters = True, "#"
    tokens = list(lex)
    start = tokens.index("nhiguard") + 1
    stop = next((i for i, t in enumerate(tokens) if i >= start and set(t) <= set("|;&<>")), len(tokens))
    return tokens[start:stop]


def test_the_readme_shows_commands_of_every_kind():
    assert len(COMMANDS) >= 25
    assert {_argv(c)[0] for c in COMMANDS} >= {"worker", "backtest", "ingest", "gate", "serve", "eval"}


@pytest.mark.parametrize("line", COMMANDS)
def test_every_nhiguard_command_in_the_readme_is_one_the_cli_accepts(line: str, capsys):
    argv = _argv(line)
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"`nhiguard {' '.join(argv)}` is refused ({exc.code}): {capsys.readouterr().err.strip()}")


@pytest.mark.parametrize(
    ("lang", "body"), [b for b in BLOCKS if b[0] in ("yaml", "json", "python")], ids=lambda v: str(v)[:30]
)
def test_every_yaml_json_and_python_block_parses(lang: str, body: str):
    text = textwrap.dedent(body)
    if lang == "yaml":
        yaml.safe_load(text)
    elif lang == "json":
        json.loads(text)
    else:
        ast.parse(text)
