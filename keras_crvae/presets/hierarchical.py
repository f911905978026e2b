"""Stochastic-layer stacks: Burda et al.'s MLP VAE / IWAE (1 and 2 stochastic layers) and the
2-stochastic-layer crVAE / VAE of the crVAE paper's Table 1.

IWAE table (Burda, Grosse & Salakhutdinov, "Importance Weighted Autoencoders", ICLR 2016, section 5
and Table 1; the authors' code GitHub yburda/iwae `experiments.py`, `iwae.py`, `optimizers.py`,
`datasets.py`):
- 1 stochastic layer: q(z|x) 784-200-200-50, p(x|z) 50-200-200-784; 2 stochastic layers (100 and 50
  units): q(z1|x) 784-200-200-100, q(z2|z1) 100-100-100-50, p(z1|z2) 50-100-100-100,
  p(x|z1) 100-200-200-784. tanh hidden units, diagonal Gaussians (std = exp(linear)), Bernoulli pixels,
  inference bottom-up q(z1|x) q(z2|z1). Output bias starts at the training pixels' mean logit
  (`networks.mlp.pixel_mean_logits`; `tools/reproduce/reproduce_iwae_table.py` sets it).
- Adam beta1=0.9, beta2=0.999, eps=1e-4 (paper; the authors' code uses beta1=0.99 and starts the
  second moments at 1: not followed), batches of 20, 3**i epochs at LR 0.001 * 10**(-i/7), i=0..7
  (3,280 epochs; `lr_schedule="iwae"` squeezes the 8 stages into `epochs`), MNIST training images
  binarized dynamically (the paper's "MNIST": each pixel resampled per minibatch; the paper trains on
  59,600 and tests on the MNIST test images, `tools/reproduce/reproduce_iwae_table.py` trains on the 50,009 that
  are not sources of the binarized validation images it tests on), NLL with k=5000.
- VAE trains the ELBO (k=1), IWAE the k-sample bound (k=5 in the rows we reproduce; any k via the
  `iwae_samples` override). Paper (MNIST test NLL / active units): VAE 1 layer 86.76 / 19, IWAE k=5
  1 layer 85.54 / 22, VAE 2 layers 85.33 / 16+5, IWAE k=5 2 layers 83.89 / 21+5.
- The default epoch budget (`epochs=100`) is ours, for a CPU; the paper's full schedule is
  `epochs=3280`.

2-layer crVAE (supplement section B: "a hierarchical crVAE with 2 stochastic layers reduces NLL to
79.65"; no architecture given). Our choices: z1 is `mnist_crvae`'s channel-recurrent (4, 4, 64)
latent with its conv encoder/decoder unchanged; z2 is a 64-unit dense latent (one unit per latent
channel of z1, about 2x the crVAE's active units) with tanh MLPs of 2 x 512 units for q(z2|z1)
and p(z1|z2) (Burda's 2-layer pattern: a top layer half as wide as the hidden units below), and
Burda's bottom-up inference. The KL of both layers is weighted alpha=0.001 (the crVAE's
"mean" normalisation), LR and schedule as `mnist_crvae`. `mnist_vae_2layer` is the same hierarchy on
`mnist_vae`'s dense (4*4*64) latent with its optimiser settings.
"""

from keras_crvae.presets.core import Preset, TrainingConfig, make_optimizer, register
from keras_crvae.presets.mnist import MNIST_ALPHA, REFERENCE_CMD, mnist_network


# Builders of presets that list their stochastic layers: "mlp" (1 layer: `VAE`; 2: `HierarchicalVAE`)
# and "hierarchical_mnist" (the 28x28 conv networks below z1, MLPs above).
HIERARCHICAL_BUILDERS = ("mlp", "hierarchical_mnist")
_IWAE_SOURCE = ("Burda et al. 2016 section 5, Table 1; yburda/iwae experiments.py (architectures), "
                "optimizers.py, datasets.py (output bias)")
_IWAE_TRAINING = TrainingConfig(learning_rate=1e-3, batch_size=20, epochs=100,
                                lr_decay_every_epochs=0, recurrent_gradient_clip=None,
                                adam_epsilon=1e-4, lr_schedule="iwae")


def _mlp_network(layers):
    if layers == 1:
        return {"builder": "mlp", "latent_units": [50], "hidden_units_q": [[200, 200]],
                "hidden_units_p": [[200, 200]], "activation": "tanh",
                "output_bias": "train_pixel_mean"}
    return {"builder": "mlp", "latent_units": [100, 50], "hidden_units_q": [[200, 200], [100, 100]],
            "hidden_units_p": [[100, 100], [200, 200]], "activation": "tanh",
            "output_bias": "train_pixel_mean"}


def _iwae_preset(name, layers, k, paper_nll, paper_active_units):
    kind = "IWAE (k-sample bound, k=5)" if k > 1 else "VAE (ELBO)"
    model = {"kl_weight": 1.0, "reconstruction_reduction": "sum", "iwae_samples": k}
    if layers == 2:
        model["inference"] = "bottom_up"
    return Preset(
        name, f"Burda et al.'s MNIST MLP {kind}, {layers} stochastic layer(s); paper active units "
        f"{paper_active_units}.", _IWAE_SOURCE, _mlp_network(layers), model, _IWAE_TRAINING,
        paper_nll)


def _hierarchical_mnist_network(latent):
    return {**mnist_network(latent, latent), "builder": "hierarchical_mnist", "top_latent_dim": 64,
            "top_hidden_units": [512, 512], "top_activation": "tanh"}


