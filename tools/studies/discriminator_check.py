"""Can a face preset's discriminator tell real faces from a face model's samples? Fresh
discriminators of the preset, in variants, trained alone (the generator frozen) for a few steps.

    python tools/studies/discriminator_check.py \
        --run=reproductions/faces/sum_minibatch/celeba_vae_gan --steps=100 \
        --variants=preset:,sum_minibatch:minibatch_average=false,sum_no_sn:minibatch_average=false+spectral_norm=false,no_minibatch:minibatch_kernels=0 \
        --output=docs/discriminator_check.json

The fakes are the run's model (its light state `resume_weights.npz`, `run.json`'s settings):
half prior samples, half reconstructions of training faces, as in the VAE-GAN's discriminator
batch. Each variant is today's preset discriminator with the run's settings and the variant's
overrides (`KEY=VALUE` joined by `+`), trained with Adam (`--learning_rate`, the CelebA
discriminator's 1e-3) on batches of 16 real and 16 fake faces from the first 512 training faces
and 512 fakes, with dropout on. Every `--eval_every` steps (and at step 0) it scores 64 held-out
faces (8500..8563 of celeba64_train.npz) against 64 other fakes, in inference mode and in mixed
batches of 16 + 16: the **AUC** (probability that a real face gets the higher logit; 0.5 is
chance) and the mean logits. Prints a table; writes JSON.

Why (docs/faces.md, "The discriminator that could not discriminate"): in the face runs the
discriminator's accuracy stayed at 0.50 for thousands of steps.
"""

import json
import os
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reproduce"))
import face_run  # noqa: E402  (tools/reproduce scripts: the faces file, the run's settings)
import ship_face_model  # noqa: E402

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("run", "reproductions/faces/sum_minibatch/celeba_vae_gan",
                        "A face run folder with run.json and a light state (the fakes' model).")
    flags.DEFINE_list("variants", ["preset:", "sum_minibatch:minibatch_average=false",
                                   "no_minibatch:minibatch_kernels=0"],
                      "NAME:OVERRIDES, overrides KEY=VALUE joined by '+'.")
    flags.DEFINE_integer("steps", 100, "Discriminator steps per variant.")
    flags.DEFINE_integer("eval_every", 50, "Steps between held-out scores.")
    flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate.")
    flags.DEFINE_string("faces", str(face_run.FACES), "Faces npz (key x).")
    flags.DEFINE_integer("seed", 0, "Seed of the fakes, the batches and the initialisations.")
    flags.DEFINE_string("output", "", "JSON path ('' for none).")


def parse_variants(texts):
    """`["name:k=v+k2=v2", ...]` -> `[(name, {k: typed v}), ...]` (`presets.parse_overrides`).
    Raises `ValueError` for a variant without a name."""
    from keras_crvae.presets import parse_overrides

    variants = []
    for text in texts:
        name, _, overrides = text.partition(":")
        if not name:
            raise ValueError(f"{text!r}: expected NAME:KEY=VALUE+KEY=VALUE (or NAME:)")
        variants.append((name, parse_overrides([o for o in overrides.split("+") if o])))
    return variants


def auc(real, fake):
    """P(a real logit > a fake logit), ties counting half: 0.5 is chance, 1 perfect."""
    real, fake = np.asarray(real)[:, None], np.asarray(fake)[None, :]
    return float(np.mean(real > fake) + 0.5 * np.mean(real == fake))


def logits_of(discriminator, images, training):
    outputs = discriminator(images, training=training)
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


def held_out_scores(discriminator, real, fake, batch=16):
    """AUC and mean logits over mixed inference batches of `batch` real + `batch` fake images."""
    import keras

    real_logits, fake_logits = [], []
    for first in range(0, len(real), batch):
        logits = keras.ops.convert_to_numpy(logits_of(discriminator, np.concatenate(
            [real[first:first + batch], fake[first:first + batch]]), False)).ravel()
        real_logits.append(logits[:batch])
        fake_logits.append(logits[batch:])
    real_logits, fake_logits = np.concatenate(real_logits), np.concatenate(fake_logits)
    return {"auc": auc(real_logits, fake_logits), "real_logit": float(real_logits.mean()),
            "fake_logit": float(fake_logits.mean())}


