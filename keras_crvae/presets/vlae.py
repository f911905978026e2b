"""The VLAE presets (vae job): Burda et al.'s 1-layer MLP encoder over a PixelCNN decoder of small
receptive field, on dynamically binarized MNIST.

Source: Chen et al. 2017 ("Variational Lossy Autoencoder", sections 2-3 and 5.1: a VAE whose
decoder is a PixelCNN with a local receptive field, 79.03 nats on dynamically binarized MNIST with
an autoregressive-flow prior, which is not built here). Our choices: the encoder of the lecture's
1-layer VAE (`mnist_mlp_vae`: 50 latents, 200-200 tanh, 86.76 nats in the IWAE paper), so the two
compare at an equal encoder; z decoded by a 200-200 tanh MLP to a 28x28x4 condition map; a
conditional Gated PixelCNN of 3 layers of 3x3 kernels (receptive field: 3 pixels left, 4 rows up,
3 columns either side); the ELBO (`reconstruction_reduction="sum"`, `kl_weight=1`); Adam 1e-3.

    mnist_vlae              the model above, 50 epochs
    mnist_vlae_quickstart   20 latents, 8 PixelCNN features, 2 layers, 2 epochs: smoke runs

`tools/studies/vlae_receptive_field.py` varies `num_layers` (the receptive field) and reports
the KL, the active units and the NLL of each.
"""

from keras_crvae.presets.core import Preset, TrainingConfig, make_optimizer, register

SOURCE = ("Chen et al. 2017, sections 2-3; encoder of Burda et al. 2016 (mnist_mlp_vae); "
          "PixelCNN width and depth: our choice")
VLAE_OBJECTIVE = {"kl_weight": 1.0, "reconstruction_reduction": "sum", "iwae_samples": 1}


def _network(latent_dim=50, hidden_units=(200, 200), condition_channels=4, filters=32,
             num_layers=3, kernel_size=3, first_kernel_size=3):
    return {"builder": "vlae", "latent_dim": latent_dim, "hidden_units": list(hidden_units),
            "condition_channels": condition_channels, "filters": filters,
            "num_layers": num_layers, "kernel_size": kernel_size,
            "first_kernel_size": first_kernel_size}


def _training(epochs):
    return TrainingConfig(learning_rate=1e-3, batch_size=64, epochs=epochs,
                          lr_decay_every_epochs=0, recurrent_gradient_clip=None)


VLAE_PRESETS = [
    Preset("mnist_vlae", "VLAE: 50-latent MLP encoder, z -> 28x28x4 map, conditional Gated "
           "PixelCNN decoder of 3 layers (receptive field 3), ELBO.", SOURCE, _network(),
           dict(VLAE_OBJECTIVE), _training(epochs=50), 79.03),
    Preset("mnist_vlae_quickstart", "A tiny VLAE (20 latents, 2 PixelCNN layers of 8 features), "
           "2 epochs.", SOURCE,
           _network(latent_dim=20, hidden_units=(64,), condition_channels=2, filters=8,
                    num_layers=2), dict(VLAE_OBJECTIVE), _training(epochs=2)),
]


def build_vlae_networks(network, image_shape=(28, 28, 1)):
    """(encoder, decoder, pixelcnn) of a VLAE preset's `network` dict."""
    from keras_crvae import networks

    hidden = tuple(network["hidden_units"])
    condition_shape = tuple(image_shape[:2]) + (network["condition_channels"],)
    encoder = networks.build_mlp_gaussian(image_shape, network["latent_dim"], hidden_units=hidden,
                                          name="encoder")
    decoder = networks.build_mlp_bernoulli_decoder(network["latent_dim"], hidden_units=hidden,
                                                   image_shape=condition_shape,
                                                   name="condition_decoder")
    pixelcnn = networks.build_gated_pixelcnn(
        image_shape, filters=network["filters"], num_layers=network["num_layers"],
        kernel_size=network["kernel_size"], first_kernel_size=network["first_kernel_size"],
        condition_shape=condition_shape)
    return encoder, decoder, pixelcnn


def build_vlae_from_preset(preset, steps_per_epoch=None, compile=True, seed=None):
    """`models.VLAE` of a preset, compiled with Adam at the preset's learning rate."""
    from keras_crvae.models import VLAE

    model = VLAE(*build_vlae_networks(preset.network), seed=seed, name=preset.name,
                 **preset.model)
    if compile:
        model.compile(optimizer=make_optimizer(preset.training, steps_per_epoch))
    return model


register(VLAE_PRESETS, "vlae", build_vlae_from_preset, build_vlae_networks, job="vae")
