"""tools/studies/latent_use.py: the measurements' building blocks (the whole tool needs a face run)."""

import pathlib
import sys

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "tools" / "studies"))
import latent_use  # noqa: E402


def test_redraw_block_changes_that_block_only_and_leaves_the_input():
    latents = np.zeros((3, 2, 12), "float32")
    redrawn = latent_use.redraw_block(latents, 1, 4, np.random.default_rng(0))
    assert np.all(latents == 0)  # a copy
    assert np.all(redrawn[..., :3] == 0) and np.all(redrawn[..., 6:] == 0)
    assert np.all(redrawn[..., 3:6] != 0)


def test_image_spread_is_the_mean_per_pixel_standard_deviation():
    same = np.ones((4, 2, 2, 3), "float32")
    assert latent_use.image_spread(same) == 0.0
    two = np.stack([-np.ones((2, 2, 3)), np.ones((2, 2, 3))])  # every pixel -1 then 1: std 1
    assert latent_use.image_spread(two) == 1.0
    assert latent_use.root_mean_square_change(two[0], two[1]) == 2.0


def test_principal_variances_find_a_direction_of_large_spread():
    rng = np.random.default_rng(0)
    direction = np.ones(16) / 4.0  # unit length
    latents = rng.standard_normal((400, 16)) * 0.1 + rng.standard_normal((400, 1)) * 3.0 * direction
    top, second = latent_use.principal_variances(latents.reshape(400, 4, 4), count=2)
    assert abs(top - 9.0) < 1.5 and 0.005 < second < 0.05  # the rest: the 0.1-noise (0.01)
