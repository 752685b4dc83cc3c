"""Every ``mtlshare`` command written in a code block of README.md or docs/, or in a code span of
their prose that names a recipe or a kept folder, and in the recipes' shell scripts, is one the
command line takes: its options parse, its recipe exists, its ``key=value`` overrides name keys
and values the config accepts, its ``--mechanisms`` are rows the recipe can build and its
``--seeds`` read as seeds. A renamed option, config key or recipe shows here, naming the doc
and the line, before a user pastes the command and gets an error. Every TOML config the docs
show loads.

Nothing is trained: the commands are parsed and their configs loaded, not run. A synopsis
line's placeholders (``CONFIG.toml``, ``RUN_DIR``, ``[--resume]``, ...) are filled in as
``fill`` says."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from mtlshare import cli
from mtlshare.app.compare import row_config
from mtlshare.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# a synopsis line's placeholders, as words of the command: what each stands for here
PLACEHOLDERS = {
    "CONFIG.toml": "recipes/demo/demo.toml",
    "RUN_DIR": "runs/a-run",
    "RUN": "runs/a-run",
    "COPY": "runs/a-copy",  # a copy of kept runs, trained on with --resume
    "FOLDER": "runs/a-folder",
    "DIR": "runs/a-folder",
    "PNG": "curves.png",
    "TEXT": "a-title",
    "N": "2",
    "S": "1",  # seed-S, seed=S: one of the seeds the doc runs
    "$s": "local_wd1",  # the forecasting doc's loop variable: one of its six settings
    "SETTING": "",  # the same loop: that setting's keys, spelt out in the doc's prose
}


def code_lines(doc: Path) -> list[tuple[int, str]]:
    """The lines of ``doc``'s fenced code blocks, a line continued with ``\\`` joined to the
    next, each with the number of its first line in the file."""
    found: list[tuple[int, str]] = []
    inside, held, start = False, "", 0
    for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            inside, held = not inside, ""
            continue
        if not inside:
            continue
        if not held:
            start = number
        held += line.strip()
        if held.endswith("\\"):
            held = held[:-1] + " "
            continue
        found.append((start, held))
        held = ""
    return found


def optional_parts(line: str) -> str:
    """A synopsis's optional parts made a command: a bracket that starts a word (not a TOML
    list after ``=``) goes if it holds ``...`` (``[key=value ...]``), becomes its first
    alternative if it holds ``|`` (``[seed=1 | seed=2]``) and its content otherwise
    (``[--resume]``)."""
    line = re.sub(r"(?<!\S)\[[^\]]*\.\.\.[^\]]*\]", " ", line)
    return re.sub(r"(?<!\S)\[([^\]|]*?)\s*(\|[^\]]*)?\]", r"\1", line)


def command_words(line: str) -> list[str] | None:
    """The words after ``mtlshare`` (or ``-m mtlshare``) in a shell line, its optional parts
    filled in, up to its end, a comment or the next ``&&``, ``|``, ``>`` or ``&``; None for a
    line that runs no command."""
    words = shlex.split(optional_parts(line), comments=True)
    for i, word in enumerate(words):
        if word == "mtlshare" or word.endswith("/mtlshare"):
            if i and words[i - 1] == "import":
                return None
            rest = words[i + 1 :]
            for j, w in enumerate(rest):
                if w in ("&&", "||", "|", "&", ";") or w.startswith(("<", ">", "2>")):
                    return rest[:j]
            return rest
    return None


def fill(words: list[str]) -> list[str]:
    """Each placeholder of a synopsis made what ``PLACEHOLDERS`` says, as a word of its own or
    after ``-``, ``=`` or ``/`` (``seed-S``, ``seed=S``, ``runs/fixed/$s``); one that stands for
    nothing goes."""
    out = []
    for word in words:
        head, sep, tail = re.match(r"(.*?)([-=/]?)([^-=/]*)$", word).groups()
        if word in PLACEHOLDERS:
            word = PLACEHOLDERS[word]
        elif sep and tail in PLACEHOLDERS:
            word = head + sep + PLACEHOLDERS[tail]
        if word:
            out.append(word)
    return out


def inline_commands(doc: Path) -> list[tuple[int, str]]:
    """The whole commands written in ``doc``'s prose as code spans (`` `mtlshare ...` ``),
    each with its line: those that name a recipe or a kept folder and leave nothing out
    (``...``); a span broken over lines is one line."""
    text = doc.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return [
        (text[: m.start()].count("\n") + 1, " ".join(m.group(1).split()))
        for m in re.finditer(r"`(mtlshare\s[^`]+)`", text)
        if re.search(r"\b(recipes|docs/results)/", m.group(1)) and "..." not in m.group(1)
    ]


def documented_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for doc in DOCS:
        for number, line in [*code_lines(doc), *inline_commands(doc)]:
            if re.search(r"\bmtlshare\s", line) is None:
                continue
            words = command_words(line)
            if words is not None:
                where = f"{doc.relative_to(ROOT)}:{number}"
                commands.append((where, fill(words)))
    return commands


# the variables of the recipes' shell scripts, as each command of theirs is checked: the
# script's own folder for ``$here``, one value of each loop
SCRIPT_VARIABLES = {"mech": "hard", "out": "runs/a-folder"}


def script_commands() -> list[tuple[str, list[str]]]:
    """The ``$mtlshare ...`` commands of the recipes' shell scripts, their variables given
    values (``SCRIPT_VARIABLES``; a variable not there stays, and fails the check)."""
    commands = []
    for script in sorted((ROOT / "recipes").rglob("*.sh")):
        here = str(script.parent.relative_to(ROOT))
        values = {**SCRIPT_VARIABLES, "here": here, "mtlshare": "mtlshare"}
        lines = script.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if not line.lstrip().startswith("$mtlshare "):
                continue
            line = re.sub(r"\$(\w+)", lambda m, v=values: v.get(m[1], m[0]), line)
            words = command_words(line)
            commands.append((f"{script.relative_to(ROOT)}:{number}", words or []))
    return commands


COMMANDS = documented_commands() + script_commands()


def test_the_docs_hold_commands_of_every_kind():
    """The reader finds the commands (a change to how docs write them would leave the test
    below checking nothing)."""
    kinds = {words[0] for _, words in COMMANDS if words}
    assert {"run", "compare", "predict", "evaluate", "curves", "demo", "add-task"} <= kinds
    assert len(COMMANDS) > 50
    assert any(words[0] == "add-task" and "recipes/" in words[2] for _, words in COMMANDS)
    assert any(where.endswith(".sh:16") for where, _ in COMMANDS)  # add_chunking.sh's add-task


def test_the_reader_takes_the_docs_shapes():
    line = ".venv/bin/pip install -e . && .venv/bin/mtlshare demo --out d"
    assert command_words(line) == shlex.split("demo --out d")
    line = "nohup nice mtlshare run A.toml --out r >> log 2>&1 &"
    assert command_words(line) == shlex.split("run A.toml --out r")
    assert command_words("torchrun --standalone -m mtlshare run C.toml  # x") == ["run", "C.toml"]
    assert command_words("import mtlshare as m") is None
    synopsis = "mtlshare run CONFIG.toml [key=value ...] --out DIR [--resume]"
    filled = "run recipes/demo/demo.toml --out runs/a-folder --resume"
    assert fill(command_words(synopsis) or []) == shlex.split(filled)
    line = "mtlshare run r.toml --out x/seed-S 'f.h=[30,60]' [seed=1 | seed=2] SETTING"
    filled = "run r.toml --out x/seed-1 f.h=[30,60] seed=1"
    assert fill(command_words(line) or []) == shlex.split(filled)


@pytest.mark.parametrize("where,words", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_documented_command_is_one_the_cli_takes(where, words):
    try:
        args = cli._arguments(words)
    except SystemExit:
        pytest.fail(f"{where}: `mtlshare {' '.join(words)}` does not parse")
    assert isinstance(args, argparse.Namespace)
    config = getattr(args, "config", None)
    if config is not None:
        path = ROOT / config
        assert path.is_file(), f"{where}: no recipe {config}"
        cfg = load_config(path, args.overrides)  # an unknown key or a bad value raises
        if args.command == "compare":
            for name in [m.strip() for m in args.mechanisms.split(",") if m.strip()]:
                row_config(cfg, name)  # a row the recipe cannot build raises
            if args.seeds is not None:
                cli._seeds(args.seeds)
    if args.command == "demo":
        cli._seeds(args.seeds)
    for word in words:  # a kept folder or a shipped file the command reads must be there
        if word.startswith("docs/results/") and not word.startswith(
            "docs/results/joint-steps/demo-"  # the --out of a command that writes it
        ):
            assert (ROOT / word).exists(), f"{where}: {word} does not exist"


def toml_blocks(doc: Path) -> list[tuple[str, str]]:
    """``doc``'s TOML code blocks, each with the line of its first key."""
    text = doc.read_text(encoding="utf-8")
    return [
        (f"{doc.relative_to(ROOT)}:{text[: m.start()].count(chr(10)) + 2}", m.group(1))
        for m in re.finditer(r"^```toml\n(.*?)^```", text, re.S | re.M)
    ]


TOML_BLOCKS = [block for doc in DOCS for block in toml_blocks(doc)]


def test_the_docs_hold_config_examples():
    assert len(TOML_BLOCKS) >= 2


@pytest.mark.parametrize("where,text", TOML_BLOCKS, ids=[w for w, _ in TOML_BLOCKS])
def test_documented_config_loads(where, text, tmp_path):
    """A config the docs show is one ``load_config`` takes: its keys exist and its values
    are of their kinds (its data files are not read)."""
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    load_config(path)
