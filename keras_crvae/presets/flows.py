"""The flow models of the lecture on MNIST 28x28x1 grey levels (never padded), trained by the
`likelihood` job with uniform dequantization (`keras_crvae.models.FlowModel`, docs/flows.md).

- `mnist_nice`: NICE at paper size (Dinh et al. 2014, section 5.1 and Table 2): 4 additive
  couplings whose coupling functions have 5 hidden layers of 1000 ReLU units, diagonal scaling,
  logistic prior, data (x + u) / 256 in [0, 1) without logit. Optimiser: Adam 1e-3 with epsilon
  1e-4 as in the paper's section 5.1; the paper's second-moment decay (0.99, written beta2 = 0.01
  in the old notation) is the library's 0.999 here, and the batch size (200) and the 1,500
  epochs are this preset's choices (the paper's PDF is not in ../shared/papers to check them).
  Paper: log-likelihood 1980.50 nats on the [0, 1] scale (`log_likelihood_unit_scale`); on the
  0..255 scale that is 1980.50 - 784 ln 256 = -2366.9 nats, i.e. 4.36 bits/dim (docs/flows.md).
- `mnist_realnvp`: RealNVP multi-scale, 2 scales (28 -> 14 -> 7), 3 checkerboard + 3 channel
  couplings per scale and 4 final checkerboard couplings, ResNet coupling nets of 32 channels and
  2 blocks, tanh scale, logit alpha 0.05, Gaussian prior (Dinh et al. 2017, sections 3-4). The
  coupling nets are narrower than the paper's 64 features so that ~20 epochs fit in ~3 CPU-hours
  (64 channels cost ~4x more per step; `--set hidden_channels=64`).
- `mnist_glow`: Glow small, 2 levels of 8 steps (actnorm, 1x1 conv, affine coupling with sigmoid
  scale), coupling nets of 128 channels, logit alpha 0.05, Gaussian prior with Glow's learned
  prior of the split-off half (Kingma & Dhariwal 2018, section 3); sized for a few CPU-hours.
- `mnist_flow_quickstart`: a tiny RealNVP for tests and smoke runs (2 epochs).

RealNVP and Glow report ~1.06 / 1.05 bits/dim at full size on dequantized MNIST; the goal for
the CPU-sized presets here is <= 1.3 bits/dim.
"""

import dataclasses

from keras_crvae import precision as crvae_precision
from keras_crvae.presets.core import TrainingConfig, make_optimizer, register
from keras_crvae.presets.likelihood import LikelihoodPreset

# 2x2 squeezes that 28x28 images allow (28 -> 14 -> 7), per multi-scale builder's setting.
SQUEEZE_SETTINGS = {"realnvp": ("scales", 0), "glow": ("levels", 1)}
MAX_SQUEEZES = 2


@dataclasses.dataclass(frozen=True)
class FlowPreset(LikelihoodPreset):
    """A `LikelihoodPreset` of a flow; checks, before Keras loads, that the multi-scale
    settings fit 28x28 images (so `crvae train --set levels=3` is refused with one line)."""

    def __post_init__(self):
        super().__post_init__()
        key, low = SQUEEZE_SETTINGS.get(self.network["builder"], (None, 0))
        if key is not None and not low <= self.network[key] <= MAX_SQUEEZES:
            raise ValueError(f"`{key}`={self.network[key]!r}: expected {low} to {MAX_SQUEEZES} "
                             "(each scale squeezes 2x2 and 28x28 images allow two squeezes: "
                             "28 -> 14 -> 7)")

NICE_PAPER = {"metric": "log_likelihood_unit_scale", "value": 1980.50, "unit": "nats",
              "source": "Dinh, Krueger & Bengio 2014, Table 2 (MNIST, log-likelihood of the "
                        "dequantized data rescaled to [0, 1])"}


def _training(learning_rate=1e-3, batch_size=64, epochs=100, adam_epsilon=1e-8):
    # No step decay, no recurrent parts: plain Adam at a constant rate.
    return TrainingConfig(learning_rate=learning_rate, batch_size=batch_size, epochs=epochs,
                          lr_decay_every_epochs=0, recurrent_gradient_clip=None,
                          adam_epsilon=adam_epsilon)


