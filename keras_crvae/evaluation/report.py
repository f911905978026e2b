"""Reports on a trained model other than its likelihood: reconstruction error, traversal figures.

`crvae evaluate` and `crvae sample --traversals` call these; they are plain library functions, for
use from Python as well:

>>> from keras_crvae.evaluation import report
>>> report.reconstruction_error(vae_gan, faces)["mean"]      # doctest: +SKIP
0.0312
>>> grid, order = report.traversal_figure(sprites_vae)       # doctest: +SKIP

(The likelihood report of VAE-family models, ELBO + importance-sampled NLL + active units, is
`keras_crvae.training.evaluate_model`.)
"""

import keras
import numpy as np

from keras_crvae import callbacks, data
from keras_crvae.data import sprites

# Image shapes `traversal_figure` has evaluation images for: procedural sprites, MNIST.
TRAVERSAL_IMAGE_SHAPES = ((64, 64, 1), (28, 28, 1))


def reconstruction_error(model, images, batch_size=64):
    """Per-pixel reconstruction MSE of a VAE-GAN / crVAE-GAN (a model without a likelihood).

    Args:
        model: a model with `reconstruct(images)` that takes and returns images in [-1, 1]
            (`VAEGAN`, `CRVAEGAN`).
        images: `(N, H, W, C)` colour images, uint8 0..255 or floats in [0, 1]; they are scaled
            to [-1, 1] by `data.image_dataset`, as in training.
        batch_size: int, images per call of `reconstruct`.

    Returns:
        dict with `mean` and `standard_error` (over the images) of each image's mean squared error
        per pixel, `num_images` and the `image_range` the error is measured in, `[-1.0, 1.0]`.
    """
    dataset = data.image_dataset(arrays=images, batch_size=batch_size, augment=None,
                                 shuffle=False, drop_remainder=False)
    errors = []
    for batch in dataset:
        batch = keras.ops.convert_to_numpy(batch)
        reconstruction = keras.ops.convert_to_numpy(model.reconstruct(batch))
        errors.append(np.mean((reconstruction - batch) ** 2, axis=(1, 2, 3)))
    errors = np.concatenate(errors)
    standard_error = (float(errors.std(ddof=1) / np.sqrt(len(errors))) if len(errors) > 1
                      else float("nan"))
    return {"mean": float(errors.mean()), "standard_error": standard_error,
            "num_images": int(len(errors)), "image_range": [-1.0, 1.0]}


def traversal_figure(model, seed=0, num_images=256, max_rows=10):
    """The latent traversal grid of a VAE-family model of sprites or MNIST digits.

    The latents are ranked by their mean KL over `num_images` evaluation images (procedural
    sprites drawn with `seed` for 64x64x1 models; the embedded MNIST test images, statically
    binarized, for 28x28x1 ones); the `max_rows` of largest KL are traversed from the first image
    (`callbacks.latent_traversal_grid`: 8 values in [-2.5, 2.5] each).

    Returns:
        `(grid, order)`: the images `(rows * 8, H, W, C)`, for `io.save_image_grid(..., columns=8)`,
        and the traversed latents' indices, largest mean KL first.

    Raises:
        ValueError: the model's `image_shape` is not one of `TRAVERSAL_IMAGE_SHAPES`.
    """
    shape = tuple(getattr(model, "image_shape", ()))
    if shape == (64, 64, 1):
        images = sprites.load_sprites(num_images, seed=seed)["images"]
    elif shape == (28, 28, 1):
        images = data.static_binarize(data.load_embedded_mnist()["x_test"][:num_images], seed=0)
    else:
        raise ValueError(f"`model` must take images of shape 64x64x1 (sprites) or 28x28x1 (MNIST) "
                         f"for a traversal figure; got {shape}.")
    kl = callbacks.mean_kl_per_latent(model, images)
    return callbacks.latent_traversal_grid(model, images[0], kl, max_rows=max_rows)
