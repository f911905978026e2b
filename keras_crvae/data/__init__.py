"""Input pipelines (tf.data, TFDS, numpy) and the embedded default dataset."""

from keras_crvae.data.mnist import (
    BinarizedSequence,
    binarization_sources,
    binarized_dataset,
    load_embedded_mnist,
    load_images,
    load_npz_images,
    static_binarize,
    tfds_mnist,
    to_unit_images,
    training_data,
)
from keras_crvae.data.images import (
    CELEBA_FACE_CROP,
    array_image_dataset,
    image_dataset,
    image_folder_dataset,
    load_celeba_subset,
    preprocess_image,
    scan_image_folder,
    tfds_image_dataset,
)

__all__ = [
    "BinarizedSequence",
    "binarization_sources",
    "binarized_dataset",
    "load_embedded_mnist",
    "load_images",
    "load_npz_images",
    "static_binarize",
    "tfds_mnist",
    "to_unit_images",
    "training_data",
    "CELEBA_FACE_CROP",
    "array_image_dataset",
    "image_dataset",
    "image_folder_dataset",
    "load_celeba_subset",
    "preprocess_image",
    "scan_image_folder",
    "tfds_image_dataset",
]
