"""The tour notebook runs top to bottom (its cells are examples users copy), and the executed
copy stored in the repository shows the current benchmark results."""

import base64
import hashlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TOUR = ROOT / "notebooks" / "tour.ipynb"


def test_tour_executes(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for module in ("matplotlib", "skimage", "ipykernel"):
        pytest.importorskip(module)
    nb = nbformat.read(TOUR, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(TOUR.parent)}})
    client.execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code"
              for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = [o for cell in nb.cells if cell.cell_type == "code"
              for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 4  # the figures were drawn


def test_stored_tour_shows_the_committed_benchmark():
    """The executed notebook's chart and headline lines are those of benchmarks/ today.

    A new benchmark run rewrites results.png and RESULTS.md; the stored notebook must then be
    executed again, or it shows readers an older run.
    """
    benchmarks = ROOT / "benchmarks"
    cells = [c for c in json.loads(TOUR.read_text())["cells"]
             if c["cell_type"] == "code" and "results.png" in "".join(c["source"])]
    assert len(cells) == 1, "the benchmark chart cell is missing"
    outputs = cells[0].get("outputs", [])
    charts = [_digest(base64.b64decode("".join(o["data"]["image/png"]))) for o in outputs
              if "image/png" in o.get("data", {})]
    printed = "".join("".join(o["text"]) for o in outputs if o.get("output_type") == "stream")
    headline = [line for line in (benchmarks / "RESULTS.md").read_text().splitlines()
                if line.startswith(("- date:", "geometric-mean speedup"))]  # over torch, naive
    stale = (f"{TOUR.relative_to(ROOT)} shows another benchmark run than "
             "benchmarks/results.png and RESULTS.md; execute it again from the repository root "
             f"with: jupyter execute --inplace {TOUR.relative_to(ROOT)}")
    assert charts == [_digest((benchmarks / "results.png").read_bytes())], stale
    assert len(headline) == 3 and all(line in printed.splitlines() for line in headline), stale


def _digest(data):
    return hashlib.sha256(data).hexdigest()[:16]
