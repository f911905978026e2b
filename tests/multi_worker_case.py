"""One worker of the two-worker `MultiWorkerMirroredStrategy` test (run by tests/test_distribution.py).

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:P0", "127.0.0.1:P1"]},
                "task": {"type": "worker", "index": I}}' python tests/multi_worker_case.py OUT.npz

Trains a tiny `VAE` (Dense encoder/decoder on 28x28 images, `GaussianSampler` noise) and a tiny
`VAEGAN` (1x1 convolutions around 16x pooling/upsampling, drawn posterior/prior noise) for three
steps of global batch 8, and writes every weight of both models (after training) to OUT.npz with
the metrics in OUT.json. Each worker seeds its random generators with its own index: identical
final weights on the two workers then show that the strategy broadcast the chief's initial values
and all-reduced every gradient.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from keras_crvae import distribute  # noqa: E402

STRATEGY = distribute.make_strategy("multi_worker")  # before any other TF op

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_crvae import models  # noqa: E402
from keras_crvae.optimizers import MultiplierAdam, ThresholdedAdam  # noqa: E402

GLOBAL_BATCH = 8
STEPS = 3


def tiny_vae():
    images = keras.Input((28, 28, 1))
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(images))
    encoder = keras.Model(images, [keras.layers.Dense(4)(hidden), keras.layers.Dense(4)(hidden)])
    z = keras.Input((4,))
    decoder = keras.Model(z, keras.layers.Reshape((28, 28, 1))(keras.layers.Dense(784)(z)))
    model = models.VAE(encoder, decoder, kl_weight=1.0, seed=1)
    model.compile(optimizer=MultiplierAdam(1e-2), jit_compile=False)
    return model


def tiny_vaegan():
    images = keras.Input((64, 64, 3))
    pooled = keras.layers.AveragePooling2D(16)(images)
    encoder = keras.Model(images, [keras.layers.Conv2D(2, 1)(pooled), keras.layers.Conv2D(2, 1)(pooled)])
    z = keras.Input((4, 4, 2))
    decoded = keras.layers.UpSampling2D(16)(keras.layers.Conv2D(3, 1, activation="tanh")(z))
    decoder = keras.Model(z, decoded)
    discriminator = keras.Sequential([keras.Input((64, 64, 3)), keras.layers.AveragePooling2D(16),
                                      keras.layers.Flatten(), keras.layers.Dense(1)])
    model = models.VAEGAN(encoder, decoder, discriminator, seed=2)
    model.compile(MultiplierAdam(1e-2), ThresholdedAdam(1e-2), jit_compile=False)
    return model


def main(output_path):
    worker_index = STRATEGY.cluster_resolver.task_id
    keras.utils.set_random_seed(100 + worker_index)
    rng = np.random.default_rng(0)  # the same data on both workers; fit shards it
    data = {
        "vae": (rng.random((GLOBAL_BATCH * STEPS, 28, 28, 1)) < 0.3).astype("float32"),
        "vaegan": rng.uniform(-1, 1, (GLOBAL_BATCH * STEPS, 64, 64, 3)).astype("float32"),
    }
    weights, metrics = {}, {"worker": worker_index,
                            "replicas": STRATEGY.num_replicas_in_sync}
    for name, build in (("vae", tiny_vae), ("vaegan", tiny_vaegan)):
        with STRATEGY.scope():
            model = build()
        initial = model.get_weights()
        history = model.fit(tf.data.Dataset.from_tensor_slices(data[name]).batch(GLOBAL_BATCH),
                            epochs=1, verbose=0, shuffle=False)
        metrics[name] = {key: float(values[-1]) for key, values in history.history.items()}
        metrics[name]["weight_change"] = max(float(np.max(np.abs(a - b))) for a, b in
                                             zip(model.get_weights(), initial))
        for index, value in enumerate(model.get_weights()):
            weights[f"{name}_{index}"] = value
    np.savez(output_path, **weights)
    with open(output_path[:-4] + ".json", "w") as handle:
        json.dump(metrics, handle)


if __name__ == "__main__":
    main(sys.argv[1])
