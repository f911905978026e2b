"""MNIST input pipelines: numpy arrays, TFDS, and the embedded default subset.

Training follows the crVAE reference (`main_mnist.lua`, `train_test/train_test_*_mnist.lua` of
WendyShang/crVAE): grey-level images in [0, 1] are **dynamically binarized**, every pixel redrawn as
`Bernoulli(intensity)` each time an image is seen (`binarize(data) = (data - rand) >= 0`), and the last
partial batch of an epoch is dropped. Evaluation uses a **static** binarization (a fixed draw, e.g. the
Larochelle binarized-MNIST split), so NLL values are comparable across models.

Two interchangeable training pipelines:
- `binarized_dataset` builds a `tf.data.Dataset` (shuffle, per-epoch binarization in a parallel
  `map`, batch, prefetch); it needs TensorFlow but works with any Keras backend that fit() accepts it on.
- `BinarizedSequence` is a `keras.utils.PyDataset` in plain numpy, for machines without TensorFlow
  (the JAX-only GPU image).
"""

import hashlib
import os
import pathlib

import keras
import numpy as np

EMBEDDED_PATH = pathlib.Path(__file__).parent / "resources" / "mnist_subset.npz"
MNIST_SHAPE = (28, 28, 1)


def to_unit_images(images, name="images"):
    """Converts grey-level images to float32 `(N, 28, 28, 1)` in [0, 1].

    Accepts integer grey levels in 0..255 (uint8 or any integer dtype; integers in {0, 1} are binary
    images, kept as they are), booleans, or floats already in [0, 1], with or without the channel
    axis. Every entry point of the library (training pipelines, `evaluate`, the CLI) applies this
    one shape rule.

    Args:
        images: array `(N, 28, 28)` or `(N, 28, 28, 1)`.
        name: str, the argument name used in error messages.
    """
    images = np.asarray(images)
    dtype = images.dtype  # named in errors as the caller passed it, before any conversion
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[1:] != MNIST_SHAPE:
        raise ValueError(
            f"`{name}` must have shape (N, 28, 28) or (N, 28, 28, 1); got {np.shape(images)}."
        )
    if images.shape[0] == 0:
        raise ValueError(f"`{name}` is empty: got 0 images.")
    if dtype == np.bool_:
        return images.astype("float32")
    if np.issubdtype(dtype, np.integer):
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise ValueError(f"`{name}` of dtype {dtype} must hold grey levels 0..255; got values "
                             f"in [{low}, {high}].")
        # Integers in {0, 1} are already binary (binarized MNIST); otherwise grey levels 0..255.
        return images.astype("float32") / (1.0 if high <= 1 else 255.0)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"`{name}` must hold numbers (uint8 0..255 or float in [0, 1]); got dtype "
                         f"{dtype}.")
    images = images.astype("float32")
    low, high = float(images.min()), float(images.max())
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 1.0:
        raise ValueError(
            f"`{name}` of dtype {dtype} must lie in [0, 1] (or be uint8 in 0..255); "
            f"got values in [{low}, {high}]."
        )
    return images


def static_binarize(images, seed=0):
    """One fixed Bernoulli draw per pixel: `(rand < images)` as float32, reproducible by `seed`."""
    images = to_unit_images(images)
    rng = np.random.default_rng(seed)
    return (rng.random(images.shape, dtype=np.float32) < images).astype("float32")


