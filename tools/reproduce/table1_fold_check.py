"""Does folding BatchNormalization into the decoder's convolutions move a Table 1 score? From a row's
light state: the importance-sampled NLL of the first `IMAGES` validation images with `SAMPLES`
samples each, scored three ways on the same weights and the same posterior noise:

- `float32`: the float32 model, the decoder's own layers (the reference);
- `bfloat16`: the mixed-bfloat16 model, the decoder's own layers (what scoring ran before the fold);
- `bfloat16_folded`: the mixed-bfloat16 model through `keras_crvae.networks.inference_network`
  (what `run_network`, and so every score, runs now).

Prints each NLL, each bfloat16 path's paired per-image difference from float32 (mean +- standard
error over images) and its scoring seconds (one thread; load average printed beside).

    python tools/reproduce/table1_fold_check.py [PRESET=mnist_crvae] [IMAGES=100] [SAMPLES=500]
        [OUTPUT=table1_fold_check.json]
"""

import json
import os
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
DECODER_BATCH = 2000  # the rows' --max_decoder_batch (reproduce_table1.py)


def main(preset="mnist_crvae", images=100, samples=500, output="table1_fold_check.json"):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras_crvae
    from keras_crvae import data, evaluation
    from keras_crvae.jobs import longrun
    from keras_crvae.networks import inference

    light_state = ROOT / "reproductions" / "table1" / preset / "resume_weights.npz"
    if not light_state.exists():
        raise SystemExit(f"No light state at {light_state}.")
    valid = data.load_npz_images(
        str(ROOT.parent / "shared" / "data" / "binarized_mnist.npz") + ":x_valid")[:int(images)]
    scores, seconds = {}, {}
    for name, precision, fold in (("float32", "float32", False), ("bfloat16", "bfloat16", False),
                                  ("bfloat16_folded", "bfloat16", True)):
        model = keras_crvae.from_preset(preset, seed=0, precision=precision)
        longrun.load_weights_npz(model, light_state)
        with inference.folding(fold):
            start = time.perf_counter()
            estimate = evaluation.importance_sampled_nll(
                model, valid, num_samples=int(samples), batch_size=100, seed=0,
                max_decoder_batch=DECODER_BATCH, verbose=0)
            seconds[name] = round(time.perf_counter() - start, 1)
        scores[name] = estimate.per_example
        print(f"{preset} {name}: NLL {estimate.mean:.3f} +- {estimate.standard_error:.3f} "
              f"({seconds[name]} s)", flush=True)
    report = {"preset": preset, "light_state_epoch": json.loads(
        (light_state.parent / "resume.json").read_text()).get("epochs_done"),
        "images": int(images), "samples": int(samples), "seconds": seconds,
        "nll": {name: round(float(values.mean()), 4) for name, values in scores.items()},
        "load_average": list(os.getloadavg())}
    for name in ("bfloat16", "bfloat16_folded"):
        difference = scores[name] - scores["float32"]
        report[f"{name}_minus_float32"] = {
            "mean": round(float(difference.mean()), 4),
            "standard_error": round(float(difference.std(ddof=1) / np.sqrt(len(difference))), 4),
            "mean_abs": round(float(np.abs(difference).mean()), 4)}
        print(f"  {name} - float32: {difference.mean():+.4f} +- "
              f"{difference.std(ddof=1) / np.sqrt(len(difference)):.4f} nats (mean |difference| "
              f"{np.abs(difference).mean():.4f})")
    print(f"Load average: {report['load_average']}")
    pathlib.Path(output).write_text(json.dumps(report, indent=2))
    print(f"Wrote {output}")


if __name__ == "__main__":
    main(*sys.argv[1:])
