"""Training callbacks: NaN guard, per-epoch sample grids."""

import math

import keras
from keras import ops

from keras_crvae.io import save_image_grid


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
                "check that the images lie in [0, 1], or resume from the last checkpoint."
            )


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
