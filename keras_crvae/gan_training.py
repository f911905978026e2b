"""Alias module: the GAN job moved to `keras_crvae.jobs.gan` (`train_gan`, `digit_dataset`)."""

from keras_crvae.jobs.gan import GANJob, _count_batches, digit_dataset, train_gan  # noqa: F401
