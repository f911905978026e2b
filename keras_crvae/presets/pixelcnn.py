"""The PixelCNN presets (likelihood job): PixelCNN and Gated PixelCNN on binarized and grey MNIST.

Sources: van den Oord et al. 2016a ("Pixel Recurrent Neural Networks", section 3.4, table 4:
PixelCNN 81.30 nats on binarized MNIST) and 2016b ("Conditional Image Generation with PixelCNN
Decoders", section 2). The papers' MNIST models are large (the PixelRNN paper does not give the
PixelCNN's MNIST width); these presets are CPU-sized, our choice: 32 features per stack (the
residual stream 64), 7x7 first kernel, 3x3 afterwards, Adam 1e-3 at batch 64, no decay.

    mnist_pixelcnn             7x7 type A + 8 residual blocks; receptive field 11 with a blind spot
    mnist_gated_pixelcnn       8 gated layers, the first 7x7 (receptive field 10, no blind spot)
    mnist_gated_pixelcnn_large 12 gated layers of 64 features (receptive field 14), 16 epochs: the
                               issue 28 model for the ~6 machine-hour budget (mnist_pixelcnn
                               plateaued near 89-90 nats within its first hour)
    mnist_gated_pixelcnn_grey  the gated network with a 256-way softmax on grey levels (bits/dim)
    mnist_pixelcnn_quickstart  a tiny gated model (2 layers, 8 features) for smoke runs and tests

Data units and metrics are the likelihood job's (`keras_crvae.jobs.likelihood`): binary MNIST in
nats per image, grey levels in bits/dim.
"""

from keras_crvae.presets.core import TrainingConfig, make_optimizer, register
from keras_crvae.presets.likelihood import LikelihoodPreset

IMAGE_SHAPE = (28, 28, 1)
LEVELS = {"binary": 1, "grey256": 256}


def _training(epochs, learning_rate=1e-3, batch_size=64):
    # Plain Adam at a constant rate (no step decay, no recurrent parts).
    return TrainingConfig(learning_rate=learning_rate, batch_size=batch_size, epochs=epochs,
                          lr_decay_every_epochs=0, recurrent_gradient_clip=None)


def _gated(filters, num_layers, first_kernel_size=7, kernel_size=3):
    return {"builder": "gated_pixelcnn", "filters": filters, "num_layers": num_layers,
            "kernel_size": kernel_size, "first_kernel_size": first_kernel_size}


PIXELCNN_PRESETS = [
    LikelihoodPreset(
        "mnist_pixelcnn", "PixelCNN: 7x7 type-A conv, 8 residual blocks of 3x3 type-B convs "
        "(h=32), ReLU-1x1-ReLU-1x1 output, Bernoulli pixels, binarized MNIST.",
        "van den Oord et al. 2016a, sections 3.4-3.5, Table 4 (width and depth: our CPU choice)",
        {"builder": "pixelcnn", "filters": 32, "residual_blocks": 8, "kernel_size": 3,
         "first_kernel_size": 7},
        {"data_kind": "binary"}, _training(epochs=20), paper_nll=81.30),
    LikelihoodPreset(
        "mnist_gated_pixelcnn", "Gated PixelCNN: 7x7 first layer + 7 gated 3x3 layers (32 "
        "features per stack), no blind spot, Bernoulli pixels, binarized MNIST.",
        "van den Oord et al. 2016b, section 2 (width and depth: our CPU choice)",
        _gated(32, 8), {"data_kind": "binary"}, _training(epochs=20)),
    LikelihoodPreset(
        "mnist_gated_pixelcnn_large", "Gated PixelCNN, larger: 7x7 first layer + 11 gated 3x3 "
        "layers (64 features per stack; receptive field 14 rows up), Bernoulli pixels, binarized "
        "MNIST; 16 epochs, sized for ~6 machine-hours at one thread.",
        "van den Oord et al. 2016b, section 2 (width and depth: our CPU choice)",
        _gated(64, 12), {"data_kind": "binary"}, _training(epochs=16)),
    LikelihoodPreset(
        "mnist_gated_pixelcnn_grey", "The mnist_gated_pixelcnn network with a 256-way softmax "
        "per pixel on grey-level MNIST (bits/dim).",
        "van den Oord et al. 2016a, section 3.1 (discrete softmax); 2016b, section 2",
        _gated(32, 8), {"data_kind": "grey256"}, _training(epochs=20)),
    LikelihoodPreset(
        "mnist_pixelcnn_quickstart", "A tiny Gated PixelCNN (3x3 kernels, 2 layers, 8 features), "
        "2 epochs: smoke runs and tests.", "van den Oord et al. 2016b (shape only)",
        _gated(8, 2, first_kernel_size=3), {"data_kind": "binary"}, _training(epochs=2)),
]


def build_pixelcnn_network(network, data_kind, image_shape=IMAGE_SHAPE):
    """The network of a PixelCNN preset's `network` dict for `data_kind` images."""
    from keras_crvae import networks

    settings = {key: value for key, value in network.items() if key != "builder"}
    build = {"pixelcnn": networks.build_pixelcnn,
             "gated_pixelcnn": networks.build_gated_pixelcnn}[network["builder"]]
    return build(image_shape, levels=LEVELS[data_kind], **settings)


def build_pixelcnn_from_preset(preset, steps_per_epoch=None, compile=True, seed=None):
    """`models.PixelCNN` of a preset, compiled with Adam at the preset's learning rate."""
    from keras_crvae.models import PixelCNN

    del seed  # deterministic training; sampling takes its own seed
    data_kind = preset.model["data_kind"]
    model = PixelCNN(build_pixelcnn_network(preset.network, data_kind), data_kind=data_kind,
                     name=preset.name)
    if compile:
        model.compile(optimizer=make_optimizer(preset.training, steps_per_epoch))
    return model


for _builder in ("pixelcnn", "gated_pixelcnn"):
    register([p for p in PIXELCNN_PRESETS if p.network["builder"] == _builder], _builder,
             build_pixelcnn_from_preset, job="likelihood")
