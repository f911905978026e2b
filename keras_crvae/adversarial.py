"""Alias of `keras_crvae.losses.adversarial`, this module's path before the redesign of issue 27
(the adversarial objectives joined the other loss terms in the `losses` package).

`keras_crvae.adversarial` *is* that module (one module object under both names), so old imports,
attributes and patches keep working. New code imports `keras_crvae.losses.adversarial`.
"""

import sys

from keras_crvae.losses import adversarial

sys.modules[__name__] = adversarial
