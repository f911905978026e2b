"""Diagnostics of the Two-Stage VAE paper (Dai & Wipf, ICLR 2019), for models with `encode`/`decode`.

- Encoder covariance eigenvalues (supplement Figure 10). The posterior covariance is diagonal,
  `Sigma_z(x) = diag(exp(log_var(x)))`, so its eigenvalues are the per-dimension variances
  `lambda_j(x)`. Theory (section 3): with `gamma -> 0`, `lambda_j -> 0` on the `r` dimensions that
  encode the data manifold ("active") and `-> 1` on the superfluous ones.
- Singular-value spectrum of aggregated-posterior samples (Figure 1, right): the matrix `Z (N, d)`
  holds one `z ~ q(z|x)` per image (stage 1) or one `u ~ q(u|z)` per stage-1 latent (stage 2); its
  singular values are compared with those of an i.i.d. `N(0, 1)` matrix of the same shape, which is
  what `q(z)` would give if it matched the prior. For `N >> d` those concentrate near
  `sqrt(N) +- sqrt(d)` (Marchenko-Pastur).
- Image variance along each latent direction (Figure 9 / Figure 1 centre): `z = mu(x) + eps * e_j`,
  `eps ~ N(0, scale^2)`, decoded `K` times; the variance over the `K` images, summed over pixels (pixel
  values in [0, 1]). Directions with `lambda_j ~ 1` should give ~0 variance (Theorem 4).

Plots need matplotlib (`pip install keras_crvae[plots]`); everything else is NumPy.
"""

import os

import numpy as np
from keras import ops

from keras_crvae.evaluation.sampling import sample_batches


def to_uint8(images):
    """Images in [0, 1] -> uint8 0..255 (rounded, clipped)."""
    return np.clip(np.round(np.asarray(images, np.float64) * 255.0), 0, 255).astype(np.uint8)


def _batches(images, batch_size):
    if len(images) == 0:
        raise ValueError("`images` is empty.")
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    for start in range(0, len(images), int(batch_size)):
        yield images[start:start + int(batch_size)]


def encoder_variances(model, images, batch_size=500):
    """Eigenvalues of the diagonal encoder covariance: `exp(log_var)` per image -> `(N, d)` float64."""
    variances = []
    for batch in _batches(images, batch_size):
        _, log_var = model.encode(batch)
        variances.append(np.exp(ops.convert_to_numpy(log_var).astype(np.float64)).reshape(len(batch), -1))
    return np.concatenate(variances)


def active_dimensions(variances, threshold=0.5):
    """Counts latent dimensions whose mean encoder variance is below `threshold`.

    Args:
        variances: array `(N, d)` from `encoder_variances`.
        threshold: float in (0, 1), default 0.5: midway between the two limits 0 (active) and 1.

    Returns:
        dict: `active_dimensions` (int), `num_dimensions` (int), `threshold`, `mean_variance`
        (list of `d` floats, the per-dimension mean over images).
    """
    variances = np.asarray(variances, np.float64)
    if variances.ndim != 2 or variances.shape[0] == 0:
        raise ValueError(f"`variances` must have shape (N, d) with N >= 1; got {variances.shape}.")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"`threshold` must lie in (0, 1), got {threshold}.")
    mean_variance = variances.mean(axis=0)
    return {
        "active_dimensions": int(np.sum(mean_variance < threshold)),
        "num_dimensions": int(variances.shape[1]),
        "threshold": float(threshold),
        "mean_variance": [float(v) for v in mean_variance],
    }


def variance_histogram(variances, bins=24, value_range=(0.0, 1.2)):
    """Histogram of all `lambda_j(x)` values (Figure 10): dict of `counts` and bin `edges` lists."""
    counts, edges = np.histogram(np.asarray(variances).ravel(), bins=bins, range=value_range)
    return {"counts": [int(c) for c in counts], "edges": [float(e) for e in edges]}


def singular_values(samples):
    """Singular values, descending, of a sample matrix `(N, d)` (no centring, as in Figure 1)."""
    samples = np.asarray(samples, np.float64)
    if samples.ndim != 2 or min(samples.shape) == 0:
        raise ValueError(f"`samples` must be a non-empty matrix (N, d); got shape {samples.shape}.")
    return np.linalg.svd(samples, compute_uv=False)


def gaussian_singular_values(num_rows, num_cols, seed=0):
    """Singular values of an i.i.d. `N(0, 1)` matrix `(num_rows, num_cols)`: the ideal spectrum."""
    return singular_values(np.random.default_rng(seed).standard_normal((int(num_rows), int(num_cols))))


def posterior_samples(vae, data, seed=0, batch_size=500):
    """One `z ~ q(z|x)` per row of `data` (a model with `encode`) -> `(N, d)` float64."""
    rng = np.random.default_rng(seed)
    samples = []
    for batch in _batches(data, batch_size):
        mean, log_var = vae.encode(batch)
        mean = ops.convert_to_numpy(mean).astype(np.float64).reshape(len(batch), -1)
        log_var = ops.convert_to_numpy(log_var).astype(np.float64).reshape(len(batch), -1)
        samples.append(mean + np.exp(0.5 * log_var) * rng.standard_normal(mean.shape))
    return np.concatenate(samples)


