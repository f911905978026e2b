"""The VAE-family job behind `crvae train` (MNIST presets): fit a preset, then write the model, images
and metrics (`keras_crvae.jobs.base.TrainingJob`).

Outputs in `output_dir`:
    model.keras           the trained model (compiled, optimizer state included), written atomically
    samples.png           an 8x8 grid of prior samples (also refreshed after every epoch)
    reconstructions.png   evaluation images (odd rows) above their reconstructions (even rows)
    metrics.json          ELBO, importance-sampled NLL (with k and standard error), active units,
                          the training history, wall time and throughput
    nll_per_image.npy     the NLL of each of the first `nll_images` evaluation images, float32
                          `(nll_images,)`: two runs on the same images compare image by image
                          (`keras_crvae.evaluation.paired_difference`)
    history.csv           per-epoch training metrics, one row per epoch (`callbacks.EpochHistory`)
    run.json              the preset and settings of the run (`keras_crvae.jobs.runs`)
    backup/               `keras.callbacks.BackupAndRestore` state: a killed or stopped run resumes
                          where it stopped; removed once the run is trained

Running a job again on the same `output_dir` resumes a killed or stopped run, continues a finished
one when more epochs are asked for, says "already trained" otherwise, and refuses another preset's
run or changed settings (`keras_crvae.jobs.runs` has the rules; `fresh=True` starts over).
`stop_after_minutes=N` stops at the first epoch end after N minutes (SIGTERM does the same).

With `strategy="mirrored"` or `"multi_worker"` the model is built and compiled inside the strategy's
scope and `fit` splits every global batch (`batch_size`) over the replicas. Under
`MultiWorkerMirroredStrategy` every worker runs this whole job (training and evaluation take part in
collective ops); the chief writes to `output_dir`, worker `i` to `output_dir/workers/worker_<i>`.
"""

import dataclasses
import os

import keras
import numpy as np

from keras_crvae import callbacks as crvae_callbacks
from keras_crvae import data as crvae_data
from keras_crvae import presets
from keras_crvae.evaluation.summary import evaluate_model
from keras_crvae.io import save_image_grid, save_npy
from keras_crvae.jobs import base, job_for

PER_IMAGE_NLL = "nll_per_image.npy"  # beside metrics.json: the NLL of each evaluation image


class VAEJob(base.TrainingJob):
    """`train`'s job: MNIST images dynamically binarized each epoch, scored on statically binarized
    evaluation images (see the module docstring). Extra arguments: `train_images`, `eval_images`,
    `nll_samples`, `nll_images`, `eval_spec`."""

    name = "vae"

    def __init__(self, preset, output_dir, train_images=None, eval_images=None, nll_samples=100,
                 nll_images=500, eval_spec=None, **kwargs):
        super().__init__(preset, output_dir, **kwargs)
        self.train_images, self.eval_images = train_images, eval_images
        self.nll_samples, self.nll_images, self.eval_spec = nll_samples, nll_images, eval_spec

    def use_embedded_defaults(self):
        """The embedded MNIST subset's training / test images where none were given."""
        if self.train_images is None or self.eval_images is None:
            embedded = crvae_data.load_embedded_mnist()
            if self.train_images is None:
                self.train_images = embedded["x_train"]
            if self.eval_images is None:
                self.eval_images = embedded["x_test"]
            self.data_spec = self.data_spec or "embedded"
            self.eval_spec = self.eval_spec or "embedded:test"

    def prepare(self):
        self.use_embedded_defaults()
        self.train_images = crvae_data.to_unit_images(self.train_images, name="train_images")
        self.eval_images = crvae_data.static_binarize(self.eval_images, seed=0)
        batch = self.config.training.batch_size
        self.dataset = crvae_data.training_data(self.train_images, batch_size=batch,
                                                seed=self.seed)
        self.steps_per_epoch = len(self.train_images) // batch

    def build_model(self):
        model = super().build_model()
        # e.g. the IWAE MLPs' output bias; a resumed run's backup overwrites it anyway.
        return presets.initialize_from_data(model, self.preset, self.train_images,
                                            **self.overrides)

    def callbacks(self):
        return super().callbacks() + [crvae_callbacks.SampleGrid(
            os.path.join(self.output_dir, "samples.png"), seed=self.seed)]

    def describe(self):
        return (f"Training {self.preset} on {len(self.train_images):,} images "
                f"({self.data_spec or 'arrays'}): {base.runs.epochs_text(self.total_epochs)} of "
                f"{self.steps_per_epoch} steps at batch {self.config.training.batch_size}"
                f" -> {self.output_dir}/")

    def fit(self, model, callbacks, initial_epoch):
        return model.fit(self.dataset, epochs=self.total_epochs, callbacks=callbacks,
                         shuffle=False, verbose=self.verbose, initial_epoch=initial_epoch)

    def report(self, model, history, train_seconds):
        output_dir, config = self.output_dir, self.config
        base.say(f"Saved {os.path.join(output_dir, 'model.keras')}; writing samples.png and "
                 "reconstructions.png", self.verbose)
        save_image_grid(keras.ops.convert_to_numpy(model.sample(64, seed=self.seed)),
                        os.path.join(output_dir, "samples.png"))
        base.save_reconstruction_grid(model, self.eval_images,
                                      os.path.join(output_dir, "reconstructions.png"))
        base.say(f"Evaluating on {len(self.eval_images)} statically binarized images of "
                 f"{self.eval_spec or 'eval_images'}:", self.verbose)
        metrics = evaluate_model(model, self.eval_images, nll_samples=self.nll_samples,
                                 nll_images=self.nll_images, seed=self.seed, verbose=self.verbose,
                                 per_image=True)
        save_npy(metrics.pop("nll_per_image").astype(np.float32),
                 os.path.join(output_dir, PER_IMAGE_NLL))
        metrics.update(self.training_facts(history, train_seconds))
        metrics.update({"replicas": int(self.strategy.num_replicas_in_sync),
                        "paper_nll": config.paper_nll})
        return metrics

    def training_facts(self, history, train_seconds):
        """The run's facts in metrics.json: preset, config, images, epochs, time, throughput,
        history (every epoch of history.csv) and backend."""
        config = self.config
        images_seen = self.steps_per_epoch * config.training.batch_size * len(history.epoch)
        return {
            "preset": self.preset,
            "config": {"network": config.network, "model": config.model,
                       "training": dataclasses.asdict(config.training)},
            "num_train_images": int(len(self.train_images)),
            "epochs": self.total_epochs,
            "epochs_this_run": len(history.epoch),
            "train_seconds": round(train_seconds, 2),
            "train_images_per_second": round(images_seen / max(train_seconds, 1e-9), 1),
            "history": base.history_from_csv(self.output_dir, history.history),
            "backend": keras.backend.backend(),
        }

    def summarize(self, metrics):
        nll, bound = metrics["nll"], metrics["elbo"]
        print(f"NLL  {nll['mean']:.2f} +- {nll['standard_error']:.2f} nats (k={nll['num_samples']}, "
              f"{nll['num_images']} images; lower is better)\n"
              f"ELBO {bound['mean']:.2f} +- {bound['standard_error']:.2f} nats (higher is better)\n"
              f"Active units {metrics['active_units']['active_units']} / "
              f"{metrics['active_units']['num_latents']}", flush=True)


