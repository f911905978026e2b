"""The autoregressive property of PixelCNN and Gated PixelCNN, exactly, with autodiff.

For every output value i (pixel in raster order, colour R < G < B inside a pixel) the gradient of
its logits with respect to input value j must be exactly zero for every j at or after i; for the
Gated PixelCNN it must be non-zero for every earlier j inside the receptive field (no blind spot),
and the plain PixelCNN's blind spot is documented by an earlier pixel it cannot see.
"""

import keras
import numpy as np
import pytest

from keras_crvae import networks
from tests.networks.autoregressive_checks import (dependency_matrix, gated_receptive_field,
                                                  strictly_earlier)

pytestmark = pytest.mark.portable


def random_image(shape, seed=1):
    # Continuous values: no input is a special point (zero) where a gradient could vanish.
    return np.random.default_rng(seed).uniform(0.2, 1.0, size=shape).astype("float32")


def test_pixelcnn_grey_never_sees_the_present_or_future():
    keras.utils.set_random_seed(0)
    network = networks.build_pixelcnn((7, 7, 1), levels=2, filters=4, residual_blocks=2)
    depends = dependency_matrix(network, random_image((7, 7, 1)), levels=2)
    earlier = strictly_earlier(7, 7, 1)
    assert not depends[~earlier].any()
    assert depends.any(axis=1)[1:].all()  # every pixel after the first sees something


def test_pixelcnn_rgb_channel_masks():
    keras.utils.set_random_seed(0)
    network = networks.build_pixelcnn((4, 4, 3), levels=4, filters=8, residual_blocks=1,
                                      first_kernel_size=3)
    depends = dependency_matrix(network, random_image((4, 4, 3)), levels=4)
    earlier = strictly_earlier(4, 4, 3)
    assert not depends[~earlier].any()
    # Inside the first pixel: G sees R, B sees R and G (the type-A/B channel groups).
    assert depends[1, 0] and depends[2, 0] and depends[2, 1]


def test_pixelcnn_has_a_blind_spot():
    """7x7 type A then one 3x3 type-B block: the nominal receptive field reaches 4 pixels either
    side, but output pixel (4, 2) cannot see (3, 6), one row up and 4 columns right (the stacked
    masks never look right of the current column in the current row; 2016b, figure 1)."""
    keras.utils.set_random_seed(0)
    network = networks.build_pixelcnn((7, 7, 1), levels=1, filters=4, residual_blocks=1)
    depends = dependency_matrix(network, random_image((7, 7, 1)), levels=1)
    output, blind = 4 * 7 + 2, 3 * 7 + 6
    assert blind < output and not depends[output, blind]
    assert depends[output, 3 * 7 + 5] and depends[output, 2 * 7 + 6]  # its neighbours are seen


@pytest.mark.parametrize("first_kernel_size, num_layers", [(3, 3), (5, 2)])
def test_gated_pixelcnn_sees_exactly_its_receptive_field(first_kernel_size, num_layers):
    keras.utils.set_random_seed(0)
    network = networks.build_gated_pixelcnn((7, 7, 1), levels=2, filters=4,
                                            num_layers=num_layers,
                                            first_kernel_size=first_kernel_size)
    depends = dependency_matrix(network, random_image((7, 7, 1)), levels=2)
    radius = first_kernel_size // 2 + (num_layers - 1)
    expected = gated_receptive_field(7, 7, radius)
    assert not (expected & ~strictly_earlier(7, 7, 1)).any()
    np.testing.assert_array_equal(depends, expected)


def test_gated_pixelcnn_has_no_blind_spot_where_pixelcnn_has_one():
    keras.utils.set_random_seed(0)
    network = networks.build_gated_pixelcnn((7, 7, 1), levels=1, filters=4, num_layers=3,
                                            first_kernel_size=5)  # radius 4, as above
    depends = dependency_matrix(network, random_image((7, 7, 1)), levels=1)
    assert depends[4 * 7 + 2, 3 * 7 + 6]


def test_gated_pixelcnn_rgb_channel_masks_and_no_blind_spot():
    keras.utils.set_random_seed(0)
    network = networks.build_gated_pixelcnn((4, 4, 3), levels=3, filters=8, num_layers=2,
                                            first_kernel_size=5)  # radius 3 covers 4x4
    depends = dependency_matrix(network, random_image((4, 4, 3)), levels=3)
    np.testing.assert_array_equal(depends, strictly_earlier(4, 4, 3))


@pytest.mark.parametrize("condition_shape", [(3,), (5, 5, 2)])
def test_conditional_gated_pixelcnn_uses_the_condition_and_stays_causal(condition_shape):
    keras.utils.set_random_seed(0)
    network = networks.build_gated_pixelcnn((5, 5, 1), levels=2, filters=4, num_layers=2,
                                            condition_shape=condition_shape)
    condition = keras.ops.convert_to_tensor(random_image((25,) + condition_shape, seed=2))
    depends = dependency_matrix(lambda images: network([images, condition]),
                                random_image((5, 5, 1)), levels=2)
    assert not depends[~strictly_earlier(5, 5, 1)].any()
    images = keras.ops.convert_to_tensor(np.repeat(random_image((1, 5, 5, 1)), 2, axis=0))
    other = keras.ops.convert_to_tensor(random_image((2,) + condition_shape, seed=3))
    logits = keras.ops.convert_to_numpy(network([images, other]))
    assert np.abs(logits[0] - logits[1]).min() > 0  # every pixel's logits move with c
