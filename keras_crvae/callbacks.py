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
