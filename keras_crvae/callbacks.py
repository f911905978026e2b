"""Training callbacks: NaN guard, an atomic `BackupAndRestore`, per-epoch history CSV, sample and reconstruction grids (PNG and
TensorBoard), gamma history, latent traversals (the time budget: `jobs.longrun.TimeBudget`)."""

import csv
import io
import json
import math
import os

import keras
import numpy as np
from keras import ops

from keras_crvae.io import atomic_path, save_image_grid


class NaNGuard(keras.callbacks.Callback):
    """Stops training with a `FloatingPointError` as soon as a batch loss is NaN or infinite.

    Unlike `keras.callbacks.TerminateOnNaN`, which stops quietly, this raises, so no script goes on to
    save or evaluate a NaN model. The message names the epoch and batch and the usual remedies.
    """

    def __init__(self):
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.model.stop_training = True
            raise FloatingPointError(
                f"The training loss became {float(loss)} at epoch {self._epoch + 1}, batch {batch + 1}. "
                "Training stopped and nothing was saved from this step. Lower the learning rate, "
                "check the images' value range, or resume from the last checkpoint."
            )


class _WeightsBuffer(io.BytesIO):
    """An in-memory `.weights.h5` file: Keras' HDF5 store writes into a `BytesIO` and checks the
    name's suffix through `str()`."""

    def __str__(self):
        return "memory.weights.h5"


