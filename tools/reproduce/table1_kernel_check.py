"""Do the fast kernels train a Table 1 row like Keras' own layers? From the row's committed light
state, `steps` training steps of batch 128 (bfloat16, the preset's optimizer, fresh Adam moments)
with Keras' layers and with the fast kernels (tools/benchmarks/kernels.py), on the same dynamically
binarized MNIST batches and the same noise; prints the mean training ELBO of steps 21-`steps`.

    python tools/reproduce/table1_kernel_check.py [PRESET=mnist_vae] [STEPS=60]

Measured 2026-12-05 (Intel Xeon, AMX-BF16; mnist_vae at epoch 11, 60 steps): Keras' layers
-109.912, fast kernels -109.917 nats (docs/reproduction.md); an earlier run of the same check gave
-109.900 and -109.917 (oneDNN's thread scheduling moves the last digits).
"""

import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools" / "benchmarks"))


def main(preset="mnist_vae", steps=60):
    import keras

    import kernels  # tools/benchmarks/kernels.py
    import keras_crvae
    from keras_crvae.jobs import longrun

    steps = int(steps)
    if steps < 21:
        raise SystemExit("STEPS must be at least 21 (the mean is over steps 21 on).")
    light_state = ROOT / "reproductions" / "table1" / preset / "resume_weights.npz"
    if not light_state.exists():
        raise SystemExit(f"No light state at {light_state}.")
    grey = np.load(ROOT.parent / "shared" / "data" / "mnist.npz")["x_train"][:128 * steps]
    grey = grey.astype("float32") / 255.0
    images = (np.random.default_rng(0).random(grey.shape) < grey).astype("float32")[..., None]
    for spec in ("reference", "fast"):
        with kernels.kernels_context(spec):
            model = keras_crvae.from_preset(preset, seed=0, precision="bfloat16")
            longrun.load_weights_npz(model, light_state)
            elbos = []
            for step in range(steps):
                keras.utils.set_random_seed(step)
                batch = images[128 * step:128 * (step + 1)]
                elbos.append(model.train_on_batch(batch, return_dict=True)["elbo"])
        print(f"{preset}, {spec} kernels: mean training ELBO of steps 21-{steps}: "
              f"{np.mean(elbos[20:]):.3f}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
