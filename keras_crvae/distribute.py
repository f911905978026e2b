"""Distribution strategies for `crvae train` and the examples (TensorFlow only).

`make_strategy("mirrored")` replicates the model on every local GPU (or the visible CPU devices) with
`tf.distribute.MirroredStrategy`; `"multi_worker"` builds `MultiWorkerMirroredStrategy` from the
`TF_CONFIG` environment variable (one process per machine); `"default"` is the no-op strategy.
Build and compile the model inside `strategy.scope()`; `fit` then splits each global batch of `B`
examples into contiguous per-replica shards of `B / R` examples (`R` replicas) and sums the
replicas' gradients.

Two helpers make a replica compute its shard's part of the one-device computation on the global
batch (on other backends, or outside a strategy, they are the identity / plain `keras.random`):

- `scale_loss_for_replicas(loss)`: a model that overrides `compute_loss` returns a per-replica
  mean; dividing it by `R` makes the summed gradients the gradient of the global-batch mean (what
  Keras' own `compute_loss` does for compiled losses).
- `replica_normal(shape, seed_generator)`: every replica draws the whole global batch's noise with
  the shared seed and keeps its own rows. Plain `keras.random.normal(shape, seed=seed_generator)`
  would give every replica the same noise for its shard (the seed state is mirrored), so examples
  `i` and `i + B/R` of a global batch would share their noise.

A global-batch one-device step and a mirrored step then agree up to float rounding, provided
BatchNorm uses global statistics (`synchronized_batch_norm=True` in the network builders) and no
layer depends on the per-replica batch (dropout masks, minibatch discrimination).
"""

import keras

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name="default"):
    """A `tf.distribute.Strategy` by name: "default", "mirrored" or "multi_worker".

    Args:
        name: str. "default": `tf.distribute.get_strategy()` (one device, no-op); "mirrored":
            `MirroredStrategy` over all local GPUs (or the CPU when there are none);
            "multi_worker": `MultiWorkerMirroredStrategy`, configured by the `TF_CONFIG`
            environment variable (see the README's "Training on several GPUs or machines"); create
            it before any other TensorFlow op runs. It is a subclass whose `reduce` accepts the
            scalar metrics Keras 3 hands it (see `_multi_worker_strategy_class`).

    Returns:
        `tf.distribute.Strategy`.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return _multi_worker_strategy_class()()
    raise ValueError(f"`strategy` must be one of {STRATEGIES}, got {name!r}.")


def _multi_worker_strategy_class():
    """`MultiWorkerMirroredStrategy` whose `reduce(op, scalars, axis=0)` reduces over replicas.

    With several workers, Keras 3's `fit` averages each step's per-replica metrics with
    `strategy.reduce("MEAN", value, axis=0)`, which fails on scalar metrics ("Invalid reduction
    dimension 0 for input with 0 dimensions"; tensorflow/tensorflow issue 72388) whatever
    `distribute_reduction_method` says. For scalars the only meaningful reduction is across
    replicas, i.e. `axis=None`; other values are reduced as asked.
    """
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        def reduce(self, reduce_op, value, axis):
            components = getattr(value, "values", (value,))
            if axis == 0 and all(getattr(c, "shape", None) is not None and c.shape.rank == 0
                                 for c in components):
                axis = None
            return super().reduce(reduce_op, value, axis)

    return MultiWorkerMirroredStrategy


def _replica_context():
    """The TF replica context when more than one replica is in sync, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


def num_replicas():
    """Replicas in sync under the current TF strategy (1 on other backends or without one)."""
    if keras.backend.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def model_replicas(model):
    """Replicas of the TF strategy `model` was created under (1 on other backends / without one).

    Keras 3.15's `predict_on_batch` on such a model runs the whole batch on every replica and
    concatenates the results (R copies of each row); callers fall back to a direct call.
    """
    strategy = getattr(model, "distribute_strategy", None)
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def scale_loss_for_replicas(loss):
    """`loss / R` under a TF strategy with `R` replicas in sync; `loss` otherwise.

    For models whose `compute_loss` returns the mean over the replica's shard: Keras sums the
    replicas' gradients, so the sum of `mean_r / R` is the global-batch mean for equal shards.
    """
    replicas = num_replicas()
    if replicas == 1:
        return loss
    return loss * keras.ops.cast(1.0 / replicas, loss.dtype)


def replica_normal(shape, seed_generator, dtype=None):
    """`keras.random.normal(shape, seed=seed_generator)` for this replica's rows of the global batch.

    Outside a multi-replica TF replica context this is exactly `keras.random.normal`. Inside one,
    the replicas all-gather their batch sizes `b_0..b_{R-1}`, each draws the normal noise of shape
    `(sum_r b_r, *shape[1:])` with the (mirrored) seed generator and returns rows
    `[sum_{r' < r} b_r', sum_{r' <= r} b_r')`: the rows a one-device draw on the concatenated
    global batch gives to this replica's examples, so the replicas' noise is independent and a
    mirrored step reproduces a one-device step.

    Args:
        shape: tuple `(batch, ...)`; `batch` may be a scalar tensor.
        seed_generator: `keras.random.SeedGenerator`, advanced once per call as usual.
        dtype: float dtype or None (floatx).

    Returns:
        Tensor of shape `shape`.
    """
    return _replica_rows(keras.random.normal, shape, seed_generator, dtype)


def replica_uniform(shape, seed_generator, dtype=None):
    """`keras.random.uniform(shape, seed=seed_generator)` (on [0, 1)) for this replica's rows of the
    global batch; see `replica_normal`. (WGAN-GP's per-example interpolation weights.)"""
    return _replica_rows(keras.random.uniform, shape, seed_generator, dtype)


def _replica_rows(draw, shape, seed_generator, dtype):
    context = _replica_context()
    if context is None:
        return draw(shape, dtype=dtype, seed=seed_generator)
    import tensorflow as tf

    local_rows = tf.cast(shape[0], tf.int32)
    rows = context.all_gather(tf.reshape(local_rows, (1,)), axis=0)
    offset = tf.reduce_sum(rows[:context.replica_id_in_sync_group])
    noise = draw((tf.reduce_sum(rows),) + tuple(shape[1:]), dtype=dtype, seed=seed_generator)
    return noise[offset:offset + local_rows]
