"""The old module paths of the redesign of issue 27 keep working: each alias is the moved module
itself, the old (private) names still import, and every Keras registration keeps its name."""

import importlib

import keras
import pytest

import keras_crvae.models  # noqa: F401  (registers the model classes)

pytestmark = pytest.mark.portable

ALIASES = [
    ("keras_crvae.models.stage2", "keras_crvae.models.super_resolution"),
    ("keras_crvae.networks.stage2", "keras_crvae.networks.super_resolution"),
    ("keras_crvae.presets.stage2", "keras_crvae.presets.super_resolution"),
    ("keras_crvae.adversarial", "keras_crvae.losses.adversarial"),
]


@pytest.mark.parametrize("old,new", ALIASES)
def test_alias_is_the_moved_module(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)
    package, _, name = old.rpartition(".")
    assert getattr(importlib.import_module(package), name) is importlib.import_module(new)


def test_old_names_still_import():
    from keras_crvae import adversarial, losses
    from keras_crvae.models import base
    from keras_crvae.models.stage2 import Stage2
    from keras_crvae.models.vae import (_tile_rows, check_encoder_decoder,  # noqa: F401
                                        check_objective_options, run_network, to_float32,
                                        validate_images, with_deserialized)
    from keras_crvae.models.vae_gan import IMAGE_RANGE, EncoderDecoderAPI
    from keras_crvae.networks import blocks, infogan, resnet
    from keras_crvae.networks.mnist import _batch_norm, _conv, _transposed_conv
    from keras_crvae.networks.stage2 import build_stage2_generator, generator_geometry  # noqa: F401
    from keras_crvae.networks.two_stage import (BN_EPSILON, build_infogan_encoder,  # noqa: F401
                                                build_resnet_decoder)
    from keras_crvae.presets import _valid_keys, valid_keys

    assert Stage2 is keras_crvae.models.Stage2
    assert (_tile_rows, to_float32, validate_images) == (base.tile_rows, base.to_float32,
                                                          base.validate_images)
    assert IMAGE_RANGE == base.SIGNED_IMAGE_RANGE and EncoderDecoderAPI is base.EncoderDecoderAPI
    assert (_batch_norm, _conv, _transposed_conv) == (blocks.batch_norm, blocks.conv,
                                                       blocks.transposed_conv)
    assert build_infogan_encoder is infogan.build_infogan_encoder
    assert build_resnet_decoder is resnet.build_resnet_decoder
    assert BN_EPSILON == blocks.TWO_STAGE_BN_EPSILON
    assert _valid_keys is valid_keys
    assert losses.adversarial is adversarial
    assert losses.two_level_block_weights(1.0, 2.0, 2, 1) == [1.0, 2.0]


@pytest.mark.parametrize("name", ["Stage2", "HistoricalAverage", "VAE", "VAEGAN", "CRVAEGAN",
                                  "GAN", "InfoGAN", "TwoStageVAE", "GammaVAE", "HierarchicalVAE",
                                  "FactorVAE"])
def test_registered_names_are_unchanged(name):
    cls = keras.saving.get_registered_object(f"keras_crvae>{name}")
    assert cls is not None and cls.__name__ == name
