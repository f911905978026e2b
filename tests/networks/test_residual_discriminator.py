"""StyleGAN2's residual discriminator (`networks.build_residual_discriminator`): shapes, one
residual block against NumPy (skip = 1x1 conv of the 2x2-averaged input, sum scaled by
1/sqrt(2)), the StyleGAN presets' `discriminator="resnet"` option through one training step, and
the `.keras` round trip."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_crvae import networks, presets
from keras_crvae.models import StyleGAN
from keras_crvae.presets.stylegan import _build_networks as build_stylegan_networks
from tests.models.test_stylegan import SHAPE, build_generator

TF_ONLY = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                             reason="the GAN train step is TensorFlow-only")
RNG = np.random.default_rng(0)


@pytest.mark.portable
@pytest.mark.parametrize("shape, blocks, final_side, channels", [
    ((32, 32, 3), 3, 4, 16), ((28, 28, 1), 2, 7, 16)])
def test_blocks_halve_the_side_down_to_4x4_or_an_odd_side(shape, blocks, final_side, channels):
    network = networks.build_residual_discriminator(shape, base_channels=4, max_channels=16)
    logits, features = network(RNG.uniform(-1, 1, (2,) + shape).astype("float32"))
    assert tuple(logits.shape) == (2, 1) and tuple(features.shape) == (2, channels)
    names = {layer.name for layer in network.layers}
    assert {f"block{b}" for b in range(blocks)} <= names and f"block{blocks}" not in names
    assert tuple(network.get_layer(f"block{blocks - 1}").output.shape[1:3]) == (final_side,) * 2
    with pytest.raises(ValueError, match="image_shape"):
        networks.build_residual_discriminator((8, 4, 3))


@pytest.mark.portable
def test_a_block_is_the_scaled_sum_of_its_main_path_and_its_1x1_skip():
    network = networks.build_residual_discriminator((8, 8, 2), base_channels=2, max_channels=4)
    block = keras.Model(network.get_layer("from_rgb_lrelu").output,
                        network.get_layer("block0").output)
    x = RNG.normal(size=(3, 8, 8, 2)).astype("float32")
    pooled = x.reshape(3, 4, 2, 4, 2, 2).mean(axis=(2, 4))
    skip_kernel = ops.convert_to_numpy(network.get_layer("block0_skip").kernel)[0, 0]  # (2, 4)
    # With the main path's last convolution at zero, LReLU(0) = 0: the block is skip / sqrt(2).
    last = network.get_layer("block0_conv1")
    last.set_weights([np.zeros(w.shape, "float32") for w in last.get_weights()])
    np.testing.assert_allclose(ops.convert_to_numpy(block(x)),
                               pooled @ skip_kernel / np.sqrt(2.0), rtol=1e-5, atol=1e-6)
    # With a bias of 1 and a zero kernel the main path adds exactly LReLU(1) = 1 per channel.
    last.set_weights([np.zeros(last.kernel.shape, "float32"), np.ones(4, "float32")])
    np.testing.assert_allclose(ops.convert_to_numpy(block(x)),
                               (pooled @ skip_kernel + 1.0) / np.sqrt(2.0), rtol=1e-5, atol=1e-6)


@pytest.mark.portable
def test_the_stylegan_presets_build_the_residual_discriminator_on_request():
    network = dict(presets.get_preset("celeba_stylegan2").network, discriminator="resnet",
                   base_channels=2, max_channels=8, discriminator_channels=2, mapping_layers=1,
                   latent_dim=4, w_dim=4)  # a tiny generator: only the critic is checked
    _, discriminator = build_stylegan_networks(network)
    assert discriminator.get_layer("block3").output.shape[1:3] == (4, 4)  # 64 -> 4 in 4 blocks
    assert presets.get_preset("celeba_stylegan2").network["discriminator"] == "dcgan"
    with pytest.raises(ValueError, match="discriminator"):
        build_stylegan_networks(dict(network, discriminator="unet"))


@TF_ONLY
def test_a_stylegan_with_the_residual_discriminator_trains_a_step_and_round_trips(tmp_path):
    model = StyleGAN(build_generator(), networks.build_residual_discriminator(
        SHAPE, base_channels=2, max_channels=4), r1_weight=1.0, r1_interval=1)
    model.compile()
    before = [ops.convert_to_numpy(v) for v in model.discriminator.trainable_variables]
    real = RNG.uniform(-1, 1, (4,) + SHAPE).astype("float32")
    logs = model.train_on_batch(real, return_dict=True)
    assert np.isfinite(float(logs["d_loss"])) and float(logs["r1"]) > 0
    assert max(float(np.abs(a - ops.convert_to_numpy(b)).max()) for a, b in
               zip(before, model.discriminator.trainable_variables)) > 0
    path = tmp_path / "stylegan_resnet_d.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(ops.convert_to_numpy(loaded.discriminator(real)[0]),
                               ops.convert_to_numpy(model.discriminator(real)[0]), rtol=1e-5,
                               atol=1e-6)
