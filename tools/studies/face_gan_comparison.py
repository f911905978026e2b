"""crVAE-GAN vs VAE-GAN on the 2,500 faces of `shared/data/celeba64_subset.npz` (crVAE paper, section 4:
crVAE-GAN samples are better): FIDs with the standard Inception network and sample grids side by side.

Train both with the project's job on faces 0..2249 (faces 2250..2499 are held out), same width,
epochs, precision and seed, then score them:

    python -c "import numpy as np; x = np.load('../shared/data/celeba64_subset.npz')['x']; \\
               np.savez('runs/faces_train.npz', x=x[:2250])"
    for model in vae_gan crvae_gan; do
      crvae train --preset=celeba_$model --npz=runs/faces_train.npz --output_dir=runs/celeba_$model \\
          --epochs=25 --precision=bfloat16 --set base_channels=16 --set discriminator_channels=32
    done
    python tools/studies/face_gan_comparison.py --models=vae_gan=runs/celeba_vae_gan,crvae_gan=runs/celeba_crvae_gan \\
        --output=docs/face_gans.json --figure_dir=docs/images/face_gans

For each model: FID of `--num_samples` prior samples against all 2,500 faces, and FID of the
reconstructions of the 250 held-out faces against those faces (how much of each face the model keeps).
As a floor for sets of this size: the FID of the 250 held-out faces against the 2,250 training faces
(both real). Features: `evaluation.FIDInceptionV3` (weights from `tools/assets/convert_fid_inception.py`) in
`--precision`. Grids: 64 samples of each model (same seed),
and held-out faces above their reconstructions. `--output` is rewritten after every FID.
"""

import json
import os
import platform
import time

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("models", None, "NAME=RUN_DIR pairs (RUN_DIR holds model.keras).", required=True)
flags.DEFINE_string("faces", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                          "celeba64_subset.npz"), "The faces (key x, uint8).")
flags.DEFINE_integer("num_train", 2250, "Faces 0..N-1 trained on; the rest are held out.")
flags.DEFINE_integer("num_samples", 2500, "Prior samples per model for the sample FID.")
flags.DEFINE_enum("precision", "bfloat16", ["float32", "bfloat16"], "Inception precision.")
flags.DEFINE_string("weights", None, "FIDInceptionV3 weights (default: its standard path).")
flags.DEFINE_string("output", "face_gans.json", "JSON results (rewritten as they come).")
flags.DEFINE_string("figure_dir", None, "Where the grids go (none without it).")
flags.DEFINE_integer("seed", 0, "Sampling seed.")


def _batched(function, inputs, batch_size=250):
    import keras

    return np.concatenate([keras.ops.convert_to_numpy(function(inputs[i:i + batch_size]))
                           for i in range(0, len(inputs), batch_size)]).astype("float32")


def _samples(model, count, seed):
    import keras

    chunks, rng_seed = [], seed
    for start in range(0, count, 250):
        chunks.append(keras.ops.convert_to_numpy(model.sample(min(250, count - start),
                                                              seed=rng_seed)))
        rng_seed += 1
    return np.concatenate(chunks).astype("float32")


def main(argv):
    del argv
    import keras

    from keras_crvae import evaluation, training
    from keras_crvae.io import save_image_grid, write_json

    runs = {}
    for item in FLAGS.models:
        name, _, path = item.partition("=")
        if not name or not path:
            raise app.UsageError(f"--models={item}: expected NAME=RUN_DIR")
        runs[name] = path
    faces = np.load(FLAGS.faces)["x"]
    as_unit = lambda uint8: uint8.astype("float32") / 127.5 - 1.0  # the models' [-1, 1]
    train_faces, held_out = as_unit(faces[:FLAGS.num_train]), as_unit(faces[FLAGS.num_train:])
    extractor = evaluation.FIDInceptionV3(weights=FLAGS.weights or "default", input_range=(-1, 1),
                                          precision=FLAGS.precision)
    results = {"faces": len(faces), "num_train": FLAGS.num_train, "num_samples": FLAGS.num_samples,
               "features": f"Inception pool3 (2048-d), {FLAGS.precision}", "seed": FLAGS.seed,
               "machine": f"{os.cpu_count()}-core {platform.machine()} CPU",
               "backend": keras.backend.backend(), "models": {}}
    start = time.time()
    statistics = lambda images: evaluation.feature_statistics(images, extractor, 50)
    all_faces = statistics(np.concatenate([train_faces, held_out]))
    held_out_stats = statistics(held_out)
    results["floor_held_out_vs_train"] = float(evaluation.frechet_distance(
        *held_out_stats, *statistics(train_faces)))
    print(f"FID held-out faces vs training faces (real vs real): "
          f"{results['floor_held_out_vs_train']:.2f} ({time.time() - start:.0f} s)", flush=True)
    write_json(results, FLAGS.output)
    grids = {}
    for name, path in runs.items():
        model = training.load_model(os.path.join(path, "model.keras"))
        with open(os.path.join(path, "metrics.json")) as handle:
            metrics = json.load(handle)
        samples = _samples(model, FLAGS.num_samples, FLAGS.seed)
        reconstructions = _batched(model.reconstruct, held_out)
        entry = {
            "run_dir": path,
            "epochs": metrics["config"]["training"]["epochs"],
            "train_seconds_last_session": metrics.get("train_seconds"),
            "train_images_per_second": metrics.get("train_images_per_second"),
            "parameters": int(model.count_params()),
            "sample_fid": float(evaluation.frechet_distance(*statistics(samples), *all_faces)),
            "held_out_reconstruction_fid": float(evaluation.frechet_distance(
                *statistics(reconstructions), *held_out_stats)),
            "held_out_reconstruction_mse": float(np.mean((reconstructions - held_out) ** 2)),
        }
        results["models"][name] = entry
        print(f"{name}: sample FID {entry['sample_fid']:.2f}, held-out reconstruction FID "
              f"{entry['held_out_reconstruction_fid']:.2f}, MSE {entry['held_out_reconstruction_mse']:.4f} "
              f"({time.time() - start:.0f} s, load {os.getloadavg()[0]:.1f})", flush=True)
        write_json(results, FLAGS.output)
        grids[name] = (samples[:64], reconstructions[:8])
    if FLAGS.figure_dir:
        os.makedirs(FLAGS.figure_dir, exist_ok=True)
        for name, (samples, reconstructions) in grids.items():
            save_image_grid(samples, os.path.join(FLAGS.figure_dir, f"samples_{name}.png"))
            save_image_grid(np.concatenate([held_out[:8], reconstructions]),
                            os.path.join(FLAGS.figure_dir, f"reconstructions_{name}.png"))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    app.run(main)
