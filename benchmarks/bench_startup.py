"""Start-up: a fresh process's import plus first 2x2 max pool, numbapool vs PyTorch.

numbapool's kernels come from Numba's on-disk cache (warmed by the first run below), so
this measures import plus cache load, which is what a user's script pays on every start.
"""

import subprocess
import sys

import pytest

SCRIPTS = {
    "numbapool": "import numpy as np, numbapool as nbp\n"
                 "nbp.max_pool2d(np.ones((8, 64, 56, 56), np.float32), 2)",
    "torch": "import torch\n"
             "torch.nn.functional.max_pool2d(torch.ones((8, 64, 56, 56)), 2)",
}


@pytest.mark.parametrize("impl", SCRIPTS)
def test_startup(benchmark, impl):
    if impl == "torch":
        pytest.importorskip("torch")
    cmd = [sys.executable, "-c", SCRIPTS[impl]]
    subprocess.run(cmd, check=True)  # warms the kernel cache
    benchmark.group = "startup: import + first max_pool2d"
    benchmark.pedantic(subprocess.run, args=(cmd,), kwargs={"check": True}, rounds=3)
