"""Suite-wide pytest hooks.

XLA's CPU backend compiles with LLVM's lowest optimisation level for the suite
(`--xla_backend_optimization_level=0`, unless XLA_FLAGS already sets it): the tests' tiny models
spend most of their time in compilation, and this cuts it (samples of the suite, CPU-seconds:
JAX 97 -> 46, TensorFlow's XLA-compiled steps 36 -> 30). The same operations run, compiled with less
optimisation (results may differ in rounding, as between two XLA versions). On JAX the suite also
sets `JAX_DISABLE_MOST_OPTIMIZATIONS=1` (unless given), JAX's own switch for fast compilation.

On TensorFlow the test processes also switch Grappler (the graph optimizer that runs before a
`tf.function`'s first call) off: almost every graph in the suite runs once or twice, so its passes
(constant folding, layout, remapper fusions) cost more than they save (a sample of model tests:
80 -> 71 CPU-seconds). The same kernels run, unfused; the library itself never changes this setting,
and the command-line tests' subprocesses and every training script keep it on.

TensorFlow runs each operation on one thread in the test processes and the subprocesses they
start (`TF_NUM_INTRAOP_THREADS=1`, unless set): the tests' tensors are tiny, so splitting an
operation over a second thread costs more in handing over and spinning than it saves, and
pytest-xdist already keeps both cores busy with two workers (`tests/models/test_vae_gan.py` and
`test_gan.py` in one process, quiet AMD EPYC, two runs each: 57.3 / 58.1 -> 52.1 / 48.5 CPU-s).
The same operations run; only float reductions may round differently. The library, the CLI and
the training scripts keep TensorFlow's default unless told (`--threads`).

`@pytest.mark.tensorflow_variant` on a parametrized case of a portable test says: this variant's
backend-specific code is already exercised on JAX by a sibling variant (same layers, same ops; only
a configuration differs), so the JAX leg of CI (`KERAS_BACKEND=jax pytest -m portable`) deselects it
and runs the representative one. On TensorFlow every variant runs. This keeps CI within its
15-minute budget (docs/performance.md, "CI time") without dropping a backend path from either leg.
"""

import os

# JAX: also its own switch for fast compilation (off-by-default XLA passes and HLO optimizations;
# tests/models/test_vae.py on JAX: 74 -> 65 CPU-seconds).
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + " --xla_backend_optimization_level=0").strip()

# Before TensorFlow starts (it reads the variable once); the CLI tests' subprocesses inherit it.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import keras  # noqa: E402  (after XLA_FLAGS: JAX and TensorFlow read it when XLA starts)

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf

    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() == "tensorflow":
        return
    kept, deselected = [], []
    for item in items:
        (deselected if item.get_closest_marker("tensorflow_variant") else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
