"""Inference versions of functional networks: each linear layer -> BatchNormalization [-> activation]
chain computed as one `keras_crvae.layers.FoldedConvolution`.

`inference_network(network)` returns a model computing `network(x, training=False)` with the same
variables (no copies): a linear layer (`Conv2D`, `Conv2DTranspose`, `Dense`) whose only consumer is
a BatchNormalization over the channel axis, optionally through a cropping layer (a per-channel affine
map commutes with cropping), is folded with it, and with the elementwise activation that is the
normalisation's only consumer. Everything else runs the network's own layers. Networks with nothing
to fold are returned as they are.

`run_network` (`models/base.py`), through which every model's `decode`, `sample` and `encode` helpers
run a network in inference mode, uses it on TensorFlow; training never does (a training
BatchNormalization normalises with the batch's statistics, which cannot be folded). On JAX the
fold is off unless asked for (`folding(True)`): XLA fuses the BatchNormalization itself, and on a
CPU the folded decoder was no faster than the network as built at batches 16-500 (the phase form;
the native transposed convolution won only at batch 16 and lost at 128), nor consistently closer
to float32 in bfloat16 (`tools/benchmarks/benchmark_decode.py`, docs/performance.md section 0).

Reference: Jacob et al. 2018, section 3.2 (folding batch normalisation into the preceding layer);
the measured effect: `tools/benchmarks/benchmark_decode.py`, docs/performance.md.
"""

import contextlib

import keras

from keras_crvae.layers.folded_conv import FoldedConvolution, is_foldable_linear

# Elementwise activation layers, which commute with cropping and with the phase interleave of a
# transposed convolution (`layers/folded_conv.py`), so they can be folded in.
_ELEMENTWISE_LAYERS = (keras.layers.LeakyReLU, keras.layers.ReLU, keras.layers.ELU)
_ELEMENTWISE_ACTIVATIONS = ("relu", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "tanh",
                            "sigmoid", "softplus", "linear")


def _is_elementwise(layer):
    if type(layer) in _ELEMENTWISE_LAYERS:
        return True
    return (type(layer) is keras.layers.Activation
            and getattr(layer.activation, "__name__", None) in _ELEMENTWISE_ACTIVATIONS)


def _is_batch_norm(layer):
    return isinstance(layer, keras.layers.BatchNormalization) and not getattr(layer, "renorm", False)


def _graph(network):
    """`(nodes, producer, consumers)` of the network's own graph: its nodes, deepest first;
    `producer[id(op)]`, the single op whose output `op` reads (None for several inputs or a layer
    called more than once); `consumers[id(op)]`, the number of calls reading `op`'s outputs, the
    network's outputs counted as consumers. Keras' private graph attributes (`_nodes_by_depth`,
    `_keras_history`); tests/networks/test_inference.py pins the plan they give."""
    nodes = [node for depth in sorted(network._nodes_by_depth, reverse=True)
             for node in network._nodes_by_depth[depth]]
    calls, producer, consumers = {}, {}, {}
    for node in nodes:
        operation = node.operation
        calls[id(operation)] = calls.get(id(operation), 0) + 1
        parents = node.parent_nodes
        producer[id(operation)] = parents[0].operation if len(parents) == 1 else None
        for parent in parents:
            consumers[id(parent.operation)] = consumers.get(id(parent.operation), 0) + 1
    for output in network.outputs:
        operation = output._keras_history.operation
        consumers[id(operation)] = consumers.get(id(operation), 0) + 1
    for key, count in calls.items():
        if count > 1:  # a layer called twice in the graph: leave it and its neighbours alone
            producer[key] = None
            consumers[key] = consumers.get(key, 0) + 2
    return nodes, producer, consumers


