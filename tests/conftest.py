"""Suite-wide pytest hooks.

XLA's CPU backend compiles with LLVM's lowest optimisation level for the suite
(`--xla_backend_optimization_level=0`, unless XLA_FLAGS already sets it): the tests' tiny models
spend most of their time in compilation, and this cuts it (samples of the suite, CPU-seconds:
JAX 97 -> 46, TensorFlow's XLA-compiled steps 36 -> 30). The same operations run, compiled with less
optimisation (results may differ in rounding, as between two XLA versions).

`@pytest.mark.tensorflow_variant` on a parametrized case of a portable test says: this variant's
backend-specific code is already exercised on JAX by a sibling variant (same layers, same ops; only
a configuration differs), so the JAX leg of CI (`KERAS_BACKEND=jax pytest -m portable`) deselects it
and runs the representative one. On TensorFlow every variant runs. This keeps CI within its
15-minute budget (docs/performance.md, "CI time") without dropping a backend path from either leg.
"""

import os

if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=0").strip()

import keras  # noqa: E402  (after XLA_FLAGS: JAX and TensorFlow read it when XLA starts)


# The modules that cost the most CPU time (CPU-seconds in CI, 2026-12-06: TensorFlow leg / JAX leg),
# run first so that the two xdist workers finish together: pytest-xdist hands out whole modules
# (`--dist loadfile`) in collection order (`--no-loadscope-reorder` in setup.cfg; its default
# order, most tests first, sent the 220-second distribution module out late, leaving one worker
# idle for a minute at the end).
HEAVIEST_FIRST = (
    "tests/test_distribution.py",              # 234 / -
    "tests/test_cli_drills.py",                # 90 / -
    "tests/tools/test_reproduce_iwae_table.py",  # 72 / -
    "tests/models/test_vae.py",                # 23 / 63
    "tests/test_cli_run_folder.py",            # 55 / -
    "tests/test_precision.py",                 # 43 / 23
    "tests/test_jobs.py",                      # 42 / -
    "tests/tools/test_reproduce_table1.py",    # 41 / -
    "tests/test_cli_sigterm.py",               # 38 / -
    "tests/models/test_super_resolution.py",   # 25 / 37
    "tests/test_cli_sprites.py",               # 37 / -
    "tests/models/test_two_stage.py",          # - / 32
    "tests/test_completion.py",                # - / 31
    "tests/layers/test_posterior_flow_layers.py",  # - / 30
)


def pytest_collection_modifyitems(config, items):
    rank = {path: index for index, path in enumerate(HEAVIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable
    if keras.backend.backend() == "tensorflow":
        return
    kept, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("tensorflow_variant") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
