"""The Two-Stage VAE ablation (Dai & Wipf 2019, section 4 and Table 1's argument) on MNIST: fixed-gamma
VAE, learned-gamma VAE (stage 1 alone) and the two-stage sampler, with FIDs and diagnostics.

Train the two models with the project's job (same networks, epochs and optimiser; only the decoder
variance differs), then score them:

    for loss in learned_gamma fixed_gamma; do
      crvae train --preset=mnist_two_stage --data=../shared/data/mnist.npz:x_train \\
          --eval_data=../shared/data/mnist.npz:x_test --epochs=8 --stage2_epochs=30 \\
          --learning_rate=1e-3 --set stage2_learning_rate=1e-3 --set decoder_loss=$loss \\
          --precision=bfloat16 --num_fid_samples=10000 --output_dir=runs/two_stage_$loss
    done
    python tools/studies/two_stage_ablation.py --learned_dir=runs/two_stage_learned_gamma \\
        --fixed_dir=runs/two_stage_fixed_gamma --features=mnist,inception \\
        --output=docs/two_stage_ablation.json --figure_dir=docs/images/two_stage_ablation

Samplers: `fixed_gamma` (stage-1 prior samples of the fixed-gamma model), `learned_gamma` (stage-1
prior samples of the learned-gamma model), `two_stage` (the learned-gamma model's stage 2 then stage 1:
the paper's sampler), and `fixed_gamma_two_stage` (stage 2 on the fixed-gamma model, for reference).
Each draws `--num_samples` images (seeded); FIDs are against the first `--num_samples` MNIST test
digits with the packaged MNIST-classifier features (`evaluation.mnist_fid`) and/or the standard
Inception network (`evaluation.FIDInceptionV3`, weights from `tools/assets/convert_fid_inception.py`; in
`--inception_precision`). Diagnostics per model on the test digits: final gamma, active latent
dimensions (mean encoder variance < 0.5), the encoder-variance histogram (Figure 10), and the
singular values of stage-1 `z ~ q(z|x)` and stage-2 `u ~ q(u|z)` against an i.i.d. Gaussian matrix
(Figure 1, right). Samples are cached (uint8) in `--samples_npz`, and `--output` is rewritten after
every FID, so an interrupted run keeps what it computed and a rerun skips it.
"""

import json
import os
import pathlib
import platform
import time

import numpy as np
from absl import app, flags

ROOT = pathlib.Path(__file__).resolve().parents[2]
FLAGS = flags.FLAGS
flags.DEFINE_string("learned_dir", None, "Run folder (model.keras) of the learned-gamma model.",
                    required=True)
flags.DEFINE_string("fixed_dir", None, "Run folder (model.keras) of the fixed-gamma model.",
                    required=True)
flags.DEFINE_string("data", str(ROOT.parent / "shared" / "data" / "mnist.npz"), "mnist.npz path.")
flags.DEFINE_integer("num_samples", 10000, "Samples per sampler and test digits for the FIDs.")
flags.DEFINE_list("features", ["mnist", "inception"], "FID features: mnist and/or inception.")
flags.DEFINE_enum("inception_precision", "bfloat16", ["float32", "bfloat16"],
                  "Precision of the Inception network (features and statistics stay float32/64).")
flags.DEFINE_string("inception_weights", None, "FIDInceptionV3 weights (default: its standard path).")
flags.DEFINE_list("inception_samplers", ["two_stage", "learned_gamma", "fixed_gamma"],
                  "Samplers scored with the Inception features (each costs 10,000 forward passes "
                  "at 299x299 on the CPU); the MNIST features score all of them.")
flags.DEFINE_string("samples_npz", None, "Sample cache (default: LEARNED_DIR/ablation_samples.npz).")
flags.DEFINE_string("output", "two_stage_ablation.json", "JSON results (rewritten as they come).")
flags.DEFINE_string("figure_dir", None, "Where the figures go (none without it).")
flags.DEFINE_integer("seed", 0, "Sampling seed.")

SAMPLERS = {  # name -> (which model, stage sampled)
    "fixed_gamma": ("fixed", 1),
    "learned_gamma": ("learned", 1),
    "two_stage": ("learned", 2),
    "fixed_gamma_two_stage": ("fixed", 2),
}


def _fingerprint(run_dir):
    info = os.stat(os.path.join(run_dir, "model.keras"))
    return f"{info.st_size}:{int(info.st_mtime)}"


def _load(path):
    from keras_crvae import training

    return training.load_model(os.path.join(path, "model.keras"))


