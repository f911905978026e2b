"""Alias of `keras_crvae.models.super_resolution`, this module's name before the redesign of issue 27
(`stage2`, the super-resolution GAN, read too much like `two_stage`, the Two-Stage VAE).

`keras_crvae.models.stage2` *is* that module (one module object under both names), so old imports,
attributes and patches keep working. New code imports `keras_crvae.models.super_resolution`.
"""

import sys

from keras_crvae.models import super_resolution

sys.modules[__name__] = super_resolution
