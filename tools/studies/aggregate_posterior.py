"""Does a face checkpoint's decoder draw varied faces where its encoder puts faces? Sample FIDs of
decodes from the prior and from three stand-ins for the aggregate posterior (issue 26: why the
crVAE-GAN draws one face; docs/faces.md, "Where the encoder puts faces").

    python tools/studies/aggregate_posterior.py --run=reproductions/faces/celeba_crvae_gan \
        --output=/tmp/aggregate_posterior.json

The aggregate posterior q(z) = mean over faces of q(z | x) is what the decoder is trained to decode
(reconstructions); the prior N(0, I) is what `sample` draws. When the two differ, prior samples land
where the decoder has seen few codes; the Two-Stage VAE (Dai & Wipf 2019, section 4) answers with a
second VAE that learns q(z). This tool measures how much of the sample FID that mismatch costs, by
decoding `--num_samples` latents of each kind:

    prior                 z ~ N(0, I), what the scores' sample FID decodes
    gaussian              z ~ N(m, C): m and C the mean and covariance of q(z) (the covariance of
                          the posterior means plus the mean posterior variance on the diagonal),
                          fitted on `--fit_faces` training faces (`keras_crvae.layers.
                          LatentGaussian`); the best a Gaussian second stage can do
    shuffled              posterior samples of training faces with every latent element permuted
                          across faces: q's marginals without its correlations
    posterior             posterior samples of training faces: q(z) itself (these decode to
                          reconstructions of training faces, the bound for any latent prior)

Training faces are drawn from the first 8,500 (never the held-out ones); every FID is against the
1,000 held-out faces (8500 on) with the runs' Inception features, so the "prior" FID repeats the
run's own sample FID up to the draw. `--statistics=moving` decodes in inference mode with the
BatchNorm statistics as trained (as every score); `batch` normalises each batch of
`--batch_size` latents by its own statistics, as training does (docs/faces.md, "BatchNorm
statistics at scoring time"). Prints a table; writes JSON and, with `--grids`, one PNG grid of the
first 64 decodes per kind.
"""

import json
import pathlib
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "reproduce"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from latent_use import image_spread  # noqa: E402  (the pixel spread, one definition)

FLAGS = flags.FLAGS

HELD_OUT_START = 8500
KINDS = ("prior", "gaussian", "shuffled", "posterior")


def shuffle_elements(latents, rng):
    """`latents` `(N, ...)` with every element independently permuted across the N rows: the same
    marginal distribution per element, the correlations between elements broken."""
    flat = latents.reshape(len(latents), -1)
    shuffled = np.empty_like(flat)
    for element in range(flat.shape[1]):
        shuffled[:, element] = flat[rng.permutation(len(flat)), element]
    return shuffled.reshape(latents.shape)