def binarization_sources(binary_images, grey_images, chunk=500, return_log_likelihood=False,
                         cache_dir=None):
    """For each statically binarized image, the grey-level image it was most likely drawn from.

    A binarization `b` of a grey image `g` has likelihood `prod_i g_i**b_i (1 - g_i)**(1 - b_i)`; the
    source is the grey image of highest likelihood (intensities clipped to [1e-3, 1 - 1e-3], so one
    pixel that disagrees with a 0 or 255 grey level costs ~7 nats instead of ruling the image out).
    Larochelle's binarized-MNIST train and validation splits are binarizations of MNIST *training*
    images (`shared/data/README.md`): a model trained on all 60,000 grey training images has seen the
    sources of the validation images, and `reproduction.load_data` drops them to keep the validation
    split held out.

    Args:
        binary_images: `(M, 28, 28[, 1])` images with values in {0, 1}.
        grey_images: `(N, 28, 28[, 1])` grey levels (uint8, or floats in [0, 1]).
        chunk: binary images scored per matrix product (memory `chunk * N` floats).
        return_log_likelihood: bool, default False. Also return each match's log-likelihood (nats):
            far higher for a real source than for the best match of an unrelated image
            (`tests/test_data.py` checks a median above -100 nats against below).
        cache_dir: str or None. Where to keep the result, keyed by a SHA-1 of both arrays: the
            10,000 x 60,000 match costs ~470 GFLOP (5-10 s on one core) and every Table 1 and IWAE
            session and tool test repeats it on the same arrays. None: no cache.

    Returns:
        int64 array `(M,)` of indices into `grey_images`; with `return_log_likelihood`, also the
        float32 array `(M,)` of their log-likelihoods.
    """
    binary = to_unit_images(binary_images, "binary_images").reshape(len(binary_images), -1)
    grey = to_unit_images(grey_images, "grey_images").reshape(len(grey_images), -1)
    if not np.all((binary == 0) | (binary == 1)):
        raise ValueError("`binary_images` must hold only 0 and 1.")
    cache_path = None
    if cache_dir is not None:
        digest = hashlib.sha1(f"v1 {binary.shape} {grey.shape}".encode())
        digest.update(np.ascontiguousarray(binary, dtype="float32").tobytes())
        digest.update(np.ascontiguousarray(grey, dtype="float32").tobytes())
        cache_path = os.path.join(os.path.expanduser(cache_dir),
                                  f"binarization_sources_{digest.hexdigest()}.npz")
        if os.path.exists(cache_path):
            with np.load(cache_path) as cached:
                sources, log_likelihoods = cached["sources"], cached["log_likelihoods"]
            return (sources, log_likelihoods) if return_log_likelihood else sources
    grey = np.clip(grey, 1e-3, 1.0 - 1e-3)
    # log p(b | g) = b . (log g - log(1 - g)) + sum log(1 - g): one matrix product per chunk.
    pixel_log_odds = (np.log(grey) - np.log1p(-grey)).T.astype("float32")
    all_off_log_prob = np.log1p(-grey).sum(axis=1).astype("float32")
    sources, log_likelihoods = [], []
    for start in range(0, len(binary), int(chunk)):
        scores = binary[start:start + int(chunk)] @ pixel_log_odds + all_off_log_prob
        sources.append(np.argmax(scores, axis=1))
        log_likelihoods.append(scores[np.arange(len(scores)), sources[-1]])
    sources = np.concatenate(sources).astype("int64") if sources else np.zeros((0,), "int64")
    log_likelihoods = (np.concatenate(log_likelihoods).astype("float32") if log_likelihoods
                       else np.zeros((0,), "float32"))
    if cache_path is not None:
        os.makedirs(os.path.dirname(cache_path), exist_ok=True)
        partial = f"{cache_path}.{os.getpid()}.partial.npz"
        np.savez(partial, sources=sources, log_likelihoods=log_likelihoods)
        os.replace(partial, cache_path)  # atomic: concurrent processes never read half a file
    return (sources, log_likelihoods) if return_log_likelihood else sources


def load_embedded_mnist():
    """The MNIST subset shipped with the package (see `resources/README.md` for provenance).

    Returns:
        dict with `x_train` `(10000, 28, 28, 1)` and `x_test` `(1000, 28, 28, 1)` float32 in [0, 1],
        and the labels `y_train`, `y_test`.
    """
    with np.load(EMBEDDED_PATH) as archive:
        return {
            "x_train": to_unit_images(archive["x_train"]),
            "y_train": archive["y_train"],
            "x_test": to_unit_images(archive["x_test"]),
            "y_test": archive["y_test"],
        }


