"""The VQ-VAE presets (vq_vae job): MNIST and the 64x64 faces, each with a Gated PixelCNN prior.

Source: van den Oord et al. 2017 ("Neural Discrete Representation Learning", section 4.1 and
appendix A.1): two stride-2 4x4 convolutions, two residual 3x3 blocks, 256 hidden units, K=512,
beta=0.25, EMA decay 0.99, Adam 2e-4, and a PixelCNN prior trained afterwards on the code maps.
CPU-sized here (our choice): 32 hidden units, D=16, K=64 (MNIST) / 128 (faces), Adam 1e-3; dead
codes restart below an EMA count of 1 (Dhariwal et al. 2020), against the codebook collapse.

    mnist_vq_vae    28x28 grey MNIST in [0, 1] -> 7x7 codes, K=64; prior: Gated PixelCNN, 5 layers
    faces_vq_vae    64x64 RGB faces (CelebA, `--data=.../celeba64_subset.npz`) -> 16x16 codes,
                    K=128; prior: Gated PixelCNN, 6 layers
    mnist_vq_vae_quickstart   a tiny MNIST model, 1 + 1 epochs: smoke runs and tests

`model` holds the VQVAE's arguments and the prior's training (`prior_epochs`, `prior_filters`,
`prior_layers`, `prior_learning_rate`); `network` the encoder/decoder widths and the image shape.
"""

from keras_crvae.presets.core import Preset, TrainingConfig, make_optimizer, register

PRIOR_KEYS = ("prior_epochs", "prior_filters", "prior_layers", "prior_learning_rate")


def _training(epochs, learning_rate=1e-3, batch_size=64):
    return TrainingConfig(learning_rate=learning_rate, batch_size=batch_size, epochs=epochs,
                          lr_decay_every_epochs=0, recurrent_gradient_clip=None)


def _network(image_shape, filters=32, code_dim=16, downsamples=2, residual_blocks=2):
    return {"builder": "vq_vae", "image_shape": list(image_shape), "filters": filters,
            "code_dim": code_dim, "downsamples": downsamples, "residual_blocks": residual_blocks}


def _model(num_codes, prior_epochs, prior_filters=32, prior_layers=5):
    return {"num_codes": num_codes, "commitment_cost": 0.25, "decay": 0.99,
            "restart_threshold": 1.0, "prior_epochs": prior_epochs,
            "prior_filters": prior_filters, "prior_layers": prior_layers,
            "prior_learning_rate": 1e-3}


SOURCE = "van den Oord et al. 2017, section 4.1, appendix A.1 (widths: our CPU choice)"
VQ_VAE_PRESETS = [
    Preset("mnist_vq_vae", "VQ-VAE on grey MNIST: 7x7 code map, K=64, EMA codebook with "
           "restarts; Gated PixelCNN prior (5 layers) on the codes.", SOURCE,
           _network((28, 28, 1)), _model(64, prior_epochs=10), _training(epochs=10)),
    Preset("faces_vq_vae", "VQ-VAE on 64x64 faces: 16x16 code map, K=128; Gated PixelCNN prior "
           "(6 layers) on the codes.", SOURCE,
           _network((64, 64, 3)), _model(128, prior_epochs=10, prior_layers=6),
           _training(epochs=10)),
    Preset("mnist_vq_vae_quickstart", "A tiny MNIST VQ-VAE (8 hidden units, K=16) and prior "
           "(2 layers), 1 + 1 epochs.", SOURCE,
           _network((28, 28, 1), filters=8, code_dim=4, residual_blocks=1),
           _model(16, prior_epochs=1, prior_filters=8, prior_layers=2), _training(epochs=1)),
]


def build_vq_networks(network):
    """(encoder, decoder) of a VQ-VAE preset's `network` dict."""
    from keras_crvae import networks

    image_shape = tuple(network["image_shape"])
    encoder = networks.build_vq_encoder(image_shape, filters=network["filters"],
                                        code_dim=network["code_dim"],
                                        downsamples=network["downsamples"],
                                        residual_blocks=network["residual_blocks"])
    decoder = networks.build_vq_decoder(tuple(encoder.output_shape[1:]),
                                        image_channels=image_shape[-1],
                                        filters=network["filters"],
                                        upsamples=network["downsamples"],
                                        residual_blocks=network["residual_blocks"])
    return encoder, decoder


def build_vq_vae_from_preset(preset, steps_per_epoch=None, compile=True, seed=None):
    """`models.VQVAE` of a preset (without its prior, which the job trains afterwards)."""
    from keras_crvae.models import VQVAE

    encoder, decoder = build_vq_networks(preset.network)
    settings = {key: value for key, value in preset.model.items() if key not in PRIOR_KEYS}
    model = VQVAE(encoder, decoder, seed=seed, name=preset.name, **settings)
    if compile:
        model.compile(optimizer=make_optimizer(preset.training, steps_per_epoch))
    return model


def build_prior_from_preset(preset, code_map_shape):
    """The compiled categorical Gated PixelCNN prior over `(h, w)` code maps of a preset."""
    import dataclasses

    from keras_crvae import networks
    from keras_crvae.models import PixelCNN

    num_codes = preset.model["num_codes"]
    network = networks.build_gated_pixelcnn(
        tuple(code_map_shape) + (num_codes,), levels=num_codes, color_channels=1,
        filters=preset.model["prior_filters"], num_layers=preset.model["prior_layers"],
        name="prior_pixelcnn")
    prior = PixelCNN(network, data_kind="categorical", name="prior")
    training = dataclasses.replace(preset.training,
                                   learning_rate=preset.model["prior_learning_rate"])
    prior.compile(optimizer=make_optimizer(training))
    return prior


register(VQ_VAE_PRESETS, "vq_vae", build_vq_vae_from_preset, build_vq_networks, job="vq_vae")
