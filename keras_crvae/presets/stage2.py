"""Alias of `keras_crvae.presets.super_resolution`, this module's name before the redesign of issue 27
(`stage2`, the super-resolution GAN, read too much like `two_stage`, the Two-Stage VAE).

`keras_crvae.presets.stage2` *is* that module (one module object under both names), so old imports,
attributes and patches keep working. New code imports `keras_crvae.presets.super_resolution`.
"""

import sys

from keras_crvae.presets import super_resolution

sys.modules[__name__] = super_resolution
