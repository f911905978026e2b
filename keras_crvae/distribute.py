"""Distribution strategies for `crvae train` and the examples (TensorFlow only).

`make_strategy("mirrored")` replicates the model on every local GPU (or the visible CPU devices) with
`tf.distribute.MirroredStrategy`; `"multi_worker"` builds `MultiWorkerMirroredStrategy` from the
`TF_CONFIG` environment variable (one process per machine); `"default"` is the no-op strategy.
Build and compile the model inside `strategy.scope()`; `fit` then splits each global batch.
"""

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name="default"):
    """A `tf.distribute.Strategy` by name: "default", "mirrored" or "multi_worker"."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"`strategy` must be one of {STRATEGIES}, got {name!r}.")