FLOW_PRESETS = [
    FlowPreset(
        "mnist_nice", "NICE: 4 additive couplings (5x1000 ReLU), diagonal scaling, logistic "
        "prior, on dequantized MNIST in [0, 1).",
        "Dinh, Krueger & Bengio 2014, sections 3 and 5.1, Table 2",
        {"builder": "nice", "coupling_layers": 4, "hidden_units": 1000, "hidden_layers": 5},
        {"data_kind": "grey256", "prior": "logistic", "logit_alpha": None},
        _training(learning_rate=1e-3, batch_size=200, epochs=1500, adam_epsilon=1e-4),
        paper_result=NICE_PAPER),
    FlowPreset(
        "mnist_realnvp", "RealNVP multi-scale (2 scales, 3+3 couplings each, 4 final), ResNet "
        "coupling nets (32 channels, 2 blocks), Gaussian prior, logit preprocessing.",
        "Dinh, Sohl-Dickstein & Bengio 2017, sections 3.4-3.6 and 4.1",
        {"builder": "realnvp", "scales": 2, "couplings_per_stage": 3, "final_couplings": 4,
         "hidden_channels": 32, "residual_blocks": 2, "scale_function": "tanh"},
        {"data_kind": "grey256", "prior": "gaussian", "logit_alpha": 0.05},
        _training(learning_rate=1e-3, batch_size=64, epochs=20)),
    FlowPreset(
        "mnist_glow", "Glow small: 2 levels x 8 steps (actnorm, invertible 1x1 conv, affine "
        "coupling), coupling nets of 128 channels, Gaussian prior, logit preprocessing.",
        "Kingma & Dhariwal 2018, section 3, Table 1",
        {"builder": "glow", "levels": 2, "steps_per_level": 8, "hidden_channels": 128,
         "learned_split_prior": True},
        {"data_kind": "grey256", "prior": "gaussian", "logit_alpha": 0.05},
        _training(learning_rate=1e-3, batch_size=64, epochs=40)),
    FlowPreset(
        "mnist_flow_quickstart", "A tiny RealNVP (1 scale, 1+1 couplings, 2 final, 8 channels) "
        "for tests and smoke runs.", "Dinh et al. 2017 (shape only)",
        {"builder": "realnvp", "scales": 1, "couplings_per_stage": 1, "final_couplings": 2,
         "hidden_channels": 8, "residual_blocks": 1, "scale_function": "tanh"},
        {"data_kind": "grey256", "prior": "gaussian", "logit_alpha": 0.05},
        _training(learning_rate=1e-3, batch_size=64, epochs=2)),
]

PRIORS = ("gaussian", "logistic")


def build_flow(network, image_shape=(28, 28, 1), seed=None):
    """The bijector of a flow preset's `network` dict (`keras_crvae.networks.flows`)."""
    from keras_crvae import networks

    settings = {key: value for key, value in network.items() if key != "builder"}
    builders = {"nice": networks.build_nice_flow, "realnvp": networks.build_realnvp_flow,
                "glow": networks.build_glow_flow}
    if network["builder"] == "glow":
        settings["seed"] = seed
    return builders[network["builder"]](image_shape=image_shape, **settings)


def build_flow_from_preset(preset, steps_per_epoch=None, compile=True, seed=None):
    """`FlowModel` of a flow preset, compiled with Adam at the preset's learning rate.

    Flows compute in float32 only: a log-likelihood sums hundreds of log-determinant terms per
    image, which bfloat16's 8-bit mantissa would round away. `precision="auto"` builds float32;
    `"bfloat16"` is refused."""
    from keras_crvae import layers
    from keras_crvae.models import FlowModel

    if preset.training.precision == "bfloat16":
        raise ValueError("`precision`='bfloat16': the flows train in float32 only (their "
                         "log-likelihoods sum hundreds of log-determinant terms); expected "
                         "float32")
    model_config = dict(preset.model)
    prior_name = model_config.pop("prior")
    if prior_name not in PRIORS:
        raise ValueError(f"`prior` must be one of {PRIORS}, got {prior_name!r}.")
    prior = layers.StandardGaussian() if prior_name == "gaussian" else layers.StandardLogistic()
    with crvae_precision.scope("float32"):
        model = FlowModel(build_flow(preset.network, seed=seed), prior, seed=seed,
                          name=preset.name, **model_config)
    if compile:
        model.compile(optimizer=make_optimizer(preset.training, steps_per_epoch))
    return model


for _builder in ("nice", "realnvp", "glow"):
    register([p for p in FLOW_PRESETS if p.network["builder"] == _builder], _builder,
             build_flow_from_preset, job="likelihood")
