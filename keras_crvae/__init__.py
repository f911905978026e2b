"""keras_crvae: channel-recurrent VAEs (crVAE, crVAE-GAN) and the Two-Stage VAE in Keras 3.

>>> import keras_crvae
>>> model = keras_crvae.from_preset("mnist_crvae")      # the paper's MNIST crVAE, compiled
>>> "mnist_two_stage" in keras_crvae.list_presets()      # also the Two-Stage VAE presets
True
"""

__version__ = "0.1.0"

_LAZY_ATTRIBUTES = {
    "adversarial": "keras_crvae.adversarial", "layers": "keras_crvae.layers",
    "losses": "keras_crvae.losses",
    "models": "keras_crvae.models", "networks": "keras_crvae.networks",
    "optimizers": "keras_crvae.optimizers",
    "from_preset": "keras_crvae.presets", "get_preset": "keras_crvae.presets",
    "list_presets": "keras_crvae.presets",
    "list_pretrained": "keras_crvae.pretrained", "load_pretrained": "keras_crvae.pretrained",
}


def __getattr__(name):
    """Imports a public attribute on first use (PEP 562): `adversarial`, which is not imported
    below, and any other one asked for while this file is still running (an import cycle)."""
    import importlib

    if name not in _LAZY_ATTRIBUTES:
        raise AttributeError(f"module 'keras_crvae' has no attribute {name!r}")
    module = importlib.import_module(_LAZY_ATTRIBUTES[name])
    value = module if module.__name__.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


# `import keras_crvae` loads everything, so that the library's Keras classes are registered for
# `keras.saving.load_model` the moment the package is imported; it does so whoever imports it (no
# mode depends on the program's name or arguments). The `crvae` console script, which checks the
# user's flags before TensorFlow loads, starts in `crvae_cli` (outside this package), which defers
# running this file until a command needs TensorFlow: see `crvae_cli`'s docstring.
from keras_crvae import layers, losses, models, networks, optimizers  # noqa: E402
from keras_crvae.presets import from_preset, get_preset, list_presets  # noqa: E402
from keras_crvae.pretrained import list_pretrained, load_pretrained  # noqa: E402

__all__ = [
    "from_preset",
    "get_preset",
    "layers",
    "list_presets",
    "losses",
    "models",
    "networks",
    "optimizers",
    "list_pretrained",
    "load_pretrained",
]
