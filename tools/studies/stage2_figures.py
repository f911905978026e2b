"""Figures and numbers of a trained Stage2 model on held-out faces (docs/stage2.md).

    python tools/studies/stage2_figures.py --model=runs/stage2_faces/model.keras \
        [--data=../shared/data/celeba64_subset.npz] [--heldout=2250:2500] \
        [--output=docs/stage2.json] [--figures=docs/images] [--name=stage2_faces_32to64] \
        [--fid --num_samples=1000]

Writes:
- `{name}_samples.png`: 32 prior samples, Stage1's decode at the generator's input size (shown
  enlarged by pixel repetition) above Stage2's output, in row pairs of 8;
- `{name}_before_after.png`: 8 held-out faces; columns: the real face, Stage1's reconstruction at the
  generator's input size (enlarged by pixel repetition), that input enlarged bilinearly and
  bicubically, Stage2's output;
- JSON (`measure`): on all held-out faces (images in [-1, 1]), the MSE to the real face of Stage2's
  output (`reconstruct`) and of the bilinear and bicubic enlargements of the same generator input;
  also all three for the real faces themselves down-sampled to the input size (`super_resolve`),
  a task the generator was not trained for (it sees Stage1 decodes). With `--fid`, FIDs against
  the held-out faces (standard Inception features, docs/fid.md) of Stage2's output and of the
  bicubic enlargement, for the reconstructions and for `--num_samples` prior samples, and of the
  held-out faces down-sampled and enlarged bicubically (what the enlargement alone costs a real
  face). MSE rewards the blur of a smooth enlargement (the mean of the plausible sharp faces is
  blurry); FID asks whether the outputs look like real faces: the two together say whether
  Stage2 adds detail and whether that detail is right.
"""

import json
import os

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("model", None, "A trained Stage2 .keras model.")
    flags.DEFINE_string("data", "../shared/data/celeba64_subset.npz", "Faces npz (key 'x', uint8).")
    flags.DEFINE_string("heldout", "2250:2500", "Held-out faces, START:STOP.")
    flags.DEFINE_string("output", "docs/stage2.json", "JSON path.")
    flags.DEFINE_string("figures", "docs/images", "Folder of the figures.")
    flags.DEFINE_string("name", "stage2_faces_32to64", "Figure file name prefix.")
    flags.DEFINE_integer("seed", 0, "Seed of the prior samples.")
    flags.DEFINE_boolean("fid", False, "Also the FIDs (module docstring; needs the FID Inception "
                         "weights, `crvae fid-weights`).")
    flags.DEFINE_integer("num_samples", 1000, "--fid: prior samples.")
    flags.DEFINE_enum("fid_precision", "bfloat16", ["float32", "bfloat16"], "Inception precision.")


def _numpy(x):
    from keras import ops

    return np.asarray(ops.convert_to_numpy(x), dtype=np.float32)


def enlarge(images, size, interpolation):
    """`images` `(N, h, w, C)` in [-1, 1] resized to `size` x `size` by `interpolation`
    ("bilinear", "bicubic"; "nearest" repeats pixels), clipped to [-1, 1]."""
    from keras import ops

    if interpolation == "nearest":
        factor = size // images.shape[1]
        return np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)
    return np.clip(_numpy(ops.image.resize(images, (size, size), interpolation=interpolation)),
                   -1.0, 1.0)


def generator_inputs(model, faces, batch_size=50):
    """Stage1's reconstructions of `faces` (posterior means decoded) at the generator's input
    size: what Stage2 was trained on."""
    from keras import ops

    def one(batch):
        mean, _ = model.encode(batch)
        decoded = model.stage1.decoder(mean, training=False)
        return _numpy(model.resize_to_generator(ops.cast(decoded, "float32")))

    return np.concatenate([one(faces[i:i + batch_size]) for i in range(0, len(faces), batch_size)])


def generate(model, inputs, batch_size=50):
    """Stage2's generator on `inputs` at its input size, in batches."""
    return np.concatenate([_numpy(model.generator(inputs[i:i + batch_size], training=False))
                           for i in range(0, len(inputs), batch_size)])


def prior_inputs(model, count, seed):
    """Stage1's decodes of `count` prior latents (NumPy seed `seed`) at the generator's input
    size."""
    from keras import ops

    z = np.random.default_rng(seed).normal(size=(count,) + tuple(model.latent_shape))
    decoded = [_numpy(model.resize_to_generator(ops.cast(model.stage1.decoder(
        z[i:i + 50].astype(np.float32), training=False), "float32"))) for i in range(0, count, 50)]
    return np.concatenate(decoded)


