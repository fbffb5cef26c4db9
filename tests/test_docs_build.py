"""The Sphinx site in docs/ builds with warnings as errors (needs the ``docs`` extra)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MISSING = [m for m in ("sphinx", "numpydoc", "myst_parser") if importlib.util.find_spec(m) is None]


@pytest.mark.skipif(bool(MISSING), reason=f"the docs extra is not installed ({MISSING})")
def test_docs_build_without_warnings(tmp_path):
    # a fresh doctree: a warning is not hidden by an earlier build's pickled environment
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E", "-b", "html",
           "-d", str(tmp_path / "doctrees"), str(ROOT / "docs"), str(tmp_path / "html")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    page = (tmp_path / "html" / "reference" / "generated" / "numbapool.max_pool2d.html")
    assert "kernel_size" in page.read_text()
