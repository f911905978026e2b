"""FID of image sets stored in one npz against a reference set in it; prints a table, writes JSON.

    python tools/studies/fid_npz.py --npz=runs/two_stage_mnist_samples.npz --keys=stage1,stage2 \
        --reference_key=reference --num_samples=256 --features=inception \
        --weights=fid_inception_v3.weights.h5 --output=fid.json

`--features=inception` uses `keras_crvae.evaluation.FIDInceptionV3` (the standard FID network; convert its
weights first with `tools/assets/convert_fid_inception.py`), `--features=mnist` the packaged MNIST-classifier
features. Images are uint8 `(N, H, W, C)`; the first `--num_samples` of each set are used.
"""

import json

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("npz", None, "npz holding the image sets.", required=True)
flags.DEFINE_list("keys", ["stage1", "stage2"], "Keys of the generated sets.")
flags.DEFINE_string("reference_key", "reference", "Key of the reference set.")
flags.DEFINE_string("reference", None,
                    "PATH.npz:KEY of the reference images (uint8, `(N, H, W)` or `(N, H, W, C)`) instead "
                    "of --reference_key: for sample files written without them (a device run's "
                    "`two_stage_mnist_report.py --nosamples_reference`).")
flags.DEFINE_integer("num_samples", 10000, "Images used from each set.")
flags.DEFINE_enum("features", "inception", ["inception", "mnist"], "Feature extractor.")
flags.DEFINE_string("weights", None, "FIDInceptionV3 weights (default: its standard location).")
flags.DEFINE_integer("batch_size", 32, "Feature-extraction batch size.")
flags.DEFINE_string("output", "fid.json", "JSON output path.")


def main(_):
    import numpy as np

    from keras_crvae import evaluation
    from keras_crvae.io import write_json

    arrays = np.load(FLAGS.npz)
    if FLAGS.features == "inception":
        extractor = evaluation.FIDInceptionV3(weights=FLAGS.weights or "default",
                                              input_range=(0, 255))
    else:
        extractor = evaluation.mnist_feature_extractor()
    def prepared(values):  # uint8 `(N, H, W, C)` for Inception; the MNIST classifier takes [0, 1]
        values = values[: FLAGS.num_samples]
        if values.ndim == 3:  # MNIST's (N, 28, 28)
            values = values[..., None]
        return values if FLAGS.features == "inception" else values.astype("float32") / 255.0

    if FLAGS.reference:
        path, _, key = FLAGS.reference.rpartition(":")
        reference = prepared(np.load(path)[key])
    else:
        reference = prepared(arrays[FLAGS.reference_key])
    reference_mean, reference_cov = evaluation.feature_statistics(reference, extractor,
                                                                  FLAGS.batch_size)
    result = {"npz": FLAGS.npz, "reference": FLAGS.reference or FLAGS.reference_key,
              "features": FLAGS.features, "num_reference": int(len(reference))}
    for key in FLAGS.keys:
        values = prepared(arrays[key])
        mean, cov = evaluation.feature_statistics(values, extractor, FLAGS.batch_size)
        generated = len(values)
        result[key] = float(evaluation.frechet_distance(mean, cov, reference_mean, reference_cov))
        result[f"num_{key}"] = int(generated)
        print(f"{key:12s} FID {result[key]:9.2f}  ({generated} samples against {len(reference)} "
              f"reference images, {FLAGS.features})")
    write_json(result, FLAGS.output)
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
