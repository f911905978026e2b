"""Which BatchNorm statistics should a face checkpoint be scored with? One checkpoint of a face run
(`tools/reproduce/face_run.py`) scored three ways on the held-out faces 8500..9499:

    python tools/studies/batch_norm_check.py --run=runs/face_fix2/nearest_avg_beta0p0025 \
        --output=/tmp/batch_norm_check.json

    as_trained        inference mode, the moving statistics the run left (what every score in
                      docs/faces.md uses; with the presets' Keras momentum of 0.1 they are about
                      the last training batch's)
    recalibrated      inference mode after `VAEGAN.recalibrate_batch_norm` (the encoder's
                      statistics averaged over 50 training batches of 32, the generator's over 50
                      batches of prior samples)
    batch_statistics  training mode for the encoder and the generator (each batch normalised by
                      its own statistics, as in every training step; batches of 50)

For each: the sample FID of `--num_samples` prior samples (the same latents for every variant)
against the held-out faces' Inception statistics (the run's `held_out_statistics.npz`), and the
reconstruction MSE of the held-out faces (posterior means). Prints a table; writes JSON.
The checkpoint is `--weights` (default: the run's `scored.weights.h5`, its last scored epoch).

Why (docs/faces.md, "BatchNorm statistics at scoring time"): a face checkpoint's reconstruction
MSE was about three times larger in inference mode than with batch statistics.
"""

import json
import pathlib
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "reproduce"))

VARIANTS = ("as_trained", "recalibrated", "batch_statistics")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    bad = sorted(set(FLAGS.variants) - set(VARIANTS))
    if bad or not FLAGS.variants:
        raise app.UsageError(f"--variants={','.join(FLAGS.variants)}: unknown {bad}; expected "
                             f"any of {', '.join(VARIANTS)}.")
    import ship_face_model

    run, weights = ship_face_model.checkpoint_paths(FLAGS.run, FLAGS.weights)
    from keras_crvae import evaluation
    from keras_crvae.jobs import scored_gan

    faces = np.load(FLAGS.faces)["x"]
    held_out = scored_gan.as_signed_images(faces[8500:9500])
    training = scored_gan.as_signed_images(faces[:8500])
    extractor = evaluation.FIDInceptionV3(input_range=(-1, 1))
    reference = scored_gan.held_out_statistics(str(run), held_out, extractor)
    rows = []
    for variant in FLAGS.variants:
        started = time.time()
        model, info = ship_face_model.run_model(run)
        model.load_weights(str(weights))
        if variant == "recalibrated":
            model.recalibrate_batch_norm(training, batch_size=32, num_batches=50, seed=0)
        mode = variant == "batch_statistics"
        latents = np.random.default_rng(0).standard_normal(
            (FLAGS.num_samples,) + model.latent_shape).astype("float32")

        def generate(z):  # `decoder`: the generator's image-only view (no crVAE `u`)
            return model.decoder(z, training=mode)

        def reconstruct(images):
            mean, _ = model.encoder(images, training=mode)
            return generate(mean)

        samples = ship_face_model.in_batches(generate, latents)
        reconstructions = ship_face_model.in_batches(reconstruct, held_out)
        row = {"variant": variant,
               "sample_fid": float(evaluation.frechet_distance(
                   *evaluation.feature_statistics(samples, extractor, 50), *reference)),
               "reconstruction_mse": float(np.mean((reconstructions - held_out) ** 2)),
               "seconds": round(time.time() - started, 1)}
        rows.append(row)
        print(f"{variant:18s} sample FID {row['sample_fid']:7.2f}  reconstruction MSE "
              f"{row['reconstruction_mse']:.4f}  ({row['seconds']:.0f} s)", flush=True)
    if FLAGS.output:
        pathlib.Path(FLAGS.output).write_text(json.dumps(
            {"run": str(run), "weights": str(weights), "preset": info["preset"],
             "num_samples": FLAGS.num_samples, "held_out": "8500:9500", "rows": rows},
            indent=1) + "\n")


if __name__ == "__main__":
    # Flags defined here, not on import: the tests import the study tools together.
    import ship_face_model

    ship_face_model.define_checkpoint_flags("A face run folder (run.json, held_out_statistics.npz).")
    flags.DEFINE_list("variants", list(VARIANTS), f"Any of {', '.join(VARIANTS)}.")
    flags.DEFINE_integer("num_samples", 1000, "Prior samples per sample FID.")
    app.run(main)