def measure(model, faces, extractor=None, num_samples=1000, seed=0, batch_size=50):
    """The numbers of the module docstring for `model` on `faces` `(N, S, S, 3)` in [-1, 1].

    Returns:
        dict: `stage1_decode` and `real_downsampled`, each with the per-face MSE (mean and
        standard error) of `stage2`, `bilinear` and `bicubic` and Stage2's win rate over bicubic;
        with `extractor` (a feature network for images in [-1, 1]) also `fid`.
    """
    size = model.output_size
    inputs = generator_inputs(model, faces, batch_size)
    outputs = generate(model, inputs, batch_size)
    real_low = _numpy(model.resize_to_generator(model.downsample_to_stage1(faces)))
    real_outputs = generate(model, real_low, batch_size)

    def mse(images):
        return ((images - faces) ** 2).reshape(len(faces), -1).mean(1)

    def stats(values):
        return {"mean": float(values.mean()),
                "standard_error": float(values.std(ddof=1) / np.sqrt(len(values)))}

    def compare(stage2, low):
        errors = {"stage2": mse(stage2), "bilinear": mse(enlarge(low, size, "bilinear")),
                  "bicubic": mse(enlarge(low, size, "bicubic"))}
        return {**{f"{key}_mse": stats(value) for key, value in errors.items()},
                "stage2_wins_vs_bicubic": float(np.mean(errors["stage2"] < errors["bicubic"]))}

    result = {"num_faces": int(len(faces)), "input_size": int(model.input_size),
              "output_size": int(size), "stage1_decode": compare(outputs, inputs),
              "real_downsampled": compare(real_outputs, real_low)}
    if extractor is not None:
        from keras_crvae import evaluation

        reference = evaluation.feature_statistics(faces, extractor, batch_size)

        def fid(images):
            return float(evaluation.frechet_distance(
                *evaluation.feature_statistics(images, extractor, batch_size), *reference))

        prior = prior_inputs(model, num_samples, seed)
        result["fid"] = {
            "reconstructions_stage2": fid(outputs),
            "reconstructions_bicubic": fid(enlarge(inputs, size, "bicubic")),
            "samples_stage2": fid(generate(model, prior, batch_size)),
            "samples_bicubic": fid(enlarge(prior, size, "bicubic")),
            "real_downsampled_bicubic": fid(enlarge(real_low, size, "bicubic")),
            "num_samples": int(num_samples), "num_faces": int(len(faces))}
    return result


def save_figures(model, faces, figures, name, seed):
    """`{name}_before_after.png` and `{name}_samples.png` (module docstring) in `figures`."""
    from keras_crvae.io import save_image_grid

    size, shown = model.output_size, faces[:8]
    inputs = generator_inputs(model, shown)
    columns = np.stack([shown, enlarge(inputs, size, "nearest"), enlarge(inputs, size, "bilinear"),
                        enlarge(inputs, size, "bicubic"), generate(model, inputs)], axis=1)
    os.makedirs(figures, exist_ok=True)
    save_image_grid(columns.reshape((-1, size, size, 3)) * 0.5 + 0.5,
                    os.path.join(figures, f"{name}_before_after.png"), columns=5, scale=1)
    decoded = prior_inputs(model, 32, seed)
    pairs = np.stack([enlarge(decoded, size, "nearest").reshape(4, 8, size, size, 3),
                      generate(model, decoded).reshape(4, 8, size, size, 3)], axis=1)
    save_image_grid(pairs.reshape((-1, size, size, 3)) * 0.5 + 0.5,
                    os.path.join(figures, f"{name}_samples.png"), columns=8, scale=1)


def main(_):
    import keras

    import keras_crvae  # noqa: F401 - registers the classes
    from keras_crvae import evaluation
    from keras_crvae.io import write_json

    model = keras.saving.load_model(FLAGS.model, compile=False)
    start, stop = (int(v) for v in FLAGS.heldout.split(":"))
    faces = np.load(FLAGS.data)["x"][start:stop].astype(np.float32) / 127.5 - 1.0
    extractor = (evaluation.FIDInceptionV3(input_range=(-1, 1), precision=FLAGS.fid_precision)
                 if FLAGS.fid else None)
    result = {"model": FLAGS.model, "data": FLAGS.data, "heldout": FLAGS.heldout,
              **measure(model, faces, extractor, FLAGS.num_samples, FLAGS.seed)}
    write_json(result, FLAGS.output)
    print(json.dumps(result, indent=2))
    save_figures(model, faces, FLAGS.figures, FLAGS.name, FLAGS.seed)


if __name__ == "__main__":
    define_flags()
    flags.mark_flag_as_required("model")
    app.run(main)
