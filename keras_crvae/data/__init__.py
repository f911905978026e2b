"""Input pipelines (tf.data, TFDS, numpy) and the embedded default dataset."""

from keras_crvae.data.mnist import (
    BinarizedSequence,
    binarized_dataset,
    load_embedded_mnist,
    load_images,
    load_npz_images,
    static_binarize,
    tfds_mnist,
    to_unit_images,
    training_data,
)

__all__ = [
    "BinarizedSequence",
    "binarized_dataset",
    "load_embedded_mnist",
    "load_images",
    "load_npz_images",
    "static_binarize",
    "tfds_mnist",
    "to_unit_images",
    "training_data",
]