def main(argv):
    del argv
    import ship_face_model

    run, weights = ship_face_model.checkpoint_paths(FLAGS.run, FLAGS.weights)
    for name, low, high in (("num_samples", 2, 8500), ("fit_faces", 2, 8500),
                            ("batch_size", 2, 1000)):
        if not low <= getattr(FLAGS, name) <= high:
            raise app.UsageError(f"--{name}={getattr(FLAGS, name)}: expected {low}..{high}.")
    if FLAGS.grids:
        grids = pathlib.Path(FLAGS.grids)
        if grids.exists() and not grids.is_dir():
            raise app.UsageError(f"--grids={grids}: exists and is not a folder.")
    import keras

    from keras_crvae import evaluation
    from keras_crvae.layers import LatentGaussian
    from keras_crvae.io import save_image_grid
    from keras_crvae.jobs import scored_gan

    started = time.time()
    model, info = ship_face_model.run_model(run)
    model.load_weights(str(weights))
    all_faces = np.load(FLAGS.faces)["x"]
    held_out = np.asarray(scored_gan.as_signed_images(
        all_faces[HELD_OUT_START:HELD_OUT_START + 1000]), "float32")
    rng = np.random.default_rng(FLAGS.seed)
    chosen = rng.choice(HELD_OUT_START, max(FLAGS.fit_faces, FLAGS.num_samples), replace=False)
    training = np.asarray(scored_gan.as_signed_images(all_faces[np.sort(chosen)]), "float32")
    batch = FLAGS.batch_size

    means, log_vars = ship_face_model.encode_faces(model, training, batch)
    gaussian = LatentGaussian(model.latent_shape).fit(means[:FLAGS.fit_faces],
                                                       log_vars[:FLAGS.fit_faces])
    count, shape = FLAGS.num_samples, tuple(model.latent_shape)
    posterior = (means[:count] + np.exp(0.5 * log_vars[:count])
                 * rng.standard_normal(means[:count].shape)).astype("float32")
    latents = {
        "prior": rng.standard_normal((count,) + shape).astype("float32"),
        "gaussian": np.asarray(keras.ops.convert_to_numpy(gaussian(rng.standard_normal(
            (count,) + shape).astype("float32"))), "float32"),
        "shuffled": shuffle_elements(posterior, rng),
        "posterior": posterior,
    }

    def decode(z):
        if FLAGS.statistics == "moving":  # the model's own inference-mode decode
            return model.decode(z)
        # Batch statistics, as in training; the moving statistics this call updates are never read.
        return model.decoder(z, training=True)

    extractor = evaluation.FIDInceptionV3(weights=FLAGS.fid_weights, input_range=(-1, 1),
                                          precision=FLAGS.fid_precision)
    reference = scored_gan.held_out_statistics(str(run), held_out, extractor)
    fit_mean = np.asarray(keras.ops.convert_to_numpy(gaussian.mean), "float64")
    root = np.asarray(keras.ops.convert_to_numpy(gaussian.scale), "float64")
    eigenvalues = np.linalg.eigvalsh(root @ root.T)[::-1]
    rows = {}
    for kind in KINDS:
        images = ship_face_model.in_batches(decode, latents[kind], batch)
        fid = float(evaluation.frechet_distance(
            *evaluation.feature_statistics(images, extractor, 50), *reference))
        rows[kind] = {"sample_fid": fid, "image_spread": image_spread(images),
                      "latent_norm": float(np.mean(np.linalg.norm(
                          latents[kind].reshape(count, -1), axis=1)))}
        print(f"{kind:10s} FID {fid:7.1f}  image spread {rows[kind]['image_spread']:.3f}  "
              f"mean |z| {rows[kind]['latent_norm']:.1f}", flush=True)
        if FLAGS.grids:
            grids.mkdir(parents=True, exist_ok=True)
            save_image_grid((images[:64] + 1.0) / 2.0, str(grids / f"{kind}.png"))
    result = {
        "run": str(run), "weights": str(weights), "preset": info["preset"],
        "statistics": FLAGS.statistics, "num_samples": count, "fit_faces": FLAGS.fit_faces,
        "batch_size": batch, "seed": FLAGS.seed, "held_out": f"{HELD_OUT_START}:"
        f"{HELD_OUT_START + 1000}", "features": f"FIDInceptionV3 ({FLAGS.fid_precision})",
        "aggregate_mean_norm": float(np.linalg.norm(fit_mean)),
        "aggregate_top_variances": [float(value) for value in eigenvalues[:5]],
        "aggregate_total_variance": float(np.sum(eigenvalues)),
        "prior_total_variance": float(len(fit_mean)),
        "held_out_image_spread": image_spread(held_out),
        "kinds": rows, "seconds": round(time.time() - started, 1),
    }
    print(f"{info['preset']} ({weights}), statistics {FLAGS.statistics}: aggregate posterior |m| "
          f"{result['aggregate_mean_norm']:.2f}, total variance "
          f"{result['aggregate_total_variance']:.0f} (prior {len(fit_mean)}), top variances "
          + ", ".join(f"{value:.1f}" for value in result["aggregate_top_variances"]))
    if FLAGS.output:
        pathlib.Path(FLAGS.output).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    # Flags defined here, not on import: the tests import this module beside other tools.
    import ship_face_model

    ship_face_model.define_checkpoint_flags()
    flags.DEFINE_integer("num_samples", 1000, "Decodes per kind (each FID's sample size).")
    flags.DEFINE_integer("fit_faces", 2000, "Training faces the Gaussian is fitted on.")
    flags.DEFINE_integer("batch_size", 32, "Latents per decode batch (the runs' batch).")
    flags.DEFINE_enum("statistics", "moving", ["moving", "batch"], "BatchNorm statistics.")
    flags.DEFINE_integer("seed", 0, "Training faces chosen and every draw.")
    flags.DEFINE_string("fid_weights", "default", "Inception weights (the runs').")
    flags.DEFINE_enum("fid_precision", "bfloat16", ["float32", "bfloat16"], "Inception precision.")
    flags.DEFINE_string("grids", None, "Folder for one PNG grid of 64 decodes per kind.")
    app.run(main)
