"""The `likelihood` job: trains an exact-likelihood model (flows, PixelCNN) by maximum likelihood
with `fit()`, then scores it in nats per image and bits per dimension
(`keras_crvae.jobs.base.TrainingJob`).

The protocol every model of this job follows:

    model.data_kind             "binary": pixels in {0, 1} (MNIST dynamically binarized for
                                training, statically binarized with seed 0 for evaluation, as the
                                vae job does); "grey256": integer grey levels 0..255 stored as
                                float32, `round(x * 255)` of the [0, 1] arrays, the same images
                                every epoch (dequantization noise is the model's business)
    model.log_likelihood(x)     (batch,) float32: log P(x) in nats of the DISCRETE image, or the
                                model's documented estimate of it (uniformly dequantized flows:
                                log p(x + u), u ~ U[0, 1)^D, a stochastic lower bound in
                                expectation)
    model.sample(n, temperature=1.0, seed=None) -> (n, H, W, C) in [0, 1] display units
    fit()                       `compute_loss` = mean negative log-likelihood (nats per image) in
                                training mode; Keras metrics `nll` (nats/image) and `bits_per_dim`

bits/dim = nll / (D ln 2), D = H*W*C.

Outputs in `output_dir`:
    model.keras         the trained model (compiled, optimizer state included)
    samples.png         an 8x8 grid of samples at temperature 1 (also refreshed after every epoch)
    samples_t0.7.png    the same at temperature 0.7
    metrics.json        `nll` {mean, standard_error, num_images} (nats/image) and `bits_per_dim`
                        on the evaluation images, the history, the training throughput and the
                        preset's paper number (`paper_result`) when it has one
    history.csv, run.json, backup/   as in the vae job (resumable the same way); every epoch's
                        row also holds `eval_nll` / `eval_bits_per_dim` of the first
                        `PROGRESS_IMAGES` evaluation images and `train_hours` (the run's
                        training hours over all its stretches, `sessions.json`): the
                        NLL-vs-hours curve of a long run
"""

import math
import os

import keras
import numpy as np

from keras_crvae import data as crvae_data
from keras_crvae.io import save_image_grid
from keras_crvae.jobs import base
from keras_crvae.jobs.vae import VAEJob

EVALUATION_BATCH_SIZE = 100
TEMPERATURES = (1.0, 0.7)
# Evaluation images scored after every epoch (history.csv's `eval_nll`): one forward pass each,
# well under 1% of an epoch of the MNIST presets.
PROGRESS_IMAGES = 500


def grey_levels(images, name="images"):
    """`(N, 28, 28, 1)` float32 integer grey levels 0..255: `round(x * 255)` of the [0, 1] images
    (`keras_crvae.data.to_unit_images` accepts uint8 and [0, 1] floats)."""
    return np.round(crvae_data.to_unit_images(images, name=name) * 255.0).astype("float32")


class ShuffledBatches(keras.utils.PyDataset):
    """The same images every epoch in a fresh order, full batches only (NumPy, any backend).

    Args:
        images: array `(N, ...)`.
        batch_size: int.
        seed: int or None.
    """

    def __init__(self, images, batch_size, seed=None, **kwargs):
        super().__init__(**kwargs)
        if len(images) < int(batch_size):
            raise ValueError(f"Only {len(images)} images for `batch_size`={batch_size}: no full "
                             "batch. Lower the batch size.")
        self.images, self.batch_size = images, int(batch_size)
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(images))
        self.on_epoch_end()

    def __len__(self):
        return len(self.images) // self.batch_size

    def __getitem__(self, index):
        return self.images[self.order[index * self.batch_size:(index + 1) * self.batch_size]]

    def on_epoch_end(self):
        self.rng.shuffle(self.order)


def evaluate_log_likelihood(model, images, batch_size=EVALUATION_BATCH_SIZE):
    """`nll` {mean, standard_error, num_images} in nats per image and `bits_per_dim` of `model`
    on `images` (already in the model's `data_kind`), `batch_size` images per call; the sum runs
    in float64."""
    values = []
    for start in range(0, len(images), int(batch_size)):
        values.append(np.asarray(keras.ops.convert_to_numpy(
            model.log_likelihood(images[start:start + batch_size])), np.float64))
    nll = -np.concatenate(values)
    dimensions = int(np.prod(images.shape[1:]))
    standard_error = float(nll.std(ddof=1) / math.sqrt(len(nll))) if len(nll) > 1 else 0.0
    return {"nll": {"mean": float(nll.mean()), "standard_error": standard_error,
                    "num_images": int(len(nll))},
            "bits_per_dim": {"mean": float(nll.mean() / (dimensions * math.log(2.0))),
                             "standard_error": standard_error / (dimensions * math.log(2.0))},
            "dimensions": dimensions}


class ProgressLogLikelihood(keras.callbacks.Callback):
    """Adds `eval_nll` (nats per image) and `eval_bits_per_dim` of `images` to every epoch's logs
    (`evaluate_log_likelihood`), for the history callbacks placed after it.

    Args:
        images: array `(N, ...)` in the model's `data_kind`.
    """

    def __init__(self, images):
        super().__init__()
        self.images = images

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and len(self.images):
            scores = evaluate_log_likelihood(self.model, self.images)
            logs["eval_nll"] = scores["nll"]["mean"]
            logs["eval_bits_per_dim"] = scores["bits_per_dim"]["mean"]