def _samples(models, cache):
    """name -> uint8 `(N, 28, 28, 1)`, from the cache when it holds all of them at this size."""
    from keras_crvae.evaluation import two_stage_diagnostics as diagnostics
    from keras_crvae.io import atomic_path

    if os.path.exists(cache):
        stored = np.load(cache)
        if set(SAMPLERS) <= set(stored.files) and all(
                len(stored[name]) == FLAGS.num_samples for name in SAMPLERS):
            print(f"samples from {cache}")
            return {name: stored[name] for name in SAMPLERS}
    samples = {}
    for name, (which, stage) in SAMPLERS.items():
        start = time.time()
        samples[name] = diagnostics.to_uint8(diagnostics.sample_images(
            models[which], FLAGS.num_samples, stage, seed=FLAGS.seed))
        print(f"{name}: {FLAGS.num_samples} samples in {time.time() - start:.1f} s", flush=True)
    with atomic_path(cache) as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **samples)
    return samples


def _diagnostics(model, test_images):
    import keras

    from keras_crvae.evaluation import two_stage_diagnostics as diagnostics

    variances = diagnostics.encoder_variances(model.stage1, test_images)
    active = diagnostics.active_dimensions(variances)
    spectra = diagnostics.latent_spectra(model, test_images, seed=FLAGS.seed)
    gamma = lambda vae: float(np.exp(np.asarray(keras.ops.convert_to_numpy(vae.log_gamma), np.float64)))
    return {
        "decoder_loss": model.stage1.decoder_loss,
        "gamma_x": gamma(model.stage1),
        "gamma_z": gamma(model.stage2),
        "active_dimensions": active["active_dimensions"],
        "num_dimensions": active["num_dimensions"],
        "mean_variance_sorted": sorted(active["mean_variance"]),
        "variance_histogram": diagnostics.variance_histogram(variances),
        "spectrum_distance_to_gaussian": {
            name: diagnostics.spectrum_distance(spectra[name], spectra["gaussian"])
            for name in ("stage1", "stage2")},
        "spectra": {name: [float(v) for v in values] for name, values in spectra.items()},
    }, variances


def _figures(results, variances, samples):
    from keras_crvae.evaluation import two_stage_diagnostics as diagnostics
    from keras_crvae.io import save_image_grid

    os.makedirs(FLAGS.figure_dir, exist_ok=True)
    for name, values in samples.items():
        save_image_grid(values[:64].astype("float32") / 255.0,
                        os.path.join(FLAGS.figure_dir, f"samples_{name}.png"))
    if not diagnostics.matplotlib_available():
        print("matplotlib is not installed: no plots")
        return
    plt = diagnostics._pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for axis, which in zip(axes, ("fixed", "learned")):
        axis.hist(variances[which].ravel(), bins=24, range=(0.0, 1.2))
        info = results["models"][which]
        axis.set_title(f"{info['decoder_loss']}: gamma {info['gamma_x']:.3f}, "
                       f"{info['active_dimensions']}/{info['num_dimensions']} active", fontsize=9)
        axis.set_xlabel("encoder variance lambda_j(x)")
    axes[0].set_ylabel("count (test digits x dimensions)")
    diagnostics.save_figure(plt, figure, os.path.join(FLAGS.figure_dir, "encoder_variances.png"))
    figure, axis = plt.subplots(figsize=(5.5, 3.6))
    spectra = {"fixed gamma: z": results["models"]["fixed"]["spectra"]["stage1"],
               "learned gamma: z": results["models"]["learned"]["spectra"]["stage1"],
               "learned gamma, stage 2: u": results["models"]["learned"]["spectra"]["stage2"],
               "i.i.d. Gaussian": results["models"]["learned"]["spectra"]["gaussian"]}
    for label, values in spectra.items():
        axis.plot(np.arange(1, len(values) + 1), values, label=label)
    axis.set_xlabel("singular value index")
    axis.set_ylabel("singular value")
    axis.legend(fontsize=8)
    diagnostics.save_figure(plt, figure, os.path.join(FLAGS.figure_dir, "spectra.png"))


