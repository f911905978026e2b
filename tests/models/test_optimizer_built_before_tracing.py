"""`models.base.OptimizerBuiltBeforeTracing`: the training step is traced once, and the optimizer's
slots are the ones Keras would have made (same variables, same order: old checkpoints load)."""

import keras
import numpy as np
import pytest

from keras_crvae import layers, models, networks
from keras_crvae.models import base

pytestmark = pytest.mark.portable


def tiny_vae():
    keras.utils.set_random_seed(0)
    config = dict(base_channels=2, latent_channels=8)
    return models.VAE(networks.build_mnist_encoder("dense", **config),
                      networks.build_mnist_decoder("dense", **config), seed=1)


def tiny_flow():
    keras.utils.set_random_seed(0)
    flow = networks.build_nice_flow((4, 4, 1), coupling_layers=2, hidden_units=8,
                                    hidden_layers=1)
    return models.FlowModel(flow, layers.StandardLogistic(), image_shape=(4, 4, 1), seed=0)


CASES = {
    "vae": (tiny_vae, lambda: (np.random.default_rng(0).random((8, 28, 28, 1)) < 0.3
                               ).astype("float32")),
    "flow": (tiny_flow, lambda: np.random.default_rng(0).integers(0, 256, (8, 4, 4, 1)
                                                                  ).astype("float32")),
}


def traces_and_slots(build_model, images):
    """Fits `build_model()` one epoch of two traced steps; returns (the number of times its
    `train_step` ran in Python, i.e. was traced, and its optimizer's variables as (path, shape))."""
    keras.backend.clear_session()  # the same automatic names in both calls
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    calls = []
    train_step = model.train_step

    def counting_train_step(*args, **kwargs):
        calls.append(1)
        return train_step(*args, **kwargs)

    model.train_step = counting_train_step
    model.fit(images, batch_size=len(images) // 2, epochs=1, verbose=0, shuffle=False)
    return len(calls), [(v.path, tuple(v.shape)) for v in model.optimizer.variables]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_step_is_traced_once_with_the_slots_keras_would_make(case, monkeypatch):
    build_model, images = CASES[case]
    traces, slots = traces_and_slots(build_model, images())
    assert traces == 1
    # Keras' own behaviour, for comparison: on TensorFlow it builds the optimizer inside the
    # first trace, and tf.function traces the step again.
    monkeypatch.setattr(base.OptimizerBuiltBeforeTracing, "make_train_function",
                        lambda self, force=False: keras.Model.make_train_function(self, force))
    keras_traces, keras_slots = traces_and_slots(build_model, images())
    assert keras_traces == (2 if keras.backend.backend() == "tensorflow" else 1)
    assert slots == keras_slots and len(slots) > 2
