"""The documentation runs: docstring examples, the README's code blocks, the command line's help.

Each README ```python block must run on its own, in a fresh namespace, on a machine with or
without a GPU, and every ``print(...)  # text`` line in it must print ``text`` (the comment may
go on after the printed text with ``:`` or ``,``).
"""

import ast
import builtins
import contextlib
import dataclasses
import doctest
import importlib
import io
import pkgutil
import re
import sys
import tokenize
from pathlib import Path

import pytest

import numbapool
from numbapool import __main__ as cli
from numbapool import bench

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MODULES = sorted(
    m.name for m in pkgutil.walk_packages(numbapool.__path__, "numbapool.")
    if not m.name.startswith(("numbapool._cuda", "numbapool.__main__"))
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


# --------------------------------------------------------------------------- README blocks


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    id: str  # the section heading it sits under, as a slug
    first_line: int  # README line number of the block's first code line
    source: str


def readme_blocks(language="python", text=None):
    """The README's fenced blocks in ``language``, named after their section."""
    text = README.read_text() if text is None else text
    blocks, section, counts = [], "top", {}
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = re.sub(r"[^a-z0-9]+", "-", line[3:].lower()).strip("-")
        if line.rstrip("\n") == f"```{language}":
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            counts[section] = counts.get(section, 0) + 1
            name = section if counts[section] == 1 else f"{section}-{counts[section]}"
            blocks.append(Block(name, i + 2, "".join(lines[i + 1:end])))
            i = end
        i += 1
    return blocks


def _expected_prints(source, first_line):
    """``{(first, last) README line of a commented print: (comment, at top level)}``."""
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    expected = {}
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                and isinstance(node.value.func, ast.Name) and node.value.func.id == "print"
                and node.end_lineno in comments):
            span = (node.lineno + first_line - 1, node.end_lineno + first_line - 1)
            expected[span] = (comments[node.end_lineno], node.col_offset == 0)
    return expected


def _matches(printed, comment):
    return comment == printed or (comment.startswith(printed) and comment[len(printed)] in ":,")


def run_readme_block(block):
    """Run ``block`` in a fresh namespace; check its commented prints; return its output.

    Runs under README line numbers, so a traceback points into the README.
    """
    out = io.StringIO()
    printed = []  # (README line of the print call, what it printed)

    def recording_print(*args, **kwargs):
        start = out.tell()
        builtins.print(*args, **kwargs)
        printed.append((sys._getframe(1).f_lineno, out.getvalue()[start:].rstrip("\n")))

    code = compile("\n" * (block.first_line - 1) + block.source, str(README), "exec")
    namespace = {"__name__": "__main__", "print": recording_print}
    try:
        with contextlib.redirect_stdout(out):
            exec(code, namespace)
    finally:
        sys.stdout.write(out.getvalue())  # shown by pytest when the test fails
    output = out.getvalue()
    expected = _expected_prints(block.source, block.first_line)
    ran = set()
    for line, text in printed:
        for (first, last), (comment, _) in expected.items():
            if first <= line <= last:
                ran.add((first, last))
                assert _matches(text, comment), (
                    f"README.md:{first}: printed {text!r}, its comment says {comment!r}")
    missed = [span[0] for span, (_, top_level) in expected.items()
              if top_level and span not in ran]
    assert not missed, f"README.md lines {missed}: these prints never ran"
    return output


PYTHON_BLOCKS = readme_blocks()


def test_readme_has_python_blocks():
    assert len(PYTHON_BLOCKS) >= 3
    assert len({b.id for b in PYTHON_BLOCKS}) == len(PYTHON_BLOCKS)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=[b.id for b in PYTHON_BLOCKS])
def test_readme_python_block_runs_alone(block):
    output = run_readme_block(block)
    assert output.strip(), "the block prints nothing to show what it did"


def test_readme_gpu_block_without_cuda_shows_the_library_error():
    if numbapool.cuda_available():
        pytest.skip("CUDA is available here; tests/test_cuda_sim.py runs the GPU branch")
    (gpu,) = [b for b in PYTHON_BLOCKS if b.id == "on-the-gpu"]
    output = run_readme_block(gpu)
    assert "device='cuda' was requested, but CUDA is not available" in output
    assert "NUMBA_ENABLE_CUDASIM=1" in output  # the way to run it without a GPU


def test_block_check_catches_wrong_comments_and_prints_that_never_ran():
    ok = Block("ok", 1, "print(2 * 3, 'x')  # 6 x: prose may follow\nprint(7)  # 7, or this\n")
    assert run_readme_block(ok) == "6 x\n7\n"
    with pytest.raises(AssertionError, match=r"printed '\(8, 64\)'"):
        run_readme_block(Block("wrong", 1, "print((8, 64))  # (8, 64, 56, 56)\n"))
    with pytest.raises(AssertionError, match="printed '12'"):
        run_readme_block(Block("prefix", 1, "print(12)  # 123\n"))
    with pytest.raises(AssertionError, match="never ran"):  # print rebound: nothing recorded
        run_readme_block(Block("rebound", 1, "print = str\nprint(5)  # 5\n"))


def test_readme_commands_use_their_own_environments():
    """Each fresh-machine command makes its own venv (ignored by git) and gets PyTorch CPU."""
    commands = [b for b in readme_blocks("bash")
                if b.id.startswith("two-commands-for-a-fresh-machine")]
    assert len(commands) == 2
    venvs = [re.search(r"python3 -m venv (\S+)", b.source).group(1) for b in commands]
    assert len(set(venvs)) == 2, venvs
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for venv, block in zip(venvs, commands):
        assert f"{venv}/" in ignored, f"{venv} is not in .gitignore"
        assert f". {venv}/bin/activate" in block.source
        assert f'pip install "{cli.TORCH_REQUIREMENT}"' in block.source


# --------------------------------------------------------------------------- command line


def _help(capsys, *argv):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_cli_help_is_plain_text(capsys):
    text = _help(capsys)
    assert "`" not in text  # no RST markup
    listed = re.findall(r"^ {4}(\w+) {2,}\S", text, re.M)
    assert listed == ["demo", "bench", "warm", "info"]
    assert "python -m numbapool warm --all --dtypes float32 float64" in text  # examples kept


@pytest.mark.parametrize("command, option", [("demo", "--batch N"), ("bench", "--quick"),
                                             ("info", "--help")])
def test_cli_command_help(capsys, command, option):
    text = _help(capsys, command)
    assert text.startswith(f"usage: python -m numbapool {command}")
    assert option in text and "`" not in text
    description = text.split("\n\n")[1]
    assert len(description.split()) >= 20  # says what the command does, not just its name


def test_cli_bench_without_torch_says_how_to_get_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    quick_cases = bench.cases(quick=True)[:2]
    monkeypatch.setattr(bench, "cases", lambda quick=False: quick_cases)
    assert cli.main(["bench", "--quick"]) == 0
    out = capsys.readouterr().out
    install = f'python -m pip install "{cli.TORCH_REQUIREMENT}"'
    assert out.count("PyTorch is not installed") == 2  # before the run and under the table
    assert out.count(install) == 2
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| max2d")]
    assert [row[0].strip() for row in rows] == [c.name for c in quick_cases]
    assert all(row[2].strip() == "-" and row[5].strip() == "-" for row in rows)  # torch ms, vs
    assert "speedup over torch" not in out