def train(preset="mnist_crvae_quickstart", train_images=None, eval_images=None,
          output_dir="crvae_run", epochs=None, batch_size=None, nll_samples=100, nll_images=500,
          seed=0, fresh=False, verbose=1, strategy="default", data_spec=None, eval_spec=None,
          stop_after_minutes=None, light_state_dtype=None, **overrides):
    """Trains a VAE-family preset and writes the artifacts listed in the module docstring.

    A Two-Stage preset is handed to `keras_crvae.jobs.two_stage.train_two_stage` (its job).

    Args:
        preset: str, a name from `keras_crvae.list_presets()`.
        train_images: array `(N, 28, 28[, 1])` grey levels, dynamically binarized; default: the
            embedded MNIST subset's 10,000 training images.
        eval_images: array of evaluation images (statically binarized with seed 0); default: the
            embedded subset's 1,000 test images.
        output_dir: str, default "crvae_run".
        epochs, batch_size: override the preset's values when given.
        nll_samples: int, default 100. `k` of the importance-sampled NLL.
        nll_images: int, default 500. Evaluation images used for the NLL.
        seed: int, default 0.
        fresh: bool, default False. Start over: a previous run in `output_dir` is set aside in
            `previous/` until the new run has backed up its first epoch, then deleted (put back
            if the new run stops before); without it a killed run resumes and a finished one is
            kept or continued (`jobs.runs`).
        verbose: int, default 1. Keras progress bars and status lines.
        strategy: str ("default", "mirrored", "multi_worker"; see `keras_crvae.distribute`) or a
            `tf.distribute.Strategy`, default "default". Create a multi-worker strategy before
            any TensorFlow op runs (a name here is resolved first thing).
        data_spec, eval_spec: str or None, where the images came from (recorded in run.json and
            printed).
        stop_after_minutes: float or None. Stop at the first epoch end after this many minutes
            and keep the run resumable (`jobs.longrun.TimeBudget`); SIGTERM stops the same way.
        light_state_dtype: None, "float16" or "float32". A stretch stopped by the time budget or
            SIGTERM also writes the light state (weights in that dtype + resume.json, small
            enough to commit), which a machine without `backup/` resumes from
            (`keras_crvae.jobs.base.TrainingJob`).
        **overrides: preset overrides (see `keras_crvae.from_preset`).

    Returns:
        dict, the content of metrics.json (of the earlier run when it is already trained), or,
        when stopped early, `{"preset", "stopped", "completed_epochs", "epochs", "output_dir"}`.

    Raises:
        keras_crvae.runs.RunConflictError: `output_dir` holds another preset's run, or this
            preset's with other settings.
    """
    if job_for(preset).name == "two_stage":
        from keras_crvae.jobs.two_stage import train_two_stage

        if light_state_dtype:
            raise ValueError(f"`light_state_dtype`: the two_stage job cannot resume a run "
                             f"(preset {preset}); expected None.")

        return train_two_stage(preset, train_images, eval_images, output_dir, epochs=epochs,
                               batch_size=batch_size, seed=seed, verbose=verbose, fresh=fresh,
                               strategy=strategy, stop_after_minutes=stop_after_minutes,
                               **overrides)
    return VAEJob(preset, output_dir, train_images=train_images, eval_images=eval_images,
                  nll_samples=nll_samples, nll_images=nll_images, eval_spec=eval_spec,
                  epochs=epochs, batch_size=batch_size, seed=seed, fresh=fresh, verbose=verbose,
                  strategy=strategy, stop_after_minutes=stop_after_minutes, data_spec=data_spec,
                  light_state_dtype=light_state_dtype, overrides=overrides).run()
