"""The scores a VAE-family training job reports: ELBO, importance-sampled NLL and active units of a
model on binarized images, in one JSON-ready dict (`crvae train`, `crvae evaluate`)."""

from keras_crvae.evaluation.diagnostics import active_units
from keras_crvae.evaluation.likelihood import elbo, importance_sampled_nll


def _say(message, verbose):
    """One status line between the progress bars (flushed, so it shows before the next bar)."""
    if verbose:
        print(message, flush=True)


def evaluate_model(model, images, nll_samples=1000, nll_images=None, batch_size=100, seed=0,
                   verbose=1, per_image=False):
    """ELBO (k=1), importance-sampled NLL and active units of `model` on binarized `images`.

    Args:
        model: a VAE-family model (`log_likelihood`, `encode`).
        images: binarized array `(N, H, W, C)` (e.g. `(N, 28, 28, 1)`), values 0/1.
        nll_samples: int, default 1000. Importance samples `k` per image.
        nll_images: int or None. Images of `images` used for the NLL (default: all).
        batch_size: int, default 100. Images per call of the model (ELBO, NLL, active units):
            memory grows with it, not with the number of images.
        seed: int, default 0.
        verbose: int, default 1. Status lines and the NLL's progress.
        per_image: bool, default False. Also return the per-image NLLs (for paired comparisons of
            two models on the same images, `evaluation.paired_difference`).

    Returns:
        JSON-ready dict: `elbo`, `reconstruction`, `kl`, `nll` (`LikelihoodEstimate.to_dict()`)
        and `active_units` (without the per-unit activity); with `per_image`, also
        `nll_per_image`, float64 array `(nll_images,)` (not JSON: pop it before writing).
    """
    nll_images = len(images) if nll_images is None else min(int(nll_images), len(images))
    _say(f"  ELBO (k=1) on {len(images)} images ...", verbose)
    bound = elbo(model, images, batch_size=batch_size, seed=seed)
    _say(f"  NLL: {nll_images} images x k={nll_samples} importance samples ...", verbose)
    nll = importance_sampled_nll(
        model, images[:nll_images], num_samples=nll_samples, batch_size=batch_size, seed=seed,
        verbose=verbose,
    )
    _say(f"  active units on {len(images)} images ...", verbose)
    units = active_units(model, images, batch_size=batch_size)
    summary = {
        "elbo": bound["elbo"].to_dict(),
        "reconstruction": bound["reconstruction"].to_dict(),
        "kl": bound["kl"].to_dict(),
        "nll": nll.to_dict(),
        "active_units": {key: value for key, value in units.items() if key != "activity"},
    }
    if per_image:
        summary["nll_per_image"] = nll.per_example
    return summary
