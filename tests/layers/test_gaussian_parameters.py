"""GaussianParameters: the reference's three scale parameterisations against NumPy, serialization."""

import numpy as np
import pytest
from keras import ops

from keras_crvae.layers import GaussianParameters

pytestmark = pytest.mark.portable


@pytest.mark.parametrize("scale", ["softplus", "log_std", "log_var"])
def test_splits_mean_and_log_variance(run_layer_test, scale):
    raw = np.array([[0.5, -1.0, 2.0, -3.0], [0.0, 1.0, -0.5, 4.0]], "float32")
    _, (mean, log_var) = run_layer_test(GaussianParameters, {"scale": scale}, raw,
                                        expected_trainable_weights=0)
    np.testing.assert_allclose(ops.convert_to_numpy(mean), raw[:, :2])
    scale_raw = raw[:, 2:].astype("float64")
    expected = {
        "softplus": 2 * np.log(1e-6 + np.log1p(np.exp(scale_raw))),  # sd = 1e-6 + softplus(raw)
        "log_std": 2 * scale_raw,
        "log_var": scale_raw,
    }[scale]
    np.testing.assert_allclose(ops.convert_to_numpy(log_var), expected, rtol=1e-5, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        GaussianParameters("exp")
    with pytest.raises(ValueError, match="even"):
        GaussianParameters()(np.zeros((2, 3), "float32"))
