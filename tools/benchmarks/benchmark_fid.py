"""FID feature-extraction speed of the converted Inception network (images/s); table + JSON.

    python tools/benchmarks/benchmark_fid.py [--image_size=64] [--batch_size=50] [--batches=3] [--rounds=3]
        [--precisions=float32,bfloat16] [--output=benchmark_fid.json]

Interleaved rounds of `evaluation.feature_statistics` paths on random `(B, S, S, 3)` uint8 images
(random network weights: speed only): the eager call `extractor(images)` (how FIDs were computed
before, 1-2 images/s on these 2 cores) and the compiled path `extract_features` (`predict_on_batch`),
at each precision. Also the bfloat16 features' relative difference from float32's on the same
weights (features are float32; statistics float64). The 10,000-image FID estimate is
`20,000 / (images/s)` seconds (generated + reference sets).
"""

import json
import os
import platform
import statistics
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("image_size", 64, "Input images are (S, S, 3), resized to 299 in the model.")
flags.DEFINE_integer("batch_size", 50, "Images per call.")
flags.DEFINE_integer("batches", 2, "Calls per timed measurement.")
flags.DEFINE_integer("rounds", 3, "Interleaved rounds; medians are reported.")
flags.DEFINE_list("precisions", ["float32", "bfloat16"], "Precisions of the compiled path.")
flags.DEFINE_boolean("eager", True, "Also time the eager call (slow: one batch per round).")
flags.DEFINE_string("output", "benchmark_fid.json", "JSON output path.")


def main(_):
    import keras
    import numpy as np

    from keras_crvae import evaluation
    from keras_crvae.evaluation.fid import extract_features

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (FLAGS.batch_size, FLAGS.image_size, FLAGS.image_size, 3),
                          dtype=np.uint8)
    extractors = {}
    for precision in FLAGS.precisions:
        extractors[precision] = evaluation.FIDInceptionV3(weights=None, precision=precision)
    reference = extractors[FLAGS.precisions[0]]
    for extractor in extractors.values():
        extractor.backbone.set_weights(reference.backbone.get_weights())
    contestants = {f"compiled {p}": (lambda e=e: extract_features(e, images))
                   for p, e in extractors.items()}
    if FLAGS.eager:
        contestants["eager float32"] = lambda: reference(images)
    for function in contestants.values():
        function()  # trace / warm up
    speeds = {name: [] for name in contestants}
    loads = [os.getloadavg()[0]]
    for _ in range(FLAGS.rounds):
        for name, function in contestants.items():
            calls = 1 if name.startswith("eager") else FLAGS.batches
            start = time.perf_counter()
            for _ in range(calls):
                keras.ops.convert_to_numpy(function())
            speeds[name].append(calls * FLAGS.batch_size / (time.perf_counter() - start))
        loads.append(os.getloadavg()[0])
    medians = {name: statistics.median(values) for name, values in speeds.items()}
    features = {p: extract_features(e, images) for p, e in extractors.items()}
    base = features[FLAGS.precisions[0]]
    differences = {p: float(np.linalg.norm(f - base) / np.linalg.norm(base))
                   for p, f in features.items()}
    print(f"FID feature extraction, {FLAGS.image_size}x{FLAGS.image_size} -> 299x299, batch "
          f"{FLAGS.batch_size}, backend {keras.backend.backend()}, load average "
          f"{min(loads):.2f}-{max(loads):.2f}")
    print(f"{'path':20s} {'images/s':>9s} {'10k FID (min)':>14s} {'rel. feature diff':>18s}")
    for name, speed in medians.items():
        precision = name.split()[-1]
        diff = differences.get(precision) if name.startswith("compiled") else 0.0
        print(f"{name:20s} {speed:9.1f} {20000 / speed / 60:14.1f} {diff:18.4f}")
    report = {"machine": platform.platform(), "cpu_count": os.cpu_count(),
              "backend": keras.backend.backend(), "image_size": FLAGS.image_size,
              "batch_size": FLAGS.batch_size, "images_per_second": medians, "all_rounds": speeds,
              "relative_feature_difference": differences, "load_average": loads}
    with open(FLAGS.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
