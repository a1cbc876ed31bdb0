"""The documentation's commands still work.

* Every fenced ``bash`` block preceded by the line ``<!-- test -->`` in ``docs/*.md`` runs, in page order (the order
  of ``docs/index.md``) and block order, in one scratch folder where the repository's ``examples/`` and ``src/`` are
  visible, under ``bash -euo pipefail`` with ``infarctsam`` and ``python`` being this interpreter; each must exit 0.
* Every ``infarctsam COMMAND`` shown in a fenced block of the docs or the README has a working ``--help``, and every
  option written after it exists on that command.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import infarctsam

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
MARK = "<!-- test -->"
FENCE = re.compile(r"^```(\w*)\s*$")
PRELUDE = 'infarctsam() { "$INFARCTSAM_PY" -m infarctsam "$@"; }\npython() { "$INFARCTSAM_PY" "$@"; }\n'


def page_order() -> list[Path]:
    """The pages linked from the index, in its order, then any other page."""
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    linked = [DOCS / name for name in re.findall(r"\]\(([\w-]+\.md)(?:#[\w-]*)?\)", index)]
    pages = [p for p in dict.fromkeys(linked) if p.is_file()]
    return pages + sorted(set(DOCS.glob("*.md")) - set(pages) - {DOCS / "index.md"})


def fenced_blocks(text: str) -> list[tuple[str, str, bool]]:
    """``(language, body, marked)`` of every fenced block; ``marked``: the line before the fence is the mark."""
    lines = text.splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == "```"), len(lines))
        marked = i > 0 and lines[i - 1].strip() == MARK
        blocks.append((m.group(1), "\n".join(lines[i + 1: end]), marked))
        i = end + 1
    return blocks


def marked_blocks() -> list[tuple[str, str]]:
    """``(id, bash)`` of every marked block, in the order they run."""
    found = []
    for page in page_order():
        marked = [body for lang, body, is_marked in fenced_blocks(page.read_text(encoding="utf-8")) if is_marked]
        for n, body in enumerate(marked, 1):
            found.append((f"{page.stem}-{n}", body))
    return found


BLOCKS = marked_blocks()


def test_the_docs_have_tested_blocks_and_only_bash_ones_are_marked():
    assert len(BLOCKS) >= 6
    for page in DOCS.glob("*.md"):
        for lang, body, marked in fenced_blocks(page.read_text(encoding="utf-8")):
            assert not marked or lang == "bash", f"{page.name}: a marked block must be ```bash: {body[:60]!r}"


@pytest.fixture(scope="module")
def docs_run(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """Run every marked block in order in one scratch folder; their results by id."""
    work = tmp_path_factory.mktemp("docs")
    for name in ("examples", "src"):
        (work / name).symlink_to(REPO / name, target_is_directory=True)
    package_root = str(Path(infarctsam.__file__).resolve().parents[1])  # this checkout's code, not another install
    env = {**os.environ, "INFARCTSAM_PY": sys.executable,
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    results = {}
    for block_id, body in BLOCKS:
        results[block_id] = subprocess.run(["bash", "-euo", "pipefail", "-c", PRELUDE + body], cwd=work, env=env,
                                           capture_output=True, text=True, timeout=300)
    return results


@pytest.mark.parametrize("block_id", [block_id for block_id, _ in BLOCKS])
def test_documented_commands_run(docs_run, block_id):
    done = docs_run[block_id]
    assert done.returncode == 0, f"{block_id} exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-2000:]


def test_a_failing_block_is_caught(tmp_path):
    """The harness is not blind: ``-e`` and ``pipefail`` stop a block at its first failing command."""
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", PRELUDE + "false | cat\necho reached"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode != 0 and "reached" not in done.stdout


STOP = {"#", "|", "||", "&&", ";", ">", "2>", "<", ">>", "\\"}


def documented_commands() -> dict[tuple[str, ...], set[str]]:
    """``(command, [subcommand])`` -> options, for every ``infarctsam`` call in fenced shell blocks."""
    import typer.main

    from infarctsam.cli import app

    group = typer.main.get_command(app)
    calls: dict[tuple[str, ...], set[str]] = {}
    for page in [REPO / "README.md", *DOCS.glob("*.md")]:
        for lang, body, _ in fenced_blocks(page.read_text(encoding="utf-8")):
            if lang not in ("", "bash", "sh", "console"):
                continue
            for line in body.replace("\\\n", " ").splitlines():
                line = re.sub(r"(^|\s)#.*$", "", line)  # shell comments
                for m in re.finditer(r"(?<![\w/.-])infarctsam\s+([a-z][a-z-]*)(.*)", line):
                    name = m.group(1)
                    assert name in group.commands, f"{page.name}: unknown command infarctsam {name}: {line}"
                    words = [w.strip("\"'") for w in m.group(2).split()]
                    key: tuple[str, ...] = (name,)
                    if hasattr(group.commands[name], "commands") and words:
                        key, words = (name, words[0]), words[1:]
                    options = calls.setdefault(key, set())
                    for word in words:
                        if word in STOP or word.startswith("#"):
                            break
                        word = word.strip("[]")
                        if re.match(r"^--?[A-Za-z]", word):
                            options.add(word.split("=")[0])
    return calls


def test_every_documented_command_has_help_and_its_options():
    import typer.main
    from typer.testing import CliRunner

    from infarctsam.cli import app

    calls = documented_commands()
    assert {("segment",), ("evaluate",), ("review",), ("synth",)} <= set(calls)
    group = typer.main.get_command(app)
    runner = CliRunner()
    for key, options in sorted(calls.items()):
        result = runner.invoke(app, [*key, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output, (key, result.output)
        command = group.commands[key[0]]
        if len(key) > 1:
            command = command.commands[key[1]]
        known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help", "-h"}
        unknown = sorted(options - known)
        assert not unknown, f"infarctsam {' '.join(key)}: the docs use options it does not have: {unknown}"


# Pages other issues add (linked from here before they land); a link to them may point nowhere until then.
PAGES_OF_OTHER_ISSUES = {"docs/location.md", "docs/cache.md"}


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {github_anchor(m) for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_links_between_the_pages_resolve():
    for page in [REPO / "README.md", *DOCS.glob("*.md")]:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists() and Path(os.path.relpath(dest, REPO)).as_posix() in PAGES_OF_OTHER_ISSUES:
                continue
            assert dest.exists(), f"{page.name}: broken link {target}"
            if anchor and dest.suffix == ".md":
                assert anchor in anchors(dest), f"{page.name}: no heading #{anchor} in {dest.name}"


def test_github_anchor():
    assert github_anchor("Dask (`--scheduler`)") == "dask---scheduler"
    assert github_anchor("The documentation's commands are tested") == "the-documentations-commands-are-tested"