def train_variant(discriminator, data, steps, eval_every, learning_rate, seed):
    """Trains `discriminator` alone on `data` (dict of real/fake train/held-out images); returns
    the held-out scores at step 0 and every `eval_every` steps."""
    import tensorflow as tf
    import keras

    optimizer = keras.optimizers.Adam(learning_rate)
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.ones(16), np.zeros(16)]).astype("float32")[:, None]
    curve = []
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            curve.append({"step": step, **held_out_scores(discriminator, data["real_test"],
                                                          data["fake_test"])})
        if step == steps:
            break
        images = np.concatenate([data["real_train"][rng.integers(0, len(data["real_train"]), 16)],
                                 data["fake_train"][rng.integers(0, len(data["fake_train"]), 16)]])
        with tf.GradientTape() as tape:
            logits = tf.cast(logits_of(discriminator, images, True), tf.float32)
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels, logits))
        variables = discriminator.trainable_variables
        optimizer.apply(tape.gradient(loss, variables), variables)
    return curve


def main(_):
    import pathlib

    import keras
    import keras_crvae
    from keras_crvae.jobs.runs import SETTINGS_ADDED_LATER
    from ship_pretrained import preset_overrides

    import reproduction

    try:
        variants = parse_variants(FLAGS.variants)
    except ValueError as error:
        raise app.UsageError(f"--variants: {error}")
    run = pathlib.Path(FLAGS.run)
    info = json.loads((run / "run.json").read_text())
    overrides = preset_overrides(ship_face_model.run_config(info))
    overrides.pop("precision", None)  # float32 here
    model = ship_face_model.build_model({"preset": info["preset"]}, overrides, FLAGS.seed)
    reproduction.load_weights_npz(model, run / "resume_weights.npz")
    # The variants start from today's preset (with the run's width and batch): settings the
    # preset gained after the run are not the run's overrides here.
    for key in SETTINGS_ADDED_LATER:
        overrides.pop(key, None)
    faces = np.load(FLAGS.faces)["x"]
    signed = lambda x: x.astype("float32") / 127.5 - 1.0  # noqa: E731
    real_train, real_test = signed(faces[:512]), signed(faces[8500:8564])

    def fakes(count, seed, reals):
        samples = keras.ops.convert_to_numpy(model.sample(count // 2, seed=seed))
        return np.concatenate([samples, keras.ops.convert_to_numpy(model.reconstruct(
            reals[:count // 2]))])

    data = {"real_train": real_train, "real_test": real_test,
            "fake_train": fakes(512, FLAGS.seed + 1, real_train),
            "fake_test": fakes(64, FLAGS.seed + 2, real_test)}
    results = {"run": FLAGS.run, "preset": info["preset"], "overrides": overrides,
               "steps": FLAGS.steps, "learning_rate": FLAGS.learning_rate, "seed": FLAGS.seed,
               "variants": {}}
    for name, extra in variants:
        keras.utils.set_random_seed(FLAGS.seed)
        fresh = keras_crvae.from_preset(info["preset"], compile=False, seed=FLAGS.seed,
                                        **{**overrides, **extra})
        started = time.time()
        curve = train_variant(fresh.discriminator, data, FLAGS.steps, FLAGS.eval_every,
                              FLAGS.learning_rate, FLAGS.seed)
        results["variants"][name] = {"overrides": extra, "curve": curve,
                                     "seconds": round(time.time() - started, 1)}
        print(f"{name:16s} " + "  ".join(f"step {c['step']}: AUC {c['auc']:.3f} (logits real "
                                         f"{c['real_logit']:+.2f}, fake {c['fake_logit']:+.2f})"
                                         for c in curve), flush=True)
    if FLAGS.output:
        from keras_crvae.io import write_json

        write_json(results, FLAGS.output)


if __name__ == "__main__":
    define_flags()
    app.run(main)
