"""Training precision: float32, or mixed bfloat16 with the numerically sensitive parts in float32.

`precision="bfloat16"` builds a model's layers under Keras' `mixed_bfloat16` dtype policy: variables,
optimizer state and BatchNorm statistics stay float32, convolutions, matmuls and the LSTM run in
bfloat16 (oneDNN's AVX512-BF16 / AMX kernels on CPUs that have them, tensor cores on GPUs). The models
cast every tensor that enters a density to float32 at the network boundary (`VAE.call`, `encode`,
`decode_logits`; the same in the GAN and Two-Stage models), so log-likelihoods, KLs, log-sum-exps and
the metrics are float32, and the NLL/FID evaluators accumulate in float64 whatever the training
precision (docs/design.md section 9).

    >>> import keras
    >>> from keras_crvae import precision
    >>> precision.resolve("float32")
    'float32'
    >>> with precision.scope("bfloat16"):
    ...     layer = keras.layers.Dense(2)
    >>> layer.dtype_policy.name
    'mixed_bfloat16'

"auto" picks bfloat16 where it is measured to be faster (`docs/performance.md`): the TensorFlow
backend on a CPU with native bfloat16 arithmetic (AVX512-BF16 or AMX; oneDNN's kernels) and no
accelerator in use. Elsewhere it picks float32 (XLA:CPU under JAX gained nothing from bfloat16 here),
so it is never slower than float32.
"""

import contextlib
import functools
import os

# Keras is imported by the functions that use it: `presets` (and through it the `crvae` flag
# checks, which run before TensorFlow loads) needs only `normalize` from here.

PRECISIONS = ("float32", "bfloat16", "auto")
_ALIASES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
            "mixed_bfloat16": "bfloat16", "auto": "auto"}
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}
_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def normalize(precision):
    """The canonical name ("float32", "bfloat16" or "auto") of `precision`; aliases `fp32`, `bf16`
    and `mixed_bfloat16` are accepted. Raises ValueError naming the accepted values."""
    key = str(precision).strip().lower() if precision is not None else "float32"
    if key not in _ALIASES:
        raise ValueError(
            f"`precision` must be one of {PRECISIONS} (or fp32 / bf16); got {precision!r}.")
    return _ALIASES[key]


@functools.lru_cache(maxsize=None)
def cpu_flags(cpuinfo_path="/proc/cpuinfo"):
    """The CPU's feature flags (a frozenset of str) from the first `flags` line of Linux's
    `/proc/cpuinfo`; empty where there is no such file (other systems)."""
    try:
        with open(cpuinfo_path) as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_model_name(cpuinfo_path="/proc/cpuinfo"):
    """The CPU's model name (Linux `/proc/cpuinfo`, else `platform.processor()`)."""
    import platform

    model = platform.processor() or platform.machine() or "unknown CPU"
    try:
        with open(cpuinfo_path) as handle:
            return next((line.split(":", 1)[1].strip() for line in handle
                         if line.startswith("model name")), model)
    except OSError:
        return model


def cpu_description(cpuinfo_path="/proc/cpuinfo"):
    """The machine in words for run records and timings: the CPU's model name (Linux
    `/proc/cpuinfo`, else `platform.processor()`), its core count and its native bfloat16 flags,
    e.g. "AMD EPYC, 2 cores, avx512_bf16" or "Intel(R) Xeon(R) Platinum 8481C, 2 cores, amx_bf16,
    avx512_bf16"."""
    import os

    flags = sorted(flag for flag in _BF16_CPU_FLAGS if flag in cpu_flags(cpuinfo_path))
    return ", ".join([cpu_model_name(cpuinfo_path), f"{os.cpu_count()} cores"] + flags)


def cpu_supports_bfloat16(cpuinfo_path="/proc/cpuinfo"):
    """True when the CPU advertises native bfloat16 arithmetic (Linux `avx512_bf16` or `amx_bf16`)."""
    return any(flag in cpu_flags(cpuinfo_path) for flag in _BF16_CPU_FLAGS)


