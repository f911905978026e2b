"""keras_crvae: channel-recurrent VAEs (crVAE, crVAE-GAN) and the Two-Stage VAE in Keras 3.

>>> import keras_crvae
>>> model = keras_crvae.from_preset("mnist_crvae")      # the paper's MNIST crVAE, compiled
>>> "mnist_two_stage" in keras_crvae.list_presets()      # also the Two-Stage VAE presets
True
"""

__version__ = "0.1.0"

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
