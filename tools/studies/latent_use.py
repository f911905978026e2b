"""How much a face checkpoint's decoder uses its latent, from posteriors and from the prior (issue 26:
why the crVAE-GAN draws one face; docs/faces.md, "The KL pilot").

    python tools/studies/latent_use.py --run=runs/face_fix2/crvae_nearest_avg \
        --output=/tmp/latent_use.json

On the first `--num_faces` held-out faces (8500 on), with the networks in inference mode and the
BatchNorm statistics as trained (as every score in docs/faces.md), the latent's last axis cut into
`--blocks` equal blocks (the presets' KL blocks: 8 for both face presets):

    posterior_std           mean over faces and latent elements of exp(log_var / 2)
    posterior_mean_spread   mean over latent elements of the standard deviation, across faces, of
                            the posterior mean (the prior's draws have 1)
    posterior_mean_pca      the largest variances of the posterior means along their principal
                            directions (across faces; the prior's variance is 1 along every
                            direction): a code spread along a few directions far wider than the
                            prior's is one the prior's draws do not reach
    image_spread            per-pixel standard deviation across images, averaged over pixels and
                            channels (images in [-1, 1]), of: the held-out faces, their
                            reconstructions (decoded posterior means) and as many prior samples
    reconstruction_mse      of the decoded posterior means (what the scores report), and of
                            decoded posterior samples (mean + std * noise, what training decodes)
    block_effect            for each block b, the RMS pixel change of a decoded image when block b
                            alone is redrawn from the prior: in the faces' posterior means
                            ("posterior") and in prior samples ("prior")

A decoder that draws one face for every prior latent has a small prior `image_spread` and small
prior `block_effect`s; comparing them with the posterior ones says whether the decoder ignores
the latent everywhere or only where the prior puts it. Prints a table; writes JSON.
"""

import json
import pathlib
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "reproduce"))

FLAGS = flags.FLAGS

HELD_OUT_START = 8500


def image_spread(images):
    """Per-pixel standard deviation across `images` `(N, H, W, C)`, averaged over pixels."""
    return float(np.mean(np.std(images, axis=0)))


def redraw_block(latents, block, blocks, rng):
    """`latents` `(N, ..., D)` with the `block`-th of `blocks` slices of the last axis redrawn
    from N(0, I)."""
    size = latents.shape[-1] // blocks
    redrawn = latents.copy()
    redrawn[..., block * size:(block + 1) * size] = rng.standard_normal(
        redrawn[..., block * size:(block + 1) * size].shape)
    return redrawn


def principal_variances(latents, count=5):
    """The `count` largest variances of `latents` `(N, ...)` (flattened per row) along their
    principal directions (eigenvalues of the sample covariance, largest first)."""
    flat = latents.reshape(len(latents), -1).astype("float64")
    centred = flat - flat.mean(axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    return [float(value) for value in (singular[:count] ** 2 / max(len(flat) - 1, 1))]


def root_mean_square_change(first, second):
    return float(np.sqrt(np.mean((first - second) ** 2)))


def main(argv):
    del argv
    import ship_face_model

    run, weights = ship_face_model.checkpoint_paths(FLAGS.run, FLAGS.weights)
    if not 1 <= FLAGS.num_faces <= 1000:
        raise app.UsageError(f"--num_faces={FLAGS.num_faces}: expected 1..1000 (the held-out "
                             "faces).")
    from keras_crvae.jobs import scored_gan

    model, info = ship_face_model.run_model(run)
    model.load_weights(str(weights))
    if model.latent_shape[-1] % FLAGS.blocks:
        raise app.UsageError(f"--blocks={FLAGS.blocks}: does not divide the latent's "
                             f"{model.latent_shape[-1]} channels.")
    faces = np.load(FLAGS.faces)["x"][HELD_OUT_START:HELD_OUT_START + FLAGS.num_faces]
    faces = np.asarray(scored_gan.as_signed_images(faces), "float32")

    def decode(latents):  # the model's own inference-mode decode (EncoderDecoderAPI)
        return ship_face_model.in_batches(model.decode, latents)

    means, log_vars = ship_face_model.encode_faces(model, faces)
    rng = np.random.default_rng(0)
    prior = rng.standard_normal(means.shape).astype("float32")
    reconstructions, samples = decode(means), decode(prior)
    posterior_draws = means + np.exp(0.5 * log_vars) * rng.standard_normal(means.shape).astype(
        "float32")
    sample_reconstructions = decode(posterior_draws)
    effects = []
    for block in range(FLAGS.blocks):
        effects.append({
            "block": block,
            "posterior": root_mean_square_change(
                reconstructions, decode(redraw_block(means, block, FLAGS.blocks, rng))),
            "prior": root_mean_square_change(
                samples, decode(redraw_block(prior, block, FLAGS.blocks, rng)))})
    result = {
        "run": str(run), "weights": str(weights), "preset": info["preset"],
        "held_out": f"{HELD_OUT_START}:{HELD_OUT_START + FLAGS.num_faces}",
        "latent_shape": list(model.latent_shape), "blocks": FLAGS.blocks,
        "posterior_std": float(np.mean(np.exp(0.5 * log_vars))),
        "posterior_mean_spread": float(np.mean(np.std(means, axis=0))),
        "posterior_mean_pca": principal_variances(means),
        "image_spread": {"faces": image_spread(faces),
                         "reconstructions": image_spread(reconstructions),
                         "prior_samples": image_spread(samples)},
        "reconstruction_mse": float(np.mean((reconstructions - faces) ** 2)),
        "reconstruction_mse_posterior_samples": float(np.mean((sample_reconstructions - faces) ** 2)),
        "block_effect": effects,
    }
    print(f"{info['preset']} ({weights}), {FLAGS.num_faces} held-out faces, latent "
          f"{tuple(model.latent_shape)}")
    print(f"posterior std (mean) {result['posterior_std']:.3f}; spread of posterior means "
          f"{result['posterior_mean_spread']:.3f}; reconstruction MSE "
          f"{result['reconstruction_mse']:.4f} (decoding posterior samples: "
          f"{result['reconstruction_mse_posterior_samples']:.4f})")
    print("largest variances of the posterior means along their principal directions (prior: 1): "
          + ", ".join(f"{value:.2f}" for value in result["posterior_mean_pca"]))
    print("image spread: faces {faces:.3f}, reconstructions {reconstructions:.3f}, prior samples "
          "{prior_samples:.3f}".format(**result["image_spread"]))
    print("block  redrawn in posterior means  redrawn in prior samples (RMS pixel change)")
    for effect in effects:
        print(f"{effect['block']:5d}  {effect['posterior']:26.4f}  {effect['prior']:24.4f}")
    if FLAGS.output:
        pathlib.Path(FLAGS.output).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    # Flags defined here, not on import: the tests import this module beside other tools.
    import ship_face_model

    ship_face_model.define_checkpoint_flags()
    flags.DEFINE_integer("num_faces", 200, "Held-out faces (and prior samples) to measure on.")
    flags.DEFINE_integer("blocks", 8, "Blocks of the latent's last axis.")
    app.run(main)
