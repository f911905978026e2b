"""64x64 encoders/decoders of VAE-GAN and crVAE-GAN (models/allconv_{baseline,lstm}.lua)."""

import numpy as np
import pytest
from keras import ops

from keras_crvae import networks

pytestmark = pytest.mark.portable


@pytest.mark.parametrize("latent", ["dense", "recurrent"])
def test_shapes_range_and_reference_widths(latent):
    encoder = networks.build_image64_encoder(latent, base_channels=4, latent_channels=8)
    decoder = networks.build_image64_decoder(latent, base_channels=4, latent_channels=8)
    images = np.random.default_rng(0).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    mean, log_var = encoder(images)
    assert tuple(mean.shape) == (2, 4, 4, 8) == tuple(log_var.shape)
    outputs = decoder(mean)
    if latent == "recurrent":
        images_out, u = outputs
        assert tuple(u.shape) == (2, 4, 4, 8)  # the MI target
    else:
        images_out = outputs
    values = ops.convert_to_numpy(images_out)
    assert values.shape == (2, 64, 64, 3) and np.abs(values).max() <= 1.0
    # The trunk ends in h = (4, 4, 8b) as the reference's -baseChannels doubling thrice.
    assert encoder.get_layer("lrelu4").output.shape[1:] == (4, 4, 32)
    # The first decoder upsampling keeps 8b channels; the last conv maps 2b -> 3.
    assert decoder.get_layer("deconv4_1").output.shape[-1] == 32
    assert decoder.get_layer("to_rgb").input.shape[-1] == 8


def test_recurrent_batch_norm_only_in_the_inference_recurrence():
    encoder = networks.build_image64_encoder("recurrent", base_channels=4, latent_channels=8)
    decoder = networks.build_image64_decoder("recurrent", base_channels=4, latent_channels=8)
    assert encoder.get_layer("recurrence").recurrent_batch_norm
    assert not decoder.get_layer("recurrence").recurrent_batch_norm


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="latent"):
        networks.build_image64_encoder("conv")
    with pytest.raises(ValueError, match="time_steps"):
        networks.build_image64_decoder("recurrent", base_channels=4, latent_channels=6)
    with pytest.raises(ValueError, match="upsampling"):
        networks.build_image64_decoder("dense", base_channels=4, latent_channels=8,
                                       upsampling="bilinear")


def test_nearest_upsampling_is_a_resize_convolution_at_each_deconv():
    """`upsampling="nearest"`: each of the four deconvs becomes a 2x nearest upsampling and a
    3x3 conv of the same width (its first layer's output is the input repeated 2x2, by hand);
    the images keep their shape and range; the presets take it from `decoder_upsampling`."""
    import keras

    import keras_crvae

    decoder = networks.build_image64_decoder("dense", base_channels=4, latent_channels=8,
                                             upsampling="nearest")
    kinds = [type(layer).__name__ for layer in decoder.layers]
    assert "Conv2DTranspose" not in kinds and kinds.count("UpSampling2D") == 4
    for name in ("deconv4_1", "deconv3", "deconv2", "deconv1"):
        assert decoder.get_layer(name).kernel.shape[:2] == (3, 3)
    z = np.random.default_rng(0).normal(size=(2, 4, 4, 8)).astype("float32")
    images = ops.convert_to_numpy(decoder(z, training=False))
    assert images.shape == (2, 64, 64, 3) and np.all(np.abs(images) <= 1)
    upsample = decoder.get_layer("deconv4_1_upsample")
    probe = keras.Model(decoder.input, [upsample.input, upsample.output])
    before, after = (ops.convert_to_numpy(t) for t in probe(z))
    np.testing.assert_array_equal(after, before.repeat(2, axis=1).repeat(2, axis=2))
    model = keras_crvae.from_preset("celeba_vae_gan", compile=False, base_channels=2,
                                    discriminator_channels=4, minibatch_kernels=2,
                                    decoder_upsampling="nearest")
    assert "UpSampling2D" in [type(layer).__name__ for layer in model.decoder.layers]