_PRESETS = [
    _iwae_preset("mnist_mlp_vae", 1, 1, 86.76, "19"),
    _iwae_preset("mnist_mlp_iwae", 1, 5, 85.54, "22"),
    _iwae_preset("mnist_mlp_vae_2layer", 2, 1, 85.33, "16+5"),
    _iwae_preset("mnist_mlp_iwae_2layer", 2, 5, 83.89, "21+5"),
    Preset(
        "mnist_crvae_2layer",
        "crVAE with 2 stochastic layers: mnist_crvae's (4, 4, 64) channel-recurrent z1 under a "
        "64-unit dense z2, Table 1 'crVAE, 2 stochastic layers'.",
        REFERENCE_CMD.format("lstm") + "; supplement B, Table 1; z2 networks: our choice",
        _hierarchical_mnist_network("recurrent"),
        {**MNIST_ALPHA, "inference": "bottom_up"},
        TrainingConfig(learning_rate=0.003, recurrent_lr_multiplier=1.0 / 8), 79.65,
    ),
    Preset(
        "mnist_vae_2layer",
        "mnist_vae's dense (4*4*64) z1 under a 64-unit dense z2 (the 2-layer hierarchy without "
        "the channel recurrence).",
        REFERENCE_CMD.format("baseline") + "; z2 networks: our choice",
        {**_hierarchical_mnist_network("dense"), "bn_epsilon": 1e-6, "bn_momentum": 0.1},
        {**MNIST_ALPHA, "inference": "bottom_up"},
        TrainingConfig(learning_rate=0.0003),
    ),
]


def build_hierarchical_from_preset(preset, seed=None):
    """The (uncompiled) model of an "mlp" or "hierarchical_mnist" preset: `VAE` for one stochastic
    layer, `HierarchicalVAE` for two."""
    from keras_crvae import networks
    from keras_crvae.models import VAE
    from keras_crvae.networks import mlp

    config = dict(preset.network)
    builder = config.pop("builder")
    model_kwargs = dict(preset.model)
    if builder == "mlp":
        latent_units = [int(u) for u in config["latent_units"]]
        hidden_q, hidden_p = config["hidden_units_q"], config["hidden_units_p"]
        if len(latent_units) not in (1, 2) or len(hidden_q) != len(latent_units) or len(
                hidden_p) != len(latent_units):
            raise ValueError(
                "An 'mlp' preset needs 1 or 2 `latent_units` and as many `hidden_units_q` / "
                f"`hidden_units_p` entries; got {latent_units}, {hidden_q}, {hidden_p}.")
        activation = config["activation"]
        if config.get("output_bias", "zeros") not in OUTPUT_BIASES:
            raise ValueError(f"`output_bias` must be one of {OUTPUT_BIASES}, got "
                             f"{config['output_bias']!r}.")
        encoder = mlp.build_mlp_gaussian((28, 28, 1), latent_units[0], hidden_q[0], activation,
                                         name="encoder")
        decoder = mlp.build_mlp_bernoulli_decoder(latent_units[0], hidden_p[-1],
                                                  activation=activation, name="decoder")
        if len(latent_units) == 1:
            model_kwargs.pop("inference", None)
            return VAE(encoder, decoder, seed=seed, name=preset.name, **model_kwargs)
        top_input = (28, 28, 1) if model_kwargs.get("inference") == "factorized" else latent_units[0]
        top_encoder = mlp.build_mlp_gaussian(top_input, latent_units[1], hidden_q[1], activation,
                                             name="top_encoder")
        top_decoder = mlp.build_mlp_gaussian(latent_units[1], latent_units[0], hidden_p[0],
                                             activation, name="top_decoder")
    elif builder == "hierarchical_mnist":
        latent = config.pop("encoder_latent")
        config.pop("decoder_latent")
        top = {key: config.pop(key) for key in ("top_latent_dim", "top_hidden_units",
                                                  "top_activation")}
        encoder = networks.build_mnist_encoder(latent, **config)
        decoder = networks.build_mnist_decoder(latent, **config)
        z1_shape = tuple(decoder.input_shape[1:])
        top_input = (28, 28, 1) if model_kwargs.get("inference") == "factorized" else z1_shape
        top_encoder = mlp.build_mlp_gaussian(top_input, top["top_latent_dim"],
                                             top["top_hidden_units"], top["top_activation"],
                                             name="top_encoder")
        top_decoder = mlp.build_mlp_gaussian(top["top_latent_dim"], z1_shape,
                                             top["top_hidden_units"], top["top_activation"],
                                             name="top_decoder")
    else:
        raise ValueError(f"Builder {builder!r} is not a hierarchical builder {HIERARCHICAL_BUILDERS}.")
    from keras_crvae.models import HierarchicalVAE

    return HierarchicalVAE(encoder, top_encoder, top_decoder, decoder, seed=seed, name=preset.name,
                           **model_kwargs)


OUTPUT_BIASES = ("train_pixel_mean", "zeros")


def _initialize_from_data(model, preset, train_images):
    """The "mlp" presets' output bias: the logit of the training pixels' mean (Burda et al.'s code)."""
    from keras_crvae.networks import mlp

    if preset.network.get("output_bias", "zeros") == "train_pixel_mean":
        mlp.set_output_bias(model.decoder, mlp.pixel_mean_logits(train_images))
    return model


def _build_model(preset, steps_per_epoch, compile, seed):
    model = build_hierarchical_from_preset(preset, seed=seed)
    if compile:
        model.compile(optimizer=make_optimizer(preset.training, steps_per_epoch))
    return model


register([p for p in _PRESETS if p.network["builder"] == "mlp"], "mlp", _build_model,
         initialize_from_data=_initialize_from_data, job="vae")
register([p for p in _PRESETS if p.network["builder"] == "hierarchical_mnist"], "hierarchical_mnist",
         _build_model, job="vae")
