"""Start-up cost in a fresh interpreter: import, and the first forward +
backward call cold (empty Numba cache: compilation) and from the cache."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

FIRST_CALL = """
import numpy as np
import numba_affine as na
x = np.ones((20, 50)); W = np.ones((50, 10)); b = np.ones(10); d = np.ones((20, 10))
na.affine_forward(x, W, b)
na.affine_backward(d, x, W)
"""


class Startup:
    timeout = 900
    repeat = (1, 3, 60.0)
    number = 1

    def setup(self):
        from .common import require

        require("affine_forward", "affine_backward")
        self.cache = tempfile.mkdtemp(prefix="numba-affine-asv-cache-")
        env = dict(os.environ, NUMBA_CACHE_DIR=self.cache)
        subprocess.run([sys.executable, "-c", FIRST_CALL], env=env, check=True)

    def timeraw_import(self):
        return "import numba_affine"

    def timeraw_first_call_cold(self):
        # a new empty cache directory for every run: compilation is timed
        return (
            "import os, tempfile\n"
            "os.environ['NUMBA_CACHE_DIR'] = tempfile.mkdtemp(prefix='numba-affine-cold-')\n" + FIRST_CALL
        )

    def timeraw_first_call_cached(self):
        return f"import os\nos.environ['NUMBA_CACHE_DIR'] = {self.cache!r}\n" + FIRST_CALL