def weights_file_bytes(model):
    """The bytes of `model.save_weights(PATH.weights.h5)`, built in memory.

    Why: HDF5 crashes the process (segmentation fault in `h5py.File.close`, h5py 3.x) when a write
    to its file fails, e.g. on a full disk; built in memory, the bytes then go to disk through
    Python's file API, whose failure is an ordinary `OSError`.
    """
    buffer = _WeightsBuffer()
    model.save_weights(buffer, overwrite=True)
    return buffer.getvalue()


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` whose checkpoint is replaced atomically at each save.

    Keras writes `backup/latest.weights.h5` in place and then `training_metadata.json`: a process
    killed, or a disk that fills up, during that write leaves a truncated weights file (the only
    full state of the run) or weights of epoch N with the epoch number of N-1. Here both files are
    written to temporary files beside them first, and renamed over the old ones only when both are
    complete (weights first, then the epoch: a kill between the two renames, a window of
    microseconds, costs one epoch of repetition, never the state). A failed write (e.g. `OSError`
    "No space left on device") leaves the previous checkpoint as it was, with no temporary file,
    and propagates. Same file names and arguments as Keras' callback, so existing backups resume;
    `double_checkpoint` (Keras' copy of the previous files, a guard against the torn write that
    cannot happen here) is refused.
    """

    def __init__(self, backup_dir, save_freq="epoch", double_checkpoint=False,
                 delete_checkpoint=True):
        if double_checkpoint:
            raise ValueError("`double_checkpoint`: AtomicBackupAndRestore replaces its checkpoint "
                             "atomically and keeps no second copy; leave it False.")
        super().__init__(backup_dir, save_freq=save_freq, delete_checkpoint=delete_checkpoint)

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        metadata = json.dumps({"epoch": self._current_epoch, "batch": self._last_batch_seen})
        # atomic_path renames on exit, innermost first: the weights, then the epoch.
        with atomic_path(self._training_metadata_path) as epoch_file, \
                atomic_path(self._weights_path) as weights:
            content = weights_file_bytes(self.model)
            with open(weights, "wb") as handle:
                handle.write(content)
            with open(epoch_file, "w") as handle:
                handle.write(metadata)


class ContinueLearningRateSchedule(keras.callbacks.Callback):
    """Puts the optimizer's learning-rate schedule at the run's global step when training begins.

    A long run (`keras_crvae.jobs.longrun`) resumes either from its full `backup/`, which restores
    the optimizer's step counter with Adam's moments, or from its light state with a fresh optimizer
    (step 0, a `StepOffsetSchedule` adding the steps already taken). The two mix: after a light-state
    resume the counter counts from 0, so a later backup restores a counter that is short of the run's
    global step by the steps before that resume. Without this callback the schedule then read that
    counter and went back in time (Table 1, 2026-12-06: both rows resumed from a backup written after
    a light-state resume trained at the pre-halving learning rate, docs/reproduction.md).

    Place it after `BackupAndRestore` (callbacks run in order): at `on_train_begin`, after the
    restore and before the training step is traced, the schedule becomes
    `StepOffsetSchedule(schedule, global_step - optimizer.iterations)`, so it reads the global step.
    An optimizer with a constant learning rate is left alone.

    Args:
        global_step: int >= 0, the optimizer steps the run has taken (`initial_epoch *
            steps_per_epoch`).
        label: str, prefix of the one line printed when the offset changes.
    """

    def __init__(self, global_step, label=""):
        super().__init__()
        if int(global_step) < 0:
            raise ValueError(f"`global_step` must be >= 0, got {global_step}.")
        self.global_step = int(global_step)
        self.label = label

    def on_train_begin(self, logs=None):
        optimizer = self.model.optimizer
        if learning_rate_schedule(optimizer) is None:
            return
        counter = int(keras.ops.convert_to_numpy(optimizer.iterations))
        offset = self.global_step - counter
        if offset < 0:
            raise ValueError(f"{self.label}the optimizer has taken {counter} steps, more than the "
                             f"run's {self.global_step}: the backup is not of this run's epoch.")
        old_offset = set_schedule_offset(optimizer, offset)
        if offset != old_offset:
            print(f"{self.label}the learning-rate schedule continues at step {self.global_step} "
                  f"(optimizer counter {counter}, offset {old_offset} -> {offset})", flush=True)


def learning_rate_schedule(optimizer):
    """`optimizer`'s learning-rate schedule object, or None for a constant rate (Keras'
    `learning_rate` property returns the schedule's current value, not the schedule)."""
    schedule = getattr(optimizer, "_learning_rate", None)
    return schedule if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule) else None


def set_schedule_offset(optimizer, offset):
    """Makes `optimizer`'s learning-rate schedule read step `counter + offset`
    (`StepOffsetSchedule`; offset 0: the schedule itself). Returns the offset it had; an optimizer
    with a constant learning rate is left alone (returns None)."""
    from keras_crvae.optimizers import StepOffsetSchedule

    schedule = learning_rate_schedule(optimizer)
    if schedule is None:
        return None
    base = schedule.schedule if isinstance(schedule, StepOffsetSchedule) else schedule
    old_offset = schedule.offset if isinstance(schedule, StepOffsetSchedule) else 0
    optimizer.learning_rate = StepOffsetSchedule(base, offset) if offset else base
    return old_offset


# Where the library's models keep their optimizers: one-optimizer models in `optimizer`, the
# two-player ones (VAE-GAN, GAN, FactorVAE, Stage2) in these as well.
OPTIMIZER_ATTRIBUTES = ("optimizer", "generator_optimizer", "discriminator_optimizer")


def model_optimizers(model):
    """The optimizers of a compiled `model` by attribute name (`OPTIMIZER_ATTRIBUTES`, in that
    order), each object once under its first name (a VAE-GAN's `optimizer` is its generator's)."""
    found, seen = {}, set()
    for name in OPTIMIZER_ATTRIBUTES:
        optimizer = getattr(model, name, None)
        if isinstance(optimizer, keras.optimizers.Optimizer) and id(optimizer) not in seen:
            found[name] = optimizer
            seen.add(id(optimizer))
    return found


def optimizer_steps(model):
    """`{name: the optimizer's step counter}` for `model_optimizers(model)` (a thresholded
    discriminator's counts only its applied updates)."""
    return {name: int(keras.ops.convert_to_numpy(optimizer.iterations))
            for name, optimizer in model_optimizers(model).items()}


class ScheduleOffsets(keras.callbacks.Callback):
    """Continues each optimizer's learning-rate schedule after a resume from weights alone.

    A job resumed from its light state (`keras_crvae.jobs.longrun.save_job_light_state`: weights, no
    optimizer state) starts fresh optimizers whose step counters count from 0; each must read its
    schedule at the steps it had taken before (`offsets[name]`: per optimizer, since a thresholded
    discriminator skips steps). Backups written after such a resume hold the short counters, so a
    later resume from them takes the same offsets. Place it after `BackupAndRestore`: at
    `on_train_begin`, after the restore and before the training step is traced.

    Args:
        offsets: dict `{optimizer attribute name: steps >= 0}` (`model_optimizers`); optimizers not
            named keep their schedules.
        label: str, prefix of the line printed for each offset set.
    """

    def __init__(self, offsets, label=""):
        super().__init__()
        self.offsets = {name: int(steps) for name, steps in offsets.items()}
        if any(steps < 0 for steps in self.offsets.values()):
            raise ValueError(f"`offsets` must be >= 0, got {offsets}.")
        self.label = label

    def on_train_begin(self, logs=None):
        optimizers = model_optimizers(self.model)
        unknown = sorted(set(self.offsets) - set(optimizers))
        if unknown:
            raise ValueError(f"{self.label}the model has no optimizer {unknown} (it has "
                             f"{sorted(optimizers)}): the light state is not of this model.")
        for name, offset in self.offsets.items():
            if offset and set_schedule_offset(optimizers[name], offset) is not None:
                print(f"{self.label}{name}'s learning-rate schedule continues at step "
                      f"{offset} + its counter", flush=True)


class EpochHistory(keras.callbacks.Callback):
    """Writes per-epoch metrics to a CSV file with exactly one row per epoch.

    Unlike `keras.callbacks.CSVLogger` it adds no empty `val_*` columns, writes nothing before the
    first epoch ends (a run that fails at once leaves no empty file), and rows of a resumed or
    continued run replace those of the same epochs instead of repeating them. The file is rewritten
    atomically at every epoch's end (a few hundred rows at most).

    Args:
        path: str, the CSV file.
    """

    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_epoch_end(self, epoch, logs=None):
        rows = [row for row in read_history(self.path) if int(row["epoch"]) < epoch]
        rows.append({"epoch": epoch, **{key: float(value) for key, value in (logs or {}).items()}})
        keys = ["epoch"] + sorted({key for row in rows for key in row} - {"epoch"})
        with atomic_path(self.path) as temporary:
            with open(temporary, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=keys, restval="")
                writer.writeheader()
                writer.writerows(rows)


def read_history(path):
    """The rows of a history CSV as dicts (an empty list when there is no file)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if row.get("epoch", "").isdigit()]


class SampleGrid(keras.callbacks.Callback):
    """Writes a PNG grid of prior samples (`model.sample`) at the end of every `every` epochs.

    Args:
        path: str, output PNG; `{epoch}` in it is formatted with the 1-based epoch number.
        num_images: int, default 64.
        seed: int, default 0. A fixed seed, so successive grids show the same latents.
        every: int, default 1.
    """

    def __init__(self, path, num_images=64, seed=0, every=1):
        super().__init__()
        if int(num_images) < 1 or int(every) < 1:
            raise ValueError("`num_images` and `every` must be >= 1.")
        self.path, self.num_images, self.seed, self.every = path, int(num_images), seed, int(every)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        images = ops.convert_to_numpy(self.model.sample(self.num_images, seed=self.seed))
        save_image_grid(images, self.path.format(epoch=epoch + 1))


def _to_unit_range(images, image_range):
    low, high = image_range
    return np.clip((np.asarray(images, np.float32) - low) / (high - low), 0.0, 1.0)


class ImageGrids(keras.callbacks.Callback):
    """Per-epoch PNG grids of prior samples and reconstructions, also logged to TensorBoard.

    Samples decode a fixed set of latents, so successive grids show the same `z` as training goes;
    the reconstruction grid shows fixed real images (odd rows) above their reconstructions (even
    rows). Works for any model with `decode`, `latent_shape` and `image_range`; the reconstruction
    grid needs `reconstruct` (a standalone GAN has none), and a model's `prior_latents(n, seed)`
    (e.g. InfoGAN's latents with their codes) replaces the standard-normal draw.

    Files: `samples_epoch{N}.png`, `reconstructions_epoch{N}.png` and the latest of each as
    `samples.png` / `reconstructions.png` in `output_dir`, all written atomically.

    Args:
        output_dir: str.
        images: array `(M, H, W, C)` in the model's image range, M a multiple of 8 (<= 32 used).
        num_samples: int, default 64.
        seed: int, default 0. Seed of the fixed latents.
        log_dir: str or None. TensorBoard directory for `tf.summary.image` (TensorFlow only).
        every: int, default 1.
    """

    def __init__(self, output_dir, images, num_samples=64, seed=0, log_dir=None, every=1):
        super().__init__()
        if int(num_samples) < 1 or int(every) < 1:
            raise ValueError("`num_samples` and `every` must be >= 1.")
        images = np.asarray(images)[:32]
        if len(images) < 8 or len(images) % 8:
            raise ValueError(f"`images` must hold a multiple of 8 images (8 to 32); got {len(images)}.")
        self.output_dir, self.images, self.every = output_dir, images, int(every)
        self.num_samples, self.seed, self.log_dir = int(num_samples), seed, log_dir
        self._latents = None
        self._writer = None

    def on_train_begin(self, logs=None):
        if callable(getattr(self.model, "prior_latents", None)):
            self._latents = np.asarray(self.model.prior_latents(self.num_samples, seed=self.seed))
        else:
            shape = (self.num_samples,) + tuple(self.model.latent_shape)
            self._latents = np.random.default_rng(self.seed).normal(size=shape).astype("float32")
        if self.log_dir and keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "images"))

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        image_range = getattr(self.model, "image_range", (0.0, 1.0))
        samples = _to_unit_range(ops.convert_to_numpy(self.model.decode(self._latents)), image_range)
        grids = {"samples": samples}
        if callable(getattr(self.model, "reconstruct", None)):
            reconstructions = _to_unit_range(
                ops.convert_to_numpy(self.model.reconstruct(self.images)), image_range)
            originals = _to_unit_range(self.images, image_range)
            rows = len(originals) // 8
            shape = originals.shape[1:]
            paired = np.concatenate([originals.reshape((rows, 1, 8) + shape),
                                     reconstructions.reshape((rows, 1, 8) + shape)], axis=1)
            grids["reconstructions"] = paired.reshape((-1,) + shape)
        if callable(getattr(self.model, "style_grids", None)):  # StyleGAN: mixing, truncation
            grids.update({name: _to_unit_range(images, image_range) for name, images in
                          self.model.style_grids(seed=self.seed).items()})
        for name, grid in grids.items():
            save_image_grid(grid, os.path.join(self.output_dir, f"{name}_epoch{epoch + 1}.png"))
            save_image_grid(grid, os.path.join(self.output_dir, f"{name}.png"))
        if self._writer is not None:
            import tensorflow as tf

            with self._writer.as_default():
                for name, grid in grids.items():
                    tf.summary.image(name, grid[:16], step=epoch + 1, max_outputs=16)
            self._writer.flush()


class GammaHistory(keras.callbacks.Callback):
    """Records the decoder standard deviation `gamma = exp(log_gamma)` of a `GammaVAE` while it trains.

    Theorem 3 of Dai & Wipf (2019) predicts `gamma -> 0` for data on a manifold; this is the data of
    their Figure 1 (left). Values are read from the model's `log_gamma` variable (not averaged over
    the epoch) at the end of every epoch and, when `every_batches` is set, every that many batches.

    Args:
        every_batches: int or None, default None. Also record within epochs.
        verbose: bool, default False. Print each epoch's value.

    Attributes:
        epochs: list of `(epoch, gamma)` (1-based epoch numbers).
        batches: list of `(global_step, gamma)`.
    """

    def __init__(self, every_batches=None, verbose=False):
        super().__init__()
        if every_batches is not None and int(every_batches) < 1:
            raise ValueError(f"`every_batches` must be None or >= 1, got {every_batches}.")
        self.every_batches = None if every_batches is None else int(every_batches)
        self.verbose = bool(verbose)
        self.epochs, self.batches = [], []
        self._step = 0

    def _gamma(self):
        return float(ops.convert_to_numpy(ops.exp(self.model.log_gamma)))

    def on_train_begin(self, logs=None):
        if not hasattr(self.model, "log_gamma"):
            raise ValueError("`GammaHistory` needs a model with a `log_gamma` variable (GammaVAE).")
        if not self.batches:
            self.batches.append((0, self._gamma()))

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.every_batches and self._step % self.every_batches == 0:
            self.batches.append((self._step, self._gamma()))

    def on_epoch_end(self, epoch, logs=None):
        gamma = self._gamma()
        self.epochs.append((epoch + 1, gamma))
        if logs is not None:
            logs["gamma_end"] = gamma
        if self.verbose:
            print(f"epoch {epoch + 1}: gamma = {gamma:.5f}")


def latent_traversal_grid(model, image, kl_per_latent, num_values=8, limit=2.5, max_rows=None):
    """Decoded latent traversals of one image, one row per latent, ordered by KL (largest first).

    Row `r` holds `decode(z)` for `z` = the image's posterior mean with latent `order[r]` set to
    each of `num_values` values evenly spaced in `[-limit, limit]` (the lecture's beta-VAE figure:
    "latent traversals ordered by KL divergence with the prior").

    Args:
        model: a VAE-family model with `encode`, `decode` and `latent_shape` (a latent map is
            traversed element by element, in its flattened order).
        image: array `(*image_shape)` in the model's image range.
        kl_per_latent: array `(d,)`, `d = prod(latent_shape)`, e.g. the mean KL of each latent
            over some images.
        num_values, limit: int default 8, float default 2.5.
        max_rows: int or None. Only the `max_rows` latents of largest KL.

    Returns:
        `(images (rows * num_values, *image_shape), order (rows,))`.
    """
    kl_per_latent = np.asarray(kl_per_latent, np.float64)
    mean, _ = model.encode(np.asarray(image, np.float32)[None])
    mean = np.asarray(ops.convert_to_numpy(mean), np.float32).reshape(1, -1)
    if mean.shape[1] != len(kl_per_latent):
        raise ValueError(f"`kl_per_latent` has {len(kl_per_latent)} entries for "
                         f"{mean.shape[1]} latents.")
    order = np.argsort(-kl_per_latent, kind="stable")[:max_rows]
    values = np.linspace(-float(limit), float(limit), int(num_values), dtype=np.float32)
    z = np.repeat(mean, len(order) * len(values), axis=0)
    for row, latent in enumerate(order):
        z[row * len(values):(row + 1) * len(values), latent] = values
    z = z.reshape((len(z),) + tuple(model.latent_shape))
    return ops.convert_to_numpy(model.decode(z)), order


def mean_kl_per_latent(model, images):
    """`KL(q(z_j|x) || N(0, 1))` of each latent, averaged over `images` -> `(d,)` NumPy."""
    mean, log_var = model.encode(np.asarray(images, np.float32))
    mean = np.asarray(ops.convert_to_numpy(mean), np.float64).reshape(len(images), -1)
    log_var = np.asarray(ops.convert_to_numpy(log_var), np.float64).reshape(len(images), -1)
    return (0.5 * (np.exp(log_var) + mean ** 2 - 1.0 - log_var)).mean(axis=0)


class LatentTraversal(keras.callbacks.Callback):
    """Writes a latent traversal grid (`latent_traversal_grid`) every `every` epochs.

    Rows are the latents ordered by their mean KL over `images` (largest first), columns the
    traversed values; the traversed image is `images[0]`.

    Args:
        path: str, output PNG; `{epoch}` in it is formatted with the 1-based epoch number.
        images: array `(M, *image_shape)` in the model's image range (M >= 1; up to 256 used for
            the KL order).
        num_values: int, default 8. limit: float, default 2.5.
        every: int, default 1.
        max_rows: int or None, default 16. The latents of largest KL shown.
    """

    def __init__(self, path, images, num_values=8, limit=2.5, every=1, max_rows=16):
        super().__init__()
        images = np.asarray(images)[:256]
        if len(images) < 1 or int(every) < 1 or int(num_values) < 2:
            raise ValueError("`images` must hold >= 1 image, `every` >= 1, `num_values` >= 2.")
        self.path, self.images, self.every = path, images, int(every)
        self.num_values, self.limit = int(num_values), float(limit)
        self.max_rows = max_rows

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        kl = mean_kl_per_latent(self.model, self.images)
        grid, _ = latent_traversal_grid(self.model, self.images[0], kl, self.num_values,
                                        self.limit, self.max_rows)
        low, high = getattr(self.model, "image_range", (0.0, 1.0))
        save_image_grid(_to_unit_range(grid, (low, high)), self.path.format(epoch=epoch + 1),
                        columns=self.num_values)