def load_npz_images(path, key=None):
    """Loads images from an `.npz` file (`path` or `path:key`) as float32 `(N, 28, 28, 1)` in [0, 1].

    With no key, `x_train` is used if present, else the archive's only array. Objects are never
    unpickled (`keras_crvae.io.read_npz_array`).
    """
    from keras_crvae.io import read_npz_array, split_npz_spec

    if key is None:
        path, key = split_npz_spec(path)
    array, key = read_npz_array(path, key, preferred_keys=("x_train",))
    return to_unit_images(array, name=f"{os.fspath(path)}:{key}")


def load_images(spec):
    """Resolves a data spec of the CLI: "embedded", "embedded:test", "PATH.npz" or "PATH.npz:KEY"."""
    if spec in ("embedded", "embedded:train"):
        return load_embedded_mnist()["x_train"]
    if spec == "embedded:test":
        return load_embedded_mnist()["x_test"]
    return load_npz_images(spec)


def binarized_dataset(images, batch_size=128, shuffle=True, binarize="dynamic", seed=None,
                      drop_remainder=True):
    """A `tf.data.Dataset` of binarized image batches `(batch_size, 28, 28, 1)` float32.

    Args:
        images: array `(N, 28, 28[, 1])`, uint8 or float in [0, 1].
        batch_size: int, default 128 (the reference's `-batchSize`).
        shuffle: bool, default True. Reshuffled every epoch.
        binarize: str, default "dynamic". "dynamic" (fresh Bernoulli draw every epoch), "static"
            (one draw with `seed`) or "none" (grey levels as they are).
        seed: int or None. Shuffle and binarization seed.
        drop_remainder: bool, default True (the reference drops the last partial batch).
    """
    import tensorflow as tf

    images = to_unit_images(images)
    _check_batch_size(batch_size, len(images), drop_remainder)
    if binarize == "static":
        images = static_binarize(images, seed=0 if seed is None else seed)
    elif binarize not in ("dynamic", "none"):
        raise ValueError(f"`binarize` must be 'dynamic', 'static' or 'none', got {binarize!r}.")
    dataset = tf.data.Dataset.from_tensor_slices(images)
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    if binarize == "dynamic":
        dataset = _map_dynamic_binarization(dataset, seed)
    return dataset.prefetch(tf.data.AUTOTUNE)


def _map_dynamic_binarization(dataset, seed):
    """Maps `Bernoulli(intensity)` draws over batches with a `tf.random.Generator`.

    A stateful generator created once keeps advancing across epochs. Plain `tf.random.uniform` would
    not: once a global seed is set (`keras.utils.set_random_seed`), tf.data rebuilds the op with the
    same seed every epoch and "dynamic" binarization would repeat one draw forever.
    """
    import tensorflow as tf

    generator = (tf.random.Generator.from_seed(seed) if seed is not None
                 else tf.random.Generator.from_non_deterministic_state())

    def draw(batch):
        return tf.cast(generator.uniform(tf.shape(batch)) < batch, tf.float32)

    # Seeded runs map sequentially so the draws are reproducible.
    return dataset.map(draw, num_parallel_calls=None if seed is not None else tf.data.AUTOTUNE)


def _check_batch_size(batch_size, num_images, drop_remainder):
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    if drop_remainder and num_images < batch_size:
        raise ValueError(
            f"Only {num_images} images for `batch_size`={batch_size} with drop_remainder: "
            "no batch would be produced. Lower the batch size."
        )


