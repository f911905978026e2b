"""Switch the library's fast kernels back to Keras' own layers, for side-by-side benchmarks.

The fast paths (docs/performance.md, "The training step on a 2-core CPU"):

| name | fast path | reference |
|---|---|---|
| `batch_norm` | `keras_crvae.layers.BatchNormalization`: one `FusedBatchNormV3` on TensorFlow | `keras.layers.BatchNormalization.call` |
| `crop` | `SliceCropping2D`: a `Slice` (gradient: `Pad`) | `keras.layers.Cropping2D.call` (`StridedSlice`) |
| `lstm` | `unrolled_lstm`: kernels cast once, the input projections in one matmul | `keras.layers.LSTM` (a `while` loop) |
| `adam` | `MultiplierAdam`: one `ResourceApplyAdam` per variable on TensorFlow | `keras.optimizers.Adam.update_step` |

`reference_kernels(names)` is a context manager: models built *and traced* inside it use the Keras
layers for `names`; outside it everything is as shipped. For measurement only (it patches classes).
`kernels_context(spec)` reads the benchmarks' `--kernels` values: `fast` (as shipped), `reference`
(all four switched back) or `no_NAME` (all fast but NAME, to measure one change alone).
"""

import contextlib

KERNELS = ("batch_norm", "crop", "lstm", "adam")
SPECS = ("fast", "reference") + tuple(f"no_{name}" for name in KERNELS)


def _patches(name):
    import keras

    from keras_crvae import optimizers
    from keras_crvae.layers import channel_recurrent, cropping, normalization

    if name == "batch_norm":
        return [(normalization.BatchNormalization, "_fused_applies",
                 lambda self, inputs, mask: False)]
    if name == "crop":
        return [(cropping.SliceCropping2D, "call", keras.layers.Cropping2D.call)]
    if name == "lstm":
        return [(channel_recurrent, "lstm_unrolls", lambda lstm: False)]
    if name == "adam":
        return [(optimizers.MultiplierAdam, "_fused_update_applies",
                 lambda self, gradient, variable: False)]
    raise ValueError(f"Unknown kernel {name!r}; expected one of {KERNELS}.")


@contextlib.contextmanager
def reference_kernels(names=KERNELS):
    """Within the block, the kernels `names` (default: all) run as Keras' reference layers."""
    saved = []
    try:
        for name in names:
            for owner, attribute, replacement in _patches(name):
                saved.append((owner, attribute, getattr(owner, attribute)))
                setattr(owner, attribute, replacement)
        yield
    finally:
        for owner, attribute, original in reversed(saved):
            setattr(owner, attribute, original)


def kernels_context(spec):
    """The context of a `--kernels` value (SPECS); ValueError for any other value."""
    if spec not in SPECS:
        raise ValueError(f"Unknown kernels {spec!r}; expected one of {', '.join(SPECS)}.")
    if spec == "fast":
        return contextlib.nullcontext()
    if spec == "reference":
        return reference_kernels()
    return reference_kernels([spec[len("no_"):]])
