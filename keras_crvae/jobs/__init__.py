"""The training jobs: one skeleton (`base`), one job per kind of preset, the run-folder rules (`runs`)
and the long-run engine (`longrun`: time budget, SIGTERM stop at an epoch end, light state,
records of each training stretch).

Which job trains a preset is decided in one place: each preset family names its job when it
registers (`keras_crvae.presets.register(..., job=...)`), and `job_for(preset)` answers with the
`Job` of `JOBS`. The CLI, the tools and `train` below all ask it.

    job       module                           function        resumes a killed run
    vae       keras_crvae.jobs.vae             train           yes (BackupAndRestore)
    two_stage keras_crvae.jobs.two_stage       train_two_stage no (restarts)
    gan       keras_crvae.jobs.gan             train_gan       yes (BackupAndRestore)
    disentangling keras_crvae.jobs.disentangling train_sprites no (restarts)
    likelihood keras_crvae.jobs.likelihood     train_likelihood yes (BackupAndRestore)
    vq_vae    keras_crvae.jobs.vq_vae          train_vq_vae    yes (VQ-VAE: backup/, then the prior: backup_prior/)

This module imports no Keras or TensorFlow (`crvae train` asks `job_for` before TensorFlow loads);
the job modules do.
"""

import dataclasses
import importlib

from keras_crvae import presets


@dataclasses.dataclass(frozen=True)
class Job:
    """A training job: where its function lives and what it can do.

    Attributes:
        name: str, the key in `JOBS` (what a preset family names in `presets.register`).
        module: str, the module holding the job's function.
        function: str, the function's name: `function(preset, ...) -> metrics dict`.
        resumable: bool, a killed or stopped run resumes at its last finished epoch (so the job
            takes `stop_after_minutes` and stops at an epoch end on SIGTERM).
        takes_strategy: bool, the job runs under a `tf.distribute` strategy (`strategy=`).
        description: str, one line.
    """

    name: str
    module: str
    function: str
    resumable: bool
    takes_strategy: bool
    description: str

    @property
    def train_function(self):
        """The job's training function (imports its module: Keras and TensorFlow load)."""
        return getattr(importlib.import_module(self.module), self.function)

    def train(self, preset, **kwargs):
        """Runs the job: `train_function(preset, **kwargs)`; returns its metrics dict."""
        return self.train_function(preset, **kwargs)


JOBS = {
    "vae": Job("vae", "keras_crvae.jobs.vae", "train", resumable=True, takes_strategy=True,
               description="VAE family on MNIST: ELBO, importance-sampled NLL, active units"),
    "two_stage": Job("two_stage", "keras_crvae.jobs.two_stage", "train_two_stage",
                     resumable=False, takes_strategy=False,
                     description="Two-Stage VAE: both stages, gamma, spectra, FID"),
    "gan": Job("gan", "keras_crvae.jobs.gan", "train_gan", resumable=True, takes_strategy=True,
               description="adversarial training: VAE-GANs, DCGAN/WGAN/InfoGAN, Stage2"),
    "disentangling": Job("disentangling", "keras_crvae.jobs.disentangling", "train_sprites",
                         resumable=False, takes_strategy=False,
                         description="procedural sprites: beta-VAE, FactorVAE, MIG scores"),
    "likelihood": Job("likelihood", "keras_crvae.jobs.likelihood", "train_likelihood",
                      resumable=True, takes_strategy=False,
                      description="exact-likelihood models (flows, PixelCNN) on MNIST: nats, "
                                  "bits/dim"),
    "vq_vae": Job("vq_vae", "keras_crvae.jobs.vq_vae", "train_vq_vae", resumable=True,
                  takes_strategy=False,
                  description="VQ-VAE, then its PixelCNN prior: reconstruction, codebook usage"),
}


def job_for(preset):
    """The `Job` that trains `preset` (a name of `keras_crvae.list_presets()` or a `Preset`).

    Raises:
        KeyError: an unknown preset name.
    """
    return JOBS[presets.job_name(preset)]


def train(preset="mnist_crvae_quickstart", **kwargs):
    """Trains any preset with its job (`job_for(preset).train(preset, **kwargs)`).

    The keyword arguments are the job's (see the job modules); `output_dir`, `epochs`,
    `batch_size`, `seed`, `verbose`, `fresh`, `data_spec` and, for resumable jobs,
    `stop_after_minutes` and `strategy` mean the same in every job.
    """
    return job_for(preset).train(preset, **kwargs)
