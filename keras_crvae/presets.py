"""The papers' hyperparameters per dataset and model, as data, and `from_preset` to build them.

Sources (MNIST, supplement section B and Table 1 of Shang et al. 2018; README.md command lines and
`opts.lua`, `train_test/train_test_*_mnist.lua` of GitHub `WendyShang/crVAE`):

    th main_mnist.lua -LR 0.0003 -alpha 0.001 -latentType baseline -baseChannels 32 -nEpochs 200 \
        -eps 1e-5 -mom 0.1 -step 50                                   (VAE)
    th main_mnist.lua -LR 0.0003 -alpha 0.001 -latentType conv ...    (cVAE, same flags)
    th main_mnist.lua -LR 0.003 -timeStep 8 -alpha 0.001 -latentType lstm ...  (crVAE, same flags)

Defaults from `opts.lua`: batch 128, `-nf 64` latent channels, `-rnnLayer 2`, `-grad_clip 5` (recurrent
parts only), `-decayLR 0.5` every `-step` epochs; the recurrent parts learn at `LR / timeStep`. The
baseline and conv model files hard-code BatchNorm `eps=1e-6, momentum=0.9` (Torch) whatever the flags
say; the lstm file uses the flags (`1e-5`, Torch momentum 0.1 = Keras 0.9).

Not in the reference (our choices, documented): the @inference-only and @generation-only crVAE pair the
channel-recurrent half with the cVAE's convolutional other half and take the crVAE's flags; T=4 and
T=16 change only `-timeStep`; crIWAE trains the exact k=5 importance-weighted bound (Burda et al. 2016;
k is not given in the paper, 5 is the reference's `-nSample` default), i.e. alpha = 1/784.
"""

import dataclasses

from keras_crvae import networks
from keras_crvae.models import VAE
from keras_crvae.optimizers import MultiplierAdam

# The reference's `var_encoder`/`var_decoder`: the LSTMs, their BatchNorm and per-step Linear. The mean
# head and the latent biases belong to `vae_encoder`/`vae_decoder` and learn at the full LR.
RECURRENT_VARIABLE_PATTERNS = ("recurrence/lstm_", "recurrence/step_projection",
                               "recurrence/recurrent_batch_norm")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimisation hyperparameters of one preset (Adam, betas 0.9/0.999, eps 1e-8).

    Attributes:
        learning_rate: float, initial learning rate (`-LR`).
        batch_size: int, default 128 (`-batchSize`).
        epochs: int, default 200 (`-nEpochs`).
        lr_decay_every_epochs: int, default 50 (`-step`).
        lr_decay_rate: float, default 0.5 (`-decayLR`).
        recurrent_lr_multiplier: float, default 1.0. Multiplier of the recurrent parts' LR (1/T).
        recurrent_gradient_clip: float or None, default 5.0 (`-grad_clip`, recurrent parts only).
    """

    learning_rate: float
    batch_size: int = 128
    epochs: int = 200
    lr_decay_every_epochs: int = 50
    lr_decay_rate: float = 0.5
    recurrent_lr_multiplier: float = 1.0
    recurrent_gradient_clip: float = 5.0


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named model configuration with its source.

    Attributes:
        name: str.
        description: str.
        source: str, where the numbers come from.
        network: dict of keyword arguments of the network builders (plus `encoder_latent`,
            `decoder_latent` and `builder`).
        model: dict of keyword arguments of the model class.
        training: `TrainingConfig`.
        paper_nll: float or None, the paper's Table 1 NLL (nats) for this row.
    """

    name: str
    description: str
    source: str
    network: dict
    model: dict
    training: TrainingConfig
    paper_nll: float = None

    def with_overrides(self, **overrides):
        """A copy with fields of `network`, `model` or `training` replaced; unknown keys raise."""
        network, model = dict(self.network), dict(self.model)
        training = dataclasses.asdict(self.training)
        for key, value in overrides.items():
            for table in (network, model, training):
                if key in table:
                    table[key] = value
                    break
            else:
                valid = sorted(set(network) | set(model) | set(training))
                raise ValueError(f"Unknown override {key!r} for preset {self.name!r}; valid: {valid}.")
        if "time_steps" in overrides and "recurrent_lr_multiplier" not in overrides and (
                "recurrent" in (network["encoder_latent"], network["decoder_latent"])):
            training["recurrent_lr_multiplier"] = 1.0 / network["time_steps"]
        return dataclasses.replace(self, network=network, model=model,
                                   training=TrainingConfig(**training))


def _mnist_network(encoder_latent, decoder_latent, time_steps=8, bn_epsilon=1e-5, bn_momentum=0.9,
                   base_channels=32):
    return {
        "builder": "mnist",
        "encoder_latent": encoder_latent,
        "decoder_latent": decoder_latent,
        "base_channels": base_channels,
        "latent_channels": 64,
        "time_steps": time_steps,
        "lstm_layers": 2,
        "bn_epsilon": bn_epsilon,
        "bn_momentum": bn_momentum,
        # True: global-batch BatchNorm statistics under a tf.distribute strategy (TF only).
        "synchronized_batch_norm": False,
    }


_REFERENCE_CMD = "WendyShang/crVAE README.md `th main_mnist.lua ... -latentType {}`; opts.lua"
_MNIST_ALPHA = {"kl_weight": 0.001, "reconstruction_reduction": "mean", "iwae_samples": 1}