class LikelihoodJob(VAEJob):
    """`train_likelihood`'s job (module docstring). Extra arguments: `train_images`,
    `eval_images`, `nll_images` (evaluation images scored; None: all), `eval_spec`.

    It shares the vae job's per-epoch sample grid, "Training ..." line, `fit` and run facts; its
    data, report and summary are its own."""

    name = "likelihood"
    takes_strategy = False

    def __init__(self, preset, output_dir, train_images=None, eval_images=None, nll_images=None,
                 eval_spec=None, **kwargs):
        super().__init__(preset, output_dir, train_images=train_images, eval_images=eval_images,
                         nll_images=nll_images, eval_spec=eval_spec, **kwargs)
        self.data_kind = None

    def prepare(self):
        self.use_embedded_defaults()
        self.data_kind = self.config.model["data_kind"]
        batch = self.config.training.batch_size
        if self.nll_images is not None:
            self.eval_images = self.eval_images[:int(self.nll_images)]
        if self.data_kind == "binary":
            self.train_images = crvae_data.to_unit_images(self.train_images, name="train_images")
            self.eval_images = crvae_data.static_binarize(self.eval_images, seed=0)
            self.dataset = crvae_data.training_data(self.train_images, batch_size=batch,
                                                    seed=self.seed)
        else:  # "grey256"
            self.train_images = grey_levels(self.train_images, name="train_images")
            self.eval_images = grey_levels(self.eval_images, name="eval_images")
            self.dataset = ShuffledBatches(self.train_images, batch, seed=self.seed)
        self.steps_per_epoch = len(self.train_images) // batch

    def callbacks(self):
        return [ProgressLogLikelihood(self.eval_images[:PROGRESS_IMAGES])] + super().callbacks()

    def report(self, model, history, train_seconds):
        output_dir, config = self.output_dir, self.config
        for temperature in TEMPERATURES:
            name = "samples.png" if temperature == 1.0 else f"samples_t{temperature:g}.png"
            samples = model.sample(64, temperature=temperature, seed=self.seed)
            save_image_grid(keras.ops.convert_to_numpy(samples), os.path.join(output_dir, name))
        base.say(f"Saved {os.path.join(output_dir, 'model.keras')}, samples.png and "
                 f"samples_t0.7.png; evaluating the log-likelihood of {len(self.eval_images)} "
                 f"{self.data_kind} images of {self.eval_spec or 'eval_images'}", self.verbose)
        metrics = evaluate_log_likelihood(model, self.eval_images)
        if self.data_kind == "grey256":  # the scale of NICE's Table 2 (docs/flows.md)
            metrics["log_likelihood_unit_scale"] = (
                -metrics["nll"]["mean"] + metrics["dimensions"] * math.log(256.0))
        metrics.update(self.training_facts(history, train_seconds))
        metrics.update({"data_kind": self.data_kind,
                        "paper_result": getattr(config, "paper_result", None)})
        return metrics

    def summarize(self, metrics):
        nll, bits = metrics["nll"], metrics["bits_per_dim"]
        line = (f"NLL  {nll['mean']:.2f} +- {nll['standard_error']:.2f} nats/image = "
                f"{bits['mean']:.4f} +- {bits['standard_error']:.4f} bits/dim "
                f"({nll['num_images']} {metrics['data_kind']} images; lower is better)")
        paper = metrics.get("paper_result")
        if paper and paper.get("metric") in metrics:
            line += (f"\nPaper {paper['value']} {paper.get('unit', '')} ({paper['metric']}, "
                     f"{paper.get('source', '')}); here {metrics[paper['metric']]:.2f}")
        print(line, flush=True)


def train_likelihood(preset, train_images=None, eval_images=None, output_dir="crvae_run",
                     epochs=None, batch_size=None, nll_images=None, seed=0, fresh=False,
                     verbose=1, data_spec=None, eval_spec=None, stop_after_minutes=None,
                     light_state_dtype=None, **overrides):
    """Trains an exact-likelihood preset and writes the artifacts of the module docstring.

    Args:
        preset: str, a preset registered with `job="likelihood"`.
        train_images: array `(N, 28, 28[, 1])`, uint8 or [0, 1]; default: the embedded MNIST
            subset's 10,000 training images.
        eval_images: array of evaluation images; default: the embedded subset's 1,000 test images.
        output_dir: str, default "crvae_run".
        epochs, batch_size: override the preset's values when given.
        nll_images: int or None, default None. Evaluation images scored (None: all).
        seed: int, default 0.
        fresh: bool, default False. Start over (see `keras_crvae.jobs.vae.train`).
        verbose: int, default 1.
        data_spec, eval_spec: str or None, where the images came from (run.json).
        stop_after_minutes: float or None. Stop at the first epoch end after this many minutes,
            resumable (SIGTERM does the same).
        light_state_dtype: None, "float16" or "float32". A stretch stopped by the time budget or
            SIGTERM also writes the light state (weights in that dtype + resume.json, small
            enough to commit), which a machine without `backup/` resumes from
            (`keras_crvae.jobs.base.TrainingJob`).
        **overrides: preset overrides (see `keras_crvae.from_preset`).

    Returns:
        dict, the content of metrics.json, or a `base.stopped_result` when stopped early.
    """
    return LikelihoodJob(preset, output_dir, train_images=train_images, eval_images=eval_images,
                         nll_images=nll_images, eval_spec=eval_spec, epochs=epochs,
                         batch_size=batch_size, seed=seed, fresh=fresh, verbose=verbose,
                         stop_after_minutes=stop_after_minutes, data_spec=data_spec,
                         light_state_dtype=light_state_dtype, overrides=overrides).run()