def main(argv):
    del argv
    import keras

    from keras_crvae import evaluation
    from keras_crvae.evaluation import mnist_features
    from keras_crvae.io import write_json

    unknown = set(FLAGS.features) - {"mnist", "inception"}
    if unknown:
        raise app.UsageError(f"--features={','.join(FLAGS.features)}: expected mnist and/or "
                             "inception")
    # The models' files identify the run: FIDs and samples of other model files are recomputed.
    fingerprint = {which: _fingerprint(path) for which, path in (("learned", FLAGS.learned_dir),
                                                                   ("fixed", FLAGS.fixed_dir))}
    fingerprint.update(num_samples=FLAGS.num_samples, seed=FLAGS.seed)
    results = {}
    if os.path.exists(FLAGS.output):
        with open(FLAGS.output) as handle:
            results = json.load(handle)
    cache = FLAGS.samples_npz or os.path.join(FLAGS.learned_dir, "ablation_samples.npz")
    if results.get("fingerprint") != fingerprint:
        results = {"fingerprint": fingerprint}
        for stale in (cache, cache.replace(".npz", "_reference_mnist.npz"),
                      cache.replace(".npz", "_reference_inception.npz")):
            if os.path.exists(stale):
                os.remove(stale)
    results.update({"num_samples": FLAGS.num_samples, "seed": FLAGS.seed,
                    "machine": f"{os.cpu_count()}-core {platform.machine()} CPU",
                    "backend": keras.backend.backend()})
    models = {"learned": _load(FLAGS.learned_dir), "fixed": _load(FLAGS.fixed_dir)}
    for which, path in (("learned", FLAGS.learned_dir), ("fixed", FLAGS.fixed_dir)):
        with open(os.path.join(path, "run.json")) as handle:
            results.setdefault("runs", {})[which] = json.load(handle)
    data = np.load(FLAGS.data)
    test_uint8 = data["x_test"][:FLAGS.num_samples, ..., None]
    test_images = test_uint8.astype("float32") / 255.0
    variances = {}
    results["models"] = {}
    for which, model in models.items():
        results["models"][which], variances[which] = _diagnostics(model, test_images)
        info = results["models"][which]
        print(f"{which}: gamma_x {info['gamma_x']:.4f}, active {info['active_dimensions']}/"
              f"{info['num_dimensions']}, spectrum distance stage1 "
              f"{info['spectrum_distance_to_gaussian']['stage1']:.3f} stage2 "
              f"{info['spectrum_distance_to_gaussian']['stage2']:.3f}", flush=True)
    samples = _samples(models, cache)
    if FLAGS.figure_dir:
        _figures(results, variances, samples)
    write_json(results, FLAGS.output)
    fids = results.setdefault("fid", {})
    for features in FLAGS.features:
        table = fids.setdefault(features, {})
        if features == "mnist":
            extractor = mnist_features.mnist_feature_extractor()
            as_input = lambda values: values.astype("float32") / 255.0
            label = "MNIST-classifier penultimate features (128-d)"
        else:
            extractor = evaluation.FIDInceptionV3(weights=FLAGS.inception_weights or "default",
                                                  input_range=(0, 255),
                                                  precision=FLAGS.inception_precision)
            as_input = lambda values: values
            label = f"Inception pool3 (2048-d), {FLAGS.inception_precision}"
        table["features"] = label
        wanted = SAMPLERS if features == "mnist" else FLAGS.inception_samplers
        pending = [name for name in wanted if name not in table]
        if not pending:
            continue
        start = time.time()
        # The test digits' statistics are kept beside the samples: a rerun skips their 10,000 passes.
        reference_cache = cache.replace(".npz", f"_reference_{features}.npz")
        if os.path.exists(reference_cache):
            stored = np.load(reference_cache)
            reference = (stored["mean"], stored["cov"])
        else:
            reference = evaluation.feature_statistics(as_input(test_uint8), extractor, 100)
            np.savez(reference_cache, mean=reference[0], cov=reference[1])
        for name in pending:
            mean, cov = evaluation.feature_statistics(as_input(samples[name]), extractor, 100)
            table[name] = float(evaluation.frechet_distance(mean, cov, *reference))
            table["seconds"] = round(time.time() - start, 1)
            print(f"FID {features:9s} {name:22s} {table[name]:8.2f} ({time.time() - start:.0f} s, "
                  f"load {os.getloadavg()[0]:.1f})", flush=True)
            write_json(results, FLAGS.output)
    print("| sampler | " + " | ".join(f"FID ({f})" for f in FLAGS.features) + " |")
    for name in SAMPLERS:
        print(f"| {name} | " + " | ".join(
            f"{fids[f][name]:.2f}" if name in fids[f] else "-" for f in FLAGS.features) + " |")


if __name__ == "__main__":
    app.run(main)
