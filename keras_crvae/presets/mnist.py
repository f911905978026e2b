"""The crVAE paper's MNIST presets (Table 1): VAE, cVAE, crVAE and its ablations, crIWAE, the quick start.

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

from keras_crvae.presets.core import Preset, TrainingConfig, make_optimizer, register


def mnist_network(encoder_latent, decoder_latent, time_steps=8, bn_epsilon=1e-5, bn_momentum=0.9,
                  base_channels=32):
    """The `network` dict of an MNIST preset (`networks.build_mnist_encoder` / `_decoder`)."""
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


# The source and the objective of the reference's MNIST runs (shared with `presets.hierarchical`).
REFERENCE_CMD = "WendyShang/crVAE README.md `th main_mnist.lua ... -latentType {}`; opts.lua"
MNIST_ALPHA = {"kl_weight": 0.001, "reconstruction_reduction": "mean", "iwae_samples": 1}


def _crvae(name, description, encoder_latent, decoder_latent, paper_nll, time_steps=8, **model):
    return Preset(
        name, description, REFERENCE_CMD.format("lstm") + "; supplement B, Table 1",
        mnist_network(encoder_latent, decoder_latent, time_steps=time_steps),
        {**MNIST_ALPHA, **model},
        TrainingConfig(learning_rate=0.003, recurrent_lr_multiplier=1.0 / time_steps),
        paper_nll,
    )


def _build_networks(network):
    """(encoder, decoder) of an "mnist" `network` dict."""
    from keras_crvae import networks

    config = dict(network)
    config.pop("builder")
    encoder_latent, decoder_latent = config.pop("encoder_latent"), config.pop("decoder_latent")
    return (networks.build_mnist_encoder(encoder_latent, **config),
            networks.build_mnist_decoder(decoder_latent, **config))


def _build_model(preset, steps_per_epoch, compile, seed):
    from keras_crvae.models import VAE

    encoder, decoder = _build_networks(preset.network)
    model = VAE(encoder, decoder, seed=seed, name=preset.name, **preset.model)
    if compile:
        model.compile(optimizer=make_optimizer(preset.training, steps_per_epoch))
    return model


register([
        Preset(
            "mnist_vae", "VAE with fully connected latent (4*4*64), Table 1 'VAE'.",
            REFERENCE_CMD.format("baseline") + "; models/allconv_baseline_mnist.lua",
            mnist_network("dense", "dense", bn_epsilon=1e-6, bn_momentum=0.1),
            dict(MNIST_ALPHA), TrainingConfig(learning_rate=0.0003), 82.04,
        ),
        Preset(
            "mnist_cvae", "Convolutional VAE, latent (4, 4, 64), Table 1 'cVAE'.",
            REFERENCE_CMD.format("conv") + "; models/allconv_conv_mnist.lua",
            mnist_network("conv", "conv", bn_epsilon=1e-6, bn_momentum=0.1),
            dict(MNIST_ALPHA), TrainingConfig(learning_rate=0.0003), 83.12,
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
        # The quick start: `crvae train` with no flags must end in about 4 minutes on 2 CPU cores
        # with recognisable prior samples. Measured on the embedded subset (6 epochs unless said;
        # NLL k=100 on 500 test images; a 2-core box shared with other jobs, load 6-9):
        #   base_channels=16, latent 4x4x64, 3 epochs (the earlier preset): NLL 141.9, ~50 s/epoch
        #   base_channels=8,  latent 4x4x64:                                 NLL 120.5, ~27 s/epoch
        #     + LR halved every 2 epochs:                                    NLL 118.5
        #     + latent 4x4x16:                                               NLL 107.1
        #     + latent 4x4x8 (this preset):                                  NLL 102.6, ~27 s/epoch
        # A narrower latent map trains to usable prior samples far sooner; 8 channels is the least
        # that T=8 channel blocks allow. The paper's presets keep 64.
        # precision "auto": mixed bfloat16 where the CPU has native bf16 arithmetic. Measured with
        # `python tools/benchmarks/benchmark_peer.py --tasks= --presets=mnist_crvae_quickstart
        # --quality_epochs=6 --quality_base_channels=8` (seed 0, load 4-6): float32 ELBO -121.76,
        # NLL 111.20 +- 1.49, 215 img/s, 306 s; bfloat16 ELBO -121.28, NLL 110.31 +- 1.48,
        # 458 img/s, 163 s: the same quality in half the time (docs/performance.md).
        Preset(
            "mnist_crvae_quickstart",
            "The mnist_crvae architecture at quarter width (base_channels=8) with a 4x4x8 latent "
            "map, 6 epochs, precision auto (bfloat16 on CPUs with AVX512-BF16), for a 1-3 minute "
            "CPU run on the embedded 10,000-image subset; the default of `crvae train`.",
            "mnist_crvae with base_channels=8, latent_channels=8, batch 64, 6 epochs, LR halved "
            "every 2 epochs, precision auto (our choice, from the measurements above)",
            {**mnist_network("recurrent", "recurrent", base_channels=8), "latent_channels": 8},
            dict(MNIST_ALPHA),
            TrainingConfig(learning_rate=0.003, batch_size=64, epochs=6, lr_decay_every_epochs=2,
                           recurrent_lr_multiplier=1.0 / 8, precision="auto"),
        ),
    ], "mnist", _build_model, _build_networks, job="vae")
