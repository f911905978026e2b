"""Throughput of the colour-image input pipelines (images/s) at 64x64; table + JSON.

    python tools/benchmarks/benchmark_image_pipeline.py --npz=../shared/data/celeba64_subset.npz
        [--batch_size=64] [--batches=30] [--folder_images=512] [--output=benchmark_image_pipeline.json]

Rows:
- npz/arrays: in-memory uint8 64x64 faces, random flip (`image_dataset(npz=...)`).
- folder: `--folder_images` JPEGs written to a temporary folder at CelebA's aligned frame size
  178x218 (the faces upscaled), decoded, cropped and resized per image (`image_dataset(image_dir=...)`).
- folder crop_flip: the same files with LSUN's random crop + flip.
Each row times `--batches` batches after one warm-up batch (repeat=True, so epochs do not matter).
The GAN train step has to stay slower than these for the input not to be the bottleneck.
"""

import os
import platform
import tempfile
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("npz", None, "Faces .npz (key 'x', uint8 (N, 64, 64, 3)).")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_integer("batches", 30, "Timed batches per row.")
flags.DEFINE_integer("folder_images", 512, "JPEG files written for the folder rows.")
flags.DEFINE_string("output", "benchmark_image_pipeline.json", "JSON output path.")
flags.mark_flag_as_required("npz")


def images_per_second(dataset, batches, batch_size):
    iterator = iter(dataset)
    next(iterator)  # warm-up: tracing, the first file reads, the shuffle buffer fill
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main(_):
    from PIL import Image

    from keras_crvae import data
    from keras_crvae.io import write_json

    faces = data.load_celeba_subset(FLAGS.npz)
    common = dict(batch_size=FLAGS.batch_size, seed=0, repeat=True)
    rows = {}
    rows["npz flip"] = images_per_second(data.image_dataset(npz=FLAGS.npz, **common),
                                         FLAGS.batches, FLAGS.batch_size)
    with tempfile.TemporaryDirectory() as folder:
        for index in range(FLAGS.folder_images):
            face = Image.fromarray(faces[index % len(faces)]).resize((178, 218), Image.BILINEAR)
            face.save(os.path.join(folder, f"{index:06d}.jpg"), quality=90)
        for augment in ("flip", "crop_flip"):
            dataset = data.image_dataset(image_dir=folder, augment=augment, **common)
            rows[f"folder 178x218 jpeg {augment}"] = images_per_second(dataset, FLAGS.batches,
                                                                      FLAGS.batch_size)
    print(f"{'pipeline':<32} {'images/s':>10}")
    for name, rate in rows.items():
        print(f"{name:<32} {rate:>10.0f}")
    write_json({
        "machine": f"{platform.machine()} {os.cpu_count()} CPU cores",
        "batch_size": FLAGS.batch_size,
        "batches": FLAGS.batches,
        "images_per_second": {name: round(rate, 1) for name, rate in rows.items()},
    }, FLAGS.output)
    print(f"wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
