"""Figures and numbers of a trained Stage2 model on held-out faces (docs/stage2.md).

    python tools/studies/stage2_figures.py --model=runs/stage2_faces/model.keras \
        [--data=../shared/data/celeba64_subset.npz] [--heldout=2250:2500] \
        [--output=docs/stage2.json] [--figures=docs/images] [--name=stage2_faces_32to64]

Writes:
- `{name}_samples.png`: 32 prior samples, Stage1's decode at the generator's input size (shown
  enlarged by pixel repetition) above Stage2's output, in row pairs of 8;
- `{name}_before_after.png`: 8 held-out faces; columns: the real face, Stage1's reconstruction at the
  generator's input size (enlarged by pixel repetition), that input enlarged bilinearly, Stage2's
  output;
- JSON: on all held-out faces (images in [-1, 1]), the MSE to the real face of Stage2's output
  (`reconstruct`) and of the bilinear enlargement of the same generator input; also both for the
  real faces themselves down-sampled to the input size (`super_resolve`), a task the generator was
  not trained for (it sees Stage1 decodes).
"""

import json
import os

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "A trained Stage2 .keras model.")
flags.DEFINE_string("data", "../shared/data/celeba64_subset.npz", "Faces npz (key 'x', uint8).")
flags.DEFINE_string("heldout", "2250:2500", "Held-out faces, START:STOP.")
flags.DEFINE_string("output", "docs/stage2.json", "JSON path.")
flags.DEFINE_string("figures", "docs/images", "Folder of the figures.")
flags.DEFINE_string("name", "stage2_faces_32to64", "Figure file name prefix.")
flags.DEFINE_integer("seed", 0, "Seed of the prior samples.")


def main(_):
    import keras
    import numpy as np
    from keras import ops

    import keras_crvae  # noqa: F401 - registers the classes
    from keras_crvae.io import save_image_grid, write_json

    model = keras.saving.load_model(FLAGS.model, compile=False)
    start, stop = (int(v) for v in FLAGS.heldout.split(":"))
    faces = np.load(FLAGS.data)["x"][start:stop].astype(np.float32) / 127.5 - 1.0
    size, low = model.output_size, model.input_size
    numpy = ops.convert_to_numpy
    enlarge = lambda x: np.repeat(np.repeat(x, size // low, axis=1), size // low, axis=2)  # noqa
    bilinear = lambda x: np.clip(numpy(ops.image.resize(x, (size, size), interpolation="bilinear")),
                                 -1, 1)  # noqa: E731

    def generator_input(images):
        mean, _ = model.encode(images)
        decoded = model.stage1.decoder(mean, training=False)
        return numpy(model.resize_to_generator(ops.cast(decoded, "float32")))

    inputs, outputs = [], []
    for first in range(0, len(faces), 50):
        batch = faces[first:first + 50]
        low_input = generator_input(batch)
        inputs.append(low_input)
        outputs.append(numpy(model.generator(low_input, training=False)))
    inputs, outputs = np.concatenate(inputs), np.concatenate(outputs)
    real_low = numpy(model.resize_to_generator(model.downsample_to_stage1(faces)))
    real_outputs = np.concatenate([numpy(model.generator(real_low[i:i + 50], training=False))
                                   for i in range(0, len(faces), 50)])
    mse = lambda a: ((a - faces) ** 2).reshape(len(faces), -1).mean(1)  # noqa: E731
    stats = lambda v: {"mean": float(v.mean()),  # noqa: E731
                       "standard_error": float(v.std(ddof=1) / np.sqrt(len(v)))}
    result = {"model": FLAGS.model, "heldout": FLAGS.heldout, "num_faces": int(len(faces)),
              "input_size": int(low), "output_size": int(size),
              "stage1_decode": {"stage2_mse": stats(mse(outputs)),
                                "bilinear_mse": stats(mse(bilinear(inputs))),
                                "stage2_wins": float(np.mean(mse(outputs) < mse(bilinear(inputs))))},
              "real_downsampled": {"stage2_mse": stats(mse(real_outputs)),
                                   "bilinear_mse": stats(mse(bilinear(real_low)))}}
    write_json(result, FLAGS.output)
    print(json.dumps(result, indent=2))

    os.makedirs(FLAGS.figures, exist_ok=True)
    shown = slice(0, 8)
    columns = np.stack([faces[shown], enlarge(inputs[shown]), bilinear(inputs[shown]),
                        outputs[shown]], axis=1)
    save_image_grid(columns.reshape((-1, size, size, 3)) * 0.5 + 0.5,
                    os.path.join(FLAGS.figures, f"{FLAGS.name}_before_after.png"), columns=4,
                    scale=1)
    z = np.random.default_rng(FLAGS.seed).normal(size=(32,) + model.latent_shape).astype(np.float32)
    decoded = numpy(model.resize_to_generator(ops.cast(model.stage1.decoder(z, training=False),
                                                       "float32")))
    samples = numpy(model.generator(decoded, training=False))
    pairs = np.stack([enlarge(decoded).reshape(4, 8, size, size, 3),
                      samples.reshape(4, 8, size, size, 3)], axis=1)
    save_image_grid(pairs.reshape((-1, size, size, 3)) * 0.5 + 0.5,
                    os.path.join(FLAGS.figures, f"{FLAGS.name}_samples.png"), columns=8, scale=1)


if __name__ == "__main__":
    flags.mark_flag_as_required("model")
    app.run(main)
