"""The documentation runs: docstring examples (doctest) and the README's Python blocks."""

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import numbapool

ROOT = Path(__file__).resolve().parent.parent
MODULES = sorted(
    m.name for m in pkgutil.walk_packages(numbapool.__path__, "numbapool.")
    if not m.name.startswith(("numbapool._cuda", "numbapool.__main__"))
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks
    namespace = {}  # the blocks read as one session, each building on the last
    for block in blocks:
        if "cuda" in block and not numbapool.cuda_available():
            continue
        exec(compile(block, "README.md", "exec"), namespace)