def _crvae(name, description, encoder_latent, decoder_latent, paper_nll, time_steps=8, **model):
    return Preset(
        name, description, _REFERENCE_CMD.format("lstm") + "; supplement B, Table 1",
        _mnist_network(encoder_latent, decoder_latent, time_steps=time_steps),
        {**_MNIST_ALPHA, **model},
        TrainingConfig(learning_rate=0.003, recurrent_lr_multiplier=1.0 / time_steps),
        paper_nll,
    )


PRESETS = {
    preset.name: preset
    for preset in [
        Preset(
            "mnist_vae", "VAE with fully connected latent (4*4*64), Table 1 'VAE'.",
            _REFERENCE_CMD.format("baseline") + "; models/allconv_baseline_mnist.lua",
            _mnist_network("dense", "dense", bn_epsilon=1e-6, bn_momentum=0.1),
            dict(_MNIST_ALPHA), TrainingConfig(learning_rate=0.0003), 82.04,
        ),
        Preset(
            "mnist_cvae", "Convolutional VAE, latent (4, 4, 64), Table 1 'cVAE'.",
            _REFERENCE_CMD.format("conv") + "; models/allconv_conv_mnist.lua",
            _mnist_network("conv", "conv", bn_epsilon=1e-6, bn_momentum=0.1),
            dict(_MNIST_ALPHA), TrainingConfig(learning_rate=0.0003), 83.12,
        ),
        _crvae("mnist_crvae", "crVAE, recurrence on both paths, T=8, Table 1 'crVAE both'.",
               "recurrent", "recurrent", 80.84),
        _crvae("mnist_crvae_inference", "crVAE, recurrence on the inference path only.",
               "recurrent", "conv", 81.86),
        _crvae("mnist_crvae_generation", "crVAE, recurrence on the generation path only.",
               "conv", "recurrent", 81.71),
        _crvae("mnist_crvae_t4", "crVAE, both paths, T=4.", "recurrent", "recurrent", 81.09,
               time_steps=4),
        _crvae("mnist_crvae_t16", "crVAE, both paths, T=16.", "recurrent", "recurrent", 81.35,
               time_steps=16),
        _crvae("mnist_criwae", "crVAE trained with the k=5 importance-weighted bound, 'crIWA'.",
               "recurrent", "recurrent", 80.02, kl_weight=1.0 / 784, iwae_samples=5),
        Preset(
            "mnist_crvae_quickstart",
            "The mnist_crvae architecture at half width (base_channels=16) for a few-minute CPU run "
            "on the embedded 10,000-image subset; the default of `crvae train`.",
            "mnist_crvae with base_channels=16, batch 64, 3 epochs (our choice, for the quick start)",
            _mnist_network("recurrent", "recurrent", base_channels=16),
            dict(_MNIST_ALPHA),
            TrainingConfig(learning_rate=0.003, batch_size=64, epochs=3,
                           recurrent_lr_multiplier=1.0 / 8),
        ),
    ]
}


def list_presets():
    """Names of all presets, sorted."""
    return sorted(PRESETS)


def get_preset(name, **overrides):
    """The `Preset` called `name`, with `overrides` applied (see `Preset.with_overrides`)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Available presets: {list_presets()}.")
    return PRESETS[name].with_overrides(**overrides)


def build_networks(network):
    """(encoder, decoder) `keras.Model`s from a preset's `network` dict."""
    config = dict(network)
    builder = config.pop("builder")
    encoder_latent, decoder_latent = config.pop("encoder_latent"), config.pop("decoder_latent")
    if builder != "mnist":
        raise ValueError(f"Unknown network builder {builder!r}.")
    return (networks.build_mnist_encoder(encoder_latent, **config),
            networks.build_mnist_decoder(decoder_latent, **config))


def make_optimizer(training, steps_per_epoch=None):
    """`MultiplierAdam` with the preset's LR, its step decay (needs `steps_per_epoch`), and the
    recurrent parts' LR multiplier and gradient clipping."""
    import keras

    learning_rate = training.learning_rate
    if steps_per_epoch is not None and training.lr_decay_every_epochs:
        if int(steps_per_epoch) < 1:
            raise ValueError(f"`steps_per_epoch` must be >= 1, got {steps_per_epoch}.")
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            training.learning_rate,
            decay_steps=int(training.lr_decay_every_epochs) * int(steps_per_epoch),
            decay_rate=training.lr_decay_rate,
            staircase=True,
        )
    clip = training.recurrent_gradient_clip
    return MultiplierAdam(
        learning_rate,
        lr_multipliers={p: training.recurrent_lr_multiplier for p in RECURRENT_VARIABLE_PATTERNS},
        clip_values={p: clip for p in RECURRENT_VARIABLE_PATTERNS} if clip else {},
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
    )


def from_preset(name, steps_per_epoch=None, compile=True, seed=None, **overrides):
    """Builds (and by default compiles) the model of a preset.

    Args:
        name: str, one of `list_presets()`.
        steps_per_epoch: int or None. When given, the optimizer halves the LR every
            `lr_decay_every_epochs` epochs as the reference does; None keeps it constant.
        compile: bool, default True. Compile with the preset's optimizer.
        seed: int or None. Seed of the posterior sampler.
        **overrides: any key of the preset's `network`, `model` or `training` tables, e.g.
            `time_steps=4`, `base_channels=16`, `learning_rate=1e-3`.

    Returns:
        `keras_crvae.models.VAE`.

    >>> model = from_preset("mnist_cvae", base_channels=4)
    """
    preset = get_preset(name, **overrides)
    encoder, decoder = build_networks(preset.network)
    model = VAE(encoder, decoder, seed=seed, name=preset.name, **preset.model)
    if compile:
        model.compile(optimizer=make_optimizer(preset.training, steps_per_epoch))
    return model