def fold_plan(network):
    """`[(linear, batch_norm, activation or None), ...]`: the chains `inference_network` folds."""
    nodes, producer, consumers = _graph(network)
    plan = []
    for node in nodes:
        norm = node.operation
        if not _is_batch_norm(norm) or len(node.outputs) != 1:
            continue
        if norm.axis not in (-1, len(node.outputs[0].shape) - 1):
            continue
        linear = producer.get(id(norm))
        if isinstance(linear, keras.layers.Cropping2D) and consumers.get(id(linear)) == 1:
            linear = producer.get(id(linear))
        if linear is None or not is_foldable_linear(linear) or consumers.get(id(linear)) != 1:
            continue
        activation = None
        if consumers.get(id(norm)) == 1:
            followers = [other.operation for other in nodes
                         if producer.get(id(other.operation)) is norm]
            if len(followers) == 1 and _is_elementwise(followers[0]):
                activation = followers[0]
        plan.append((linear, norm, activation))
    return plan


class _PassThrough(keras.layers.Layer):
    """The identity, standing in for a layer folded into a `FoldedConvolution`."""

    def call(self, inputs, training=None, mask=None):
        return inputs


class InferenceNetwork(keras.Model):
    """`network(x, training=False)` with its foldable chains folded (module docstring).

    Args:
        network: a built functional `keras.Model`.
        phases: passed to every `FoldedConvolution` ("auto": see there).

    Input and output: the network's. Not meant to be saved: it is derived from `network` and shares
    its variables; save the network instead.
    """

    def __init__(self, network, phases="auto", **kwargs):
        super().__init__(dtype=network.dtype_policy, autocast=False,
                         name=kwargs.pop("name", f"{network.name}_inference"), **kwargs)
        self.network = network
        self.folded = []
        replacement = {}
        for linear, norm, activation in fold_plan(network):
            folded = FoldedConvolution(linear, norm, activation, phases=phases,
                                       name=f"{linear.name}_folded")
            self.folded.append(folded)
            replacement[id(linear)] = folded
            for absorbed in (norm, activation):
                if absorbed is not None:
                    # Never a cast: a layer under the global float32 policy would cast a
                    # bfloat16 network's activations to float32 and back (25% of a decode).
                    replacement[id(absorbed)] = _PassThrough(
                        name=f"{absorbed.name}_folded_away", dtype=absorbed.dtype_policy,
                        autocast=False)
        self._replacement = replacement
        self.built = True

    def call(self, inputs):
        network = self.network

        def operation_fn(operation):
            stand_in = self._replacement.get(id(operation))
            if stand_in is not None:
                return stand_in
            if "training" in getattr(operation, "_call_context_args", {}) or getattr(
                    operation, "_call_has_training_arg", False):
                return lambda *args, **kwargs: operation(*args, training=False, **kwargs)
            return operation

        outputs = network._run_through_graph(network._standardize_inputs(inputs),
                                             operation_fn=operation_fn)
        return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs


class _Held:
    """A plain holder: Keras' saving walks a model's attributes and would save a model stored there."""

    def __init__(self, value):
        self.value = value


# None: fold on TensorFlow only (module docstring); True / False inside a `folding` block.
_FOLDING = {"enabled": None}


@contextlib.contextmanager
def folding(enabled):
    """Within the block, `inference_network` folds (True) or returns every network as it is
    (False), on any backend: for comparing the two paths (`tools/reproduce/table1_fold_check.py`).
    Outside any block it folds on TensorFlow only (module docstring).

    >>> with folding(False):
    ...     pass  # model.decode(...) runs the decoder's own layers here
    """
    previous = _FOLDING["enabled"]
    _FOLDING["enabled"] = bool(enabled)
    try:
        yield
    finally:
        _FOLDING["enabled"] = previous


def inference_network(network):
    """The network to run for inference: an `InferenceNetwork` of `network` (built once and kept
    with it) when it has BatchNormalization chains to fold, else `network` itself.

    Only functional networks are rewritten; any other model is returned as it is, and every network
    on JAX (unless inside a `folding(True)` block) or inside a `folding(False)` block."""
    enabled = _FOLDING["enabled"]
    if enabled is None:
        enabled = keras.backend.backend() == "tensorflow"
    if not enabled:
        return network
    held = network.__dict__.get("_crvae_inference_network")
    if held is not None:
        return held.value
    value = network
    if isinstance(network, keras.Model) and hasattr(network, "_nodes_by_depth") and fold_plan(
            network):
        value = InferenceNetwork(network)
    network._crvae_inference_network = _Held(value)
    return value
