"""The preset type of the exact-likelihood families (flows, PixelCNN), trained by the `likelihood`
job (`keras_crvae.jobs.likelihood`).

A `LikelihoodPreset` is a `Preset` whose `model` table holds `data_kind` ("binary" or "grey256",
see the job) and that may carry the paper's number in the paper's own units (`paper_result`), which
the job copies into metrics.json beside the measured one. No Keras import (the CLI reads presets
before TensorFlow loads).
"""

import dataclasses

from keras_crvae.presets.core import Preset

DATA_KINDS = ("binary", "grey256")


@dataclasses.dataclass(frozen=True)
class LikelihoodPreset(Preset):
    """A `Preset` of an exact-likelihood model.

    Attributes (beyond `Preset`'s):
        paper_result: dict or None, the paper's number for this configuration, e.g.
            `{"metric": "log_likelihood_unit_scale", "value": 1980.50, "unit": "nats",
            "source": "Dinh et al. 2014, Table 2"}`; `metric` names a key of the job's metrics
            that measures the same quantity, so the two can be read side by side.
    """

    paper_result: dict = None

    def __post_init__(self):
        kind = self.model.get("data_kind")
        if kind not in DATA_KINDS:
            raise ValueError(f"Preset {self.name!r}: model['data_kind'] must be one of "
                             f"{DATA_KINDS}, got {kind!r}.")