def cpu_has_amx(cpuinfo_path="/proc/cpuinfo"):
    """True when the CPU has AMX bfloat16 tiles (Linux `amx_bf16`: Intel Xeon from Sapphire Rapids).
    There oneDNN's bfloat16 convolutions are fast enough that fusing bias and activation into them
    pays for extra multiply-adds (`FoldedConvolution`'s phases, docs/performance.md section 0)."""
    return "amx_bf16" in cpu_flags(cpuinfo_path)


def _accelerator_in_use():
    """True when the backend computes on a GPU/TPU (where "auto" keeps float32: not measured here)."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "jax":
            import jax

            return jax.default_backend() != "cpu"
        if backend == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
        if backend == "torch":
            import torch

            return bool(torch.cuda.is_available())
    except Exception:  # a broken accelerator runtime is not one in use
        return False
    return False


def resolve(precision):
    """"float32" or "bfloat16" for `precision` ("auto": bfloat16 on the TensorFlow backend when
    `cpu_supports_bfloat16` and no accelerator is in use; `KERAS_CRVAE_PRECISION` overrides what
    "auto" decides)."""
    precision = normalize(precision)
    if precision != "auto":
        return precision
    forced = os.environ.get("KERAS_CRVAE_PRECISION")
    if forced:
        return resolve(forced) if normalize(forced) != "auto" else "float32"
    import keras

    if (keras.backend.backend() == "tensorflow" and cpu_supports_bfloat16()
            and not _accelerator_in_use()):
        return "bfloat16"
    return "float32"


def describe(precision, used=None):
    """One phrase for the user: the precision in use and, for "auto", why it was chosen, e.g.
    "bfloat16 (auto: this CPU has native bfloat16 arithmetic)". `used`: what the model computes
    in (default: `resolve(precision)`)."""
    precision = normalize(precision)
    used = used or resolve(precision)
    if precision != "auto":
        return used
    if os.environ.get("KERAS_CRVAE_PRECISION"):
        why = "KERAS_CRVAE_PRECISION is set"
    elif used == "bfloat16":
        why = "this CPU has native bfloat16 arithmetic"
    else:
        import keras

        if keras.backend.backend() != "tensorflow":
            why = f"bfloat16 is not faster on the {keras.backend.backend()} backend here"
        elif not cpu_supports_bfloat16():
            why = "this CPU has no native bfloat16 arithmetic"
        else:
            why = "an accelerator is in use"
    return f"{used} (auto: {why})"


def from_global_policy():
    """The precision Keras' global dtype policy asks for, or None when it is the default float32.

    `keras.mixed_precision.set_global_policy("mixed_bfloat16")` (or "bfloat16") -> "bfloat16", so
    that `from_preset` without `precision` follows the standard Keras switch. Raises ValueError
    (one line) for a policy the library does not train in, e.g. "mixed_float16" (float16 needs
    loss scaling, which the models' custom steps do not do).
    """
    import keras

    name = keras.config.dtype_policy().name
    if name == "float32":
        return None
    if name in ("mixed_bfloat16", "bfloat16"):
        return "bfloat16"
    raise ValueError(
        f"Keras' global dtype policy is {name!r}; keras_crvae trains in float32 or mixed "
        "bfloat16 only: set_global_policy('mixed_bfloat16') or 'float32', or pass precision=.")


def policy_name(precision):
    """The Keras dtype policy of `precision`: "float32" or "mixed_bfloat16"."""
    return _POLICIES[resolve(precision)]


@contextlib.contextmanager
def scope(precision):
    """Layers created inside take the dtype policy of `precision`; the previous global policy is
    restored on exit (also on error). Not thread-safe: Keras' policy is process-global."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy_name(precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def of_model(model):
    """"bfloat16" when any layer of `model` computes in bfloat16, else "float32"."""
    for layer in _layers(model):
        if getattr(layer, "compute_dtype", "float32") == "bfloat16":
            return "bfloat16"
    return "float32"


def _layers(model):
    yield model
    for layer in getattr(model, "_flatten_layers", lambda **_: [])(include_self=False, recursive=True):
        yield layer
