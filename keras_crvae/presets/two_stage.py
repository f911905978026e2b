"""The Two-Stage VAE presets (Dai & Wipf, ICLR 2019).

Sources: supplement section 6 of the paper ("MNIST and Fashion-MNIST: batch size 100, ADAM with
TensorFlow's defaults, weight decay 5e-4, first VAE 400 epochs at LR 1e-4 halved every 150 epochs,
second VAE 800 epochs, same LR, halved every 300 epochs"; "CelebA: 120 epochs halved every 48, then
300 epochs halved every 120"; "for the second-stage VAE [of Table 1] three 1024-dimensional hidden
layers"), and the defaults of `demo.py` of GitHub daib13/TwoStageVAE (`--latent-dim 64`,
`--second-depth 3`, `--second-dim 1024`, `--epochs 400 --lr 0.0001 --lr-epochs 150`,
`--epochs2 800 --lr2 0.0001 --lr-epochs2 300`, network `Infogan`). Adam: betas 0.9/0.999 (TF defaults);
we keep the library's eps 1e-8 (TF's default) and follow the paper's batch of 100 (demo.py: 64).
"""

import dataclasses

from keras_crvae import precision as crvae_precision
from keras_crvae.presets.core import Preset, TrainingConfig, check_override, make_optimizer, register


@dataclasses.dataclass(frozen=True)
class TwoStagePreset(Preset):
    """A Two-Stage VAE preset: `network`/`model`/`training` describe stage 1, the `stage2_*` fields
    stage 2. Override stage-2 fields with a `stage2_` prefix (`stage2_epochs=10`, `stage2_width=64`).

    Attributes (beyond `Preset`'s):
        stage2_network: dict, keyword arguments of `networks.build_latent_encoder/decoder`.
        stage2_training: `TrainingConfig` of stage 2.
        paper_fid: float or None, the paper's Table 1 FID (2-Stage VAE, untuned).
    """

    stage2_network: dict = None
    stage2_training: TrainingConfig = None
    paper_fid: float = None

    def override_tables(self, key):
        if key.startswith("stage2_"):
            return ([self.stage2_network, dataclasses.asdict(self.stage2_training)],
                    key[len("stage2_"):])
        return super().override_tables(key)

    def valid_keys(self):
        stage2 = set(self.stage2_network) | {f.name for f in dataclasses.fields(TrainingConfig)}
        return sorted(set(super().valid_keys()) | {"stage2_" + k for k in stage2})

    def with_overrides(self, **overrides):
        stage2_network = dict(self.stage2_network)
        stage2_training = dataclasses.asdict(self.stage2_training)
        stage1 = {}
        for key, value in overrides.items():
            name = key[len("stage2_"):] if key.startswith("stage2_") else None
            if name in stage2_network:
                stage2_network[name] = check_override(self, key, value)
            elif name in stage2_training:
                stage2_training[name] = check_override(self, key, value)
            elif name is not None:
                valid = sorted("stage2_" + k for k in set(stage2_network) | set(stage2_training))
                raise ValueError(f"Unknown override {key!r} for preset {self.name!r}; valid: {valid}.")
            else:
                stage1[key] = value
        if "precision" in stage1 and "stage2_precision" not in overrides:
            stage2_training["precision"] = stage1["precision"]  # one switch for both stages
        updated = super().with_overrides(**stage1)
        return dataclasses.replace(updated, stage2_network=stage2_network,
                                   stage2_training=TrainingConfig(**stage2_training))


def _two_stage_training(epochs, lr_decay_every_epochs):
    return TrainingConfig(learning_rate=1e-4, batch_size=100, epochs=epochs,
                          lr_decay_every_epochs=lr_decay_every_epochs, lr_decay_rate=0.5,
                          recurrent_gradient_clip=None)


def _two_stage_preset(name, description, image_shape, stage1_epochs, stage1_decay, stage2_epochs,
                      stage2_decay, paper_fid):
    return TwoStagePreset(
        name, description,
        "Dai & Wipf 2019 supplement section 6; daib13/TwoStageVAE demo.py defaults (Infogan)",
        {"builder": "two_stage", "architecture": "infogan", "image_shape": image_shape,
         "latent_dim": 64},
        {"decoder_loss": "learned_gamma", "gamma": 1.0, "weight_decay": 5e-4},
        _two_stage_training(stage1_epochs, stage1_decay),
        stage2_network={"depth": 3, "width": 1024},
        stage2_training=_two_stage_training(stage2_epochs, stage2_decay),
        paper_fid=paper_fid,
    )


TWO_STAGE_PRESETS = {
    preset.name: preset
    for preset in [
        _two_stage_preset("mnist_two_stage", "Two-Stage VAE, InfoGAN networks, 28x28x1, Table 1 "
                          "'2-Stage VAE' (MNIST FID 13.4).", (28, 28, 1), 400, 150, 800, 300, 13.4),
        _two_stage_preset("celeba_two_stage", "Two-Stage VAE, InfoGAN networks, 64x64x3, Table 1 "
                          "'2-Stage VAE' (CelebA FID 45.9).", (64, 64, 3), 120, 48, 300, 120, 45.9),
    ]
}


def build_two_stage_from_preset(preset, steps_per_epoch=None, compile=True, seed=None):
    """`TwoStageVAE` of a `TwoStagePreset`, each stage compiled with its own Adam and step decay."""
    from keras_crvae import networks
    from keras_crvae.models import GammaVAE, TwoStageVAE

    network = dict(preset.network)
    network.pop("builder")
    architecture = network.pop("architecture")
    image_shape, latent_dim = tuple(network.pop("image_shape")), network.pop("latent_dim")
    decoder_kwargs = {k: v for k, v in network.items() if k != "num_scales"}
    encoder1 = networks.build_two_stage_encoder(architecture, image_shape, latent_dim, **network)
    decoder1 = networks.build_two_stage_decoder(architecture, image_shape, latent_dim,
                                                **decoder_kwargs)
    stage1 = GammaVAE(encoder1, decoder1, seed=seed, name="stage1", **preset.model)
    with crvae_precision.scope(preset.stage2_training.precision):
        encoder2 = networks.build_latent_encoder(latent_dim, **preset.stage2_network)
        decoder2 = networks.build_latent_decoder(latent_dim, **preset.stage2_network)
        stage2 = GammaVAE(encoder2, decoder2, decoder_loss="learned_gamma",
                          weight_decay=preset.model.get("weight_decay", 0.0), data_range=None,
                          seed=None if seed is None else seed + 1, name="stage2")
    model = TwoStageVAE(stage1, stage2, name=preset.name)
    if compile:
        stage1.compile(optimizer=make_optimizer(preset.training, steps_per_epoch))
        stage2.compile(optimizer=make_optimizer(preset.stage2_training, steps_per_epoch))
    return model


register(TWO_STAGE_PRESETS.values(), "two_stage", build_two_stage_from_preset, job="two_stage")