class BinarizedSequence(keras.utils.PyDataset):
    """A numpy `keras.utils.PyDataset` of dynamically binarized MNIST batches (no TensorFlow needed).

    Each epoch reshuffles and redraws every pixel as `Bernoulli(intensity)`; the last partial batch is
    dropped as in the reference. Batches are `(batch_size, 28, 28, 1)` float32.

    Args:
        images: array `(N, 28, 28[, 1])`, uint8 or float in [0, 1].
        batch_size: int, default 128.
        shuffle: bool, default True.
        seed: int or None.
    """

    def __init__(self, images, batch_size=128, shuffle=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.images = to_unit_images(images)
        _check_batch_size(batch_size, len(self.images), True)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.rng = np.random.default_rng(seed)
        self.order = np.arange(len(self.images))
        self.on_epoch_end()

    def __len__(self):
        return len(self.images) // self.batch_size

    def __getitem__(self, index):
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        batch = self.images[rows]
        return (self.rng.random(batch.shape, dtype=np.float32) < batch).astype("float32")

    def on_epoch_end(self):
        if self.shuffle:
            self.rng.shuffle(self.order)


def training_data(images, batch_size=128, seed=None):
    """Dynamically binarized, reshuffled training batches `(batch_size, 28, 28, 1)` float32, in the
    form the current Keras backend trains from fastest.

    TensorFlow backend: `binarized_dataset` (`tf.data`, which `tf.distribute` needs). Any other
    backend (JAX, with or without TensorFlow installed): `BinarizedSequence` (NumPy, drawn in the
    training loop's thread). On JAX, Keras pulls every `tf.data` batch through an eager TensorFlow
    iterator and a NumPy copy; for the batch-20 MLPs of the IWAE table that made an epoch 1.2-1.4x slower
    (`python tools/benchmarks/benchmark_backends.py --backends=jax --pipelines=tf.data,numpy`,
    docs/performance.md). Both draw every pixel afresh each epoch as `Bernoulli(intensity)` and drop
    the last partial batch; their random streams differ.

    Args:
        images: array `(N, 28, 28[, 1])`, uint8 or float in [0, 1].
        batch_size: int, default 128.
        seed: int or None. Shuffle and binarization seed.
    """
    if keras.backend.backend() == "tensorflow":
        return binarized_dataset(images, batch_size=batch_size, seed=seed)
    return BinarizedSequence(images, batch_size=batch_size, seed=seed)


def tfds_mnist(name="mnist", split="train", data_dir=None, batch_size=128, binarize="dynamic",
               shuffle=True, seed=None):
    """MNIST from TensorFlow Datasets (`mnist` or `binarized_mnist`), already prepared in `data_dir`.

    Nothing is downloaded: if the dataset is not prepared, a `FileNotFoundError` says how to prepare
    it. `binarized_mnist` is already binary, so `binarize` is ignored for it.

    Returns:
        `tf.data.Dataset` of float32 batches `(batch_size, 28, 28, 1)`.
    """
    import tensorflow as tf
    import tensorflow_datasets as tfds

    if name not in ("mnist", "binarized_mnist"):
        raise ValueError(f"`name` must be 'mnist' or 'binarized_mnist', got {name!r}.")
    try:
        dataset = tfds.load(name, split=split, data_dir=data_dir, download=False,
                            shuffle_files=shuffle)
    except (AssertionError, FileNotFoundError, OSError) as error:  # TFDS asserts on missing data
        raise FileNotFoundError(
            f"TFDS dataset {name!r} is not prepared under data_dir={data_dir!r}. Prepare it once with "
            f"`tfds build {name} --data_dir=...` on a machine with network access. ({error})"
        ) from error
    dataset = dataset.map(lambda example: tf.cast(example["image"], tf.float32)
                          / (1.0 if name == "binarized_mnist" else 255.0))
    if shuffle:
        dataset = dataset.shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    if binarize == "dynamic" and name == "mnist":
        dataset = _map_dynamic_binarization(dataset, seed)
    elif binarize not in ("dynamic", "none"):
        raise ValueError(f"`binarize` must be 'dynamic' or 'none' for TFDS, got {binarize!r}.")
    return dataset.prefetch(tf.data.AUTOTUNE)