def spectrum_distance(spectrum, reference):
    """Relative distance `||s - s_ref|| / ||s_ref||` between two singular-value spectra."""
    spectrum, reference = np.asarray(spectrum, np.float64), np.asarray(reference, np.float64)
    if spectrum.shape != reference.shape:
        raise ValueError(f"Spectra of different lengths: {spectrum.shape} vs {reference.shape}.")
    return float(np.linalg.norm(spectrum - reference) / np.linalg.norm(reference))


def latent_spectra(model, images, seed=0, batch_size=500):
    """Figure 1 (right): spectra of stage-1 `z ~ q(z|x)`, stage-2 `u ~ q(u|z)` and a Gaussian matrix.

    Args:
        model: `TwoStageVAE` (needs `stage1` and `stage2` with `encode`).
        images: array `(N, *image_shape)`, N >= latent size.

    Returns:
        dict of float64 arrays `stage1`, `stage2`, `gaussian` (descending singular values).
    """
    z = posterior_samples(model.stage1, images, seed=seed, batch_size=batch_size)
    u = posterior_samples(model.stage2, z.astype(np.float32), seed=seed + 1, batch_size=batch_size)
    return {
        "stage1": singular_values(z),
        "stage2": singular_values(u),
        "gaussian": gaussian_singular_values(u.shape[0], u.shape[1], seed=seed + 2),
    }


def perturbation_image_variance(model, image, num_perturbations=15, scale=1.0, seed=0):
    """Figure 9: image variance when the posterior mean of `image` is perturbed along each latent axis.

    Args:
        model: object with `encode` and `decode` (vector latents).
        image: array `(*image_shape)` or `(1, *image_shape)`, in [0, 1].
        num_perturbations: int, default 15 (the figure's 15 samples per row).
        scale: float, default 1.0. Standard deviation of the perturbation.
        seed: int, default 0.

    Returns:
        dict: `encoder_variance` `(d,)` (`lambda_j` of this image), `image_variance` `(d,)` (summed
        over pixels), and `order` (dimension indices sorted by increasing `lambda_j`, the figure's
        row order).
    """
    image = np.asarray(image, np.float32)
    if image.ndim == len(model.image_shape):
        image = image[None]
    if int(num_perturbations) < 2:
        raise ValueError(f"`num_perturbations` must be >= 2, got {num_perturbations}.")
    mean, log_var = model.encode(image)
    mean = ops.convert_to_numpy(mean).reshape(-1)
    variance = np.exp(ops.convert_to_numpy(log_var).astype(np.float64).reshape(-1))
    dims = mean.shape[0]
    noise = np.random.default_rng(seed).standard_normal((dims, int(num_perturbations))) * scale
    # Row j*K + k: the mean moved by noise[j, k] along axis j.
    latents = np.repeat(mean[None], dims * int(num_perturbations), axis=0)
    latents[np.arange(dims * int(num_perturbations)),
            np.arange(dims).repeat(int(num_perturbations))] += noise.ravel()
    decoded = ops.convert_to_numpy(model.decode(latents.astype(np.float32))).astype(np.float64)
    decoded = decoded.reshape(dims, int(num_perturbations), -1)
    image_variance = decoded.var(axis=1).sum(axis=-1)
    return {"encoder_variance": variance, "image_variance": image_variance,
            "order": np.argsort(variance)}


