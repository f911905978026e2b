"""Where this checkout and the shared data beside it are, for the tools' scripts; flag-free, so any
script may import it (tools/reproduce/reproduction.py defines absl flags at import).

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # from tools/SUBFOLDER/
    import checkout_paths
"""

import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"  # ../shared/data, the offline datasets


def in_checkout(path):
    """`path` relative to the checkout (e.g. `../shared/data/celeba64_train.npz`): what committed
    records (study.json, run.json) say, so that they carry no machine's folders."""
    return os.path.relpath(os.path.abspath(path), ROOT)