def matplotlib_available():
    """Whether matplotlib imports (the `plots` extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _new_figure():
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 3.5))
    return plt, figure, axis


def save_figure(plt, figure, path):
    """Lays out, writes `figure` to `path` (PNG) atomically, closes it; returns `path`."""
    from keras_crvae.io import atomic_path

    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    plt.close(figure)
    return path


def plot_spectra(spectra, path, title="Singular values of aggregated-posterior samples"):
    """Writes Figure 1 (right) to `path` (PNG): each spectrum of `spectra` (name -> array)."""
    plt, figure, axis = _new_figure()
    for label, values in spectra.items():
        axis.plot(np.arange(1, len(values) + 1), values, label=label)
    axis.set_xlabel("singular value index")
    axis.set_ylabel("singular value")
    axis.set_title(title, fontsize=9)
    axis.legend()
    return save_figure(plt, figure, path)


def plot_variance_histogram(variances, path, bins=24):
    """Writes the Figure 10 histogram of encoder variances `lambda_j(x)` to `path` (PNG)."""
    plt, figure, axis = _new_figure()
    axis.hist(np.asarray(variances).ravel(), bins=bins, range=(0.0, 1.2))
    axis.set_xlabel("encoder variance lambda_j")
    axis.set_ylabel("frequency")
    return save_figure(plt, figure, path)


def plot_gamma(trajectories, path):
    """Writes `gamma` against the training step (Figure 1, left), log scale; `trajectories` maps a
    label to a list of `(step, gamma)`."""
    plt, figure, axis = _new_figure()
    for label, points in trajectories.items():
        steps, values = zip(*points)
        axis.plot(steps, values, label=label)
    axis.set_yscale("log")
    axis.set_xlabel("training step")
    axis.set_ylabel("gamma")
    axis.legend()
    return save_figure(plt, figure, path)


def _summary(values):
    values = np.asarray(values, np.float64)
    return {"max": float(values.max()), "min": float(values.min()),
            "first5": [float(v) for v in values[:5]], "last5": [float(v) for v in values[-5:]]}


def sample_images(model, num_samples, stage, seed=0, batch_size=1000):
    """`num_samples` images from `model.sample(.., stage=stage)` in batches -> float32 array."""
    chunks = sample_batches(model, num_samples, batch_size=batch_size, seed=seed, stage=stage)
    return np.concatenate(list(chunks)).astype(np.float32)


def two_stage_report(model, images, num_fid_samples=1000, seed=0, plot_dir=None,
                     return_samples=False):
    """All diagnostics of a trained `TwoStageVAE` on real `images` (float, in [0, 1]).

    Returns a JSON-ready dict: `active_dimensions` (+ `variance_histogram`), `spectra` (summaries and
    the relative distance of each stage's spectrum to the Gaussian one), `perturbation` (Figure 9 for
    the first image), and `fid` (`stage1`, `stage2`, `reconstruction`; MNIST-classifier features, only
    for 28x28x1 images when the packaged classifier weights exist). Writes `spectra.png`,
    `encoder_variance_histogram.png` to `plot_dir` when given and matplotlib is installed. With
    `return_samples`, the drawn samples are under `samples` (not JSON-ready).
    """
    images = np.asarray(images, np.float32)
    variances = encoder_variances(model, images)
    report = {"active_dimensions": active_dimensions(variances),
              "variance_histogram": variance_histogram(variances)}
    spectra = latent_spectra(model, images, seed=seed)
    report["spectra"] = {
        "num_rows": int(len(images)),
        **{name: _summary(values) for name, values in spectra.items()},
        "distance_to_gaussian": {name: spectrum_distance(spectra[name], spectra["gaussian"])
                                 for name in ("stage1", "stage2")},
        "values": {name: [float(v) for v in values] for name, values in spectra.items()},
    }
    perturbation = perturbation_image_variance(model, images[0], seed=seed)
    order = perturbation["order"]
    report["perturbation"] = {
        "encoder_variance_sorted": [float(v) for v in perturbation["encoder_variance"][order]],
        "image_variance_sorted": [float(v) for v in perturbation["image_variance"][order]],
    }
    if plot_dir and matplotlib_available():
        plot_spectra({"first stage z": spectra["stage1"], "second stage u": spectra["stage2"],
                      "i.i.d. Gaussian": spectra["gaussian"]},
                     os.path.join(plot_dir, "spectra.png"))
        plot_variance_histogram(variances, os.path.join(plot_dir, "encoder_variance_histogram.png"))
    if num_fid_samples:
        samples = {stage_name: sample_images(model, num_fid_samples, stage, seed=seed)
                   for stage_name, stage in (("stage1", 1), ("stage2", 2))}
        report["fid"] = _digit_fid(model, images, samples)
        report["num_fid_samples"] = int(num_fid_samples)
        if return_samples:
            report["samples"] = samples
    return report


def _digit_fid(model, images, samples):
    from keras_crvae.evaluation import mnist_features

    if tuple(model.image_shape) != mnist_features.MNIST_SHAPE:
        return {"skipped": "the MNIST-classifier FID needs 28x28x1 images"}
    if not mnist_features.DEFAULT_WEIGHTS.exists():
        return {"skipped": f"no classifier weights at {mnist_features.DEFAULT_WEIGHTS}"}
    extractor = mnist_features.mnist_feature_extractor()
    reconstructions = np.concatenate([ops.convert_to_numpy(model.reconstruct(batch))
                                      for batch in _batches(images, 1000)])
    result = {name: mnist_features.mnist_fid(values, images, feature_extractor=extractor)
              for name, values in samples.items()}
    result["reconstruction"] = mnist_features.mnist_fid(reconstructions, images,
                                                        feature_extractor=extractor)
    result["features"] = "mnist_classifier penultimate (128-d)"
    return result


__all__ = [
    "active_dimensions",
    "encoder_variances",
    "gaussian_singular_values",
    "latent_spectra",
    "matplotlib_available",
    "perturbation_image_variance",
    "plot_gamma",
    "plot_spectra",
    "plot_variance_histogram",
    "posterior_samples",
    "sample_images",
    "singular_values",
    "spectrum_distance",
    "to_uint8",
    "two_stage_report",
    "variance_histogram",
]
