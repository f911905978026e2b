"""Training and decoding speed against the PyTorch peer and the machine's own ceilings; table + JSON.

    python tools/benchmarks/benchmark_peer.py [--presets=mnist_crvae,mnist_vae] [--tasks=train,decode]
        [--precisions=float32,bfloat16] [--rounds=5] [--steps=3] [--batch_size=128]
        [--peer=../shared/tools/peer/torch_peer_mnist.py] [--peer_python=python]
        [--quality_epochs=0] [--output=benchmark_peer.json]

What runs, interleaved round by round so that a load change hits every contestant alike:
- keras_crvae at each `--precisions` (one fit step on a fixed batch of 128 binary images for
  `train`; for `decode`, `run_network(decoder, z)` on 2,000 latents: the library's inference path
  (BatchNormalization folded on TensorFlow, `keras_crvae.networks.inference_network`), as `decode`,
  `sample` and the NLL evaluator run it);
- the PyTorch port of the same networks (`--peer`, a validated measuring instrument outside the
  library; needs `torch` in `--peer_python`), float32 and bf16 autocast (`--peer_precisions`;
  "vs torch" compares each keras row with the peer at the same precision), in a worker subprocess (`OMP_WAIT_POLICY=
  PASSIVE`, 2 threads like TensorFlow here); skipped with a note when torch is missing;
- the ceilings: float32 and bfloat16 1024x1024 matmul and a 3x3 convolution (128x14x14x64 -> 64) in
  TensorFlow, GFLOP/s, measured in the same rounds.

Reported: medians over rounds of images/s, the ratios keras/peer, and the fraction of the ceiling
(the faster of matmul and conv per dtype) each run reaches (model GFLOP per image from the layers' shapes, x3 for a training step).
`--quality_epochs=N` then trains the first preset N epochs at each precision from one seed on the
embedded MNIST subset and reports ELBO and NLL (k=100, 500 images) side by side, the check that
bfloat16 does not trade quality for speed. The load average is recorded with every table.
"""

import json
import os
import platform
import statistics
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("presets", ["mnist_crvae", "mnist_vae"], "MNIST presets to time.")
flags.DEFINE_list("tasks", ["train", "decode"], "train and/or decode.")
flags.DEFINE_list("precisions", ["float32", "bfloat16"], "keras_crvae precisions to time.")
flags.DEFINE_integer("rounds", 5, "Interleaved rounds; medians are reported.")
flags.DEFINE_integer("steps", 3, "Training steps (or decode calls) per contestant per round.")
flags.DEFINE_integer("batch_size", 128, "Training batch size (the peer's is fixed at 128).")
flags.DEFINE_integer("decode_rows", 2000, "Latents per decode call (the peer's is fixed at 2000).")
flags.DEFINE_string("peer", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                         "shared", "tools", "peer", "torch_peer_mnist.py"),
                    "Path of the PyTorch peer script.")
flags.DEFINE_string("peer_python", sys.executable, "Python interpreter that has torch.")
flags.DEFINE_list("peer_precisions", ["float32", "bf16"], "The peer's precisions: float32, and bf16 "
                  "(`torch.autocast(\"cpu\", dtype=torch.bfloat16)`, what a PyTorch user on a bf16 "
                  "CPU runs). Each keras precision is compared with the peer's at the same precision.")
flags.DEFINE_list("kernels", ["fast"], "keras_crvae's kernels, as contestants: fast (as shipped), "
                  "reference (Keras' own BatchNormalization, Cropping2D, LSTM, Adam update) or "
                  "no_NAME (all fast but NAME; tools/benchmarks/kernels.py).")
flags.DEFINE_integer("quality_epochs", 0, "Epochs of the fp32-vs-bf16 quality run (0: skip).")
flags.DEFINE_integer("quality_base_channels", 32, "base_channels of the quality run.")
flags.DEFINE_string("output", "benchmark_peer.json", "JSON output path.")


# --- FLOPs from layer shapes --------------------------------------------------------------------


def forward_flops_per_image(model):
    """Multiply-add FLOPs (2 per MAC) of one forward pass of `model`'s convolutions, dense layers and
    LSTMs for one image; elementwise work is not counted."""
    import keras

    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, c_in = layer.input.shape
            k1, k2 = layer.kernel_size
            total += 2 * h * w * k1 * k2 * c_in * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, _ = layer.output.shape
            k1, k2 = layer.kernel_size
            total += 2 * h * w * k1 * k2 * layer.kernel.shape[2] * layer.filters
        elif isinstance(layer, keras.layers.LSTM):
            steps, features = layer._build_shapes_dict["sequences_shape"][1:] if hasattr(
                layer, "_build_shapes_dict") else (None, None)
            kernel, recurrent = layer.cell.kernel.shape, layer.cell.recurrent_kernel.shape
            steps = steps or 8
            total += 2 * steps * (kernel[0] * kernel[1] + recurrent[0] * recurrent[1])
        elif isinstance(layer, keras.layers.Dense):
            rows = 1
            shape = getattr(layer, "_build_shapes_dict", {}).get("input_shape")
            if shape is not None and len(shape) == 3:
                rows = shape[1]  # applied per time step
            total += 2 * rows * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


# --- contestants ---------------------------------------------------------------------------------


class KerasContestant:
    def __init__(self, preset, task, precision, batch_size, decode_rows, kernels="fast"):
        import keras
        import numpy as np

        import keras_crvae
        import kernels as kernel_switch

        self.name = f"keras {precision}" + ("" if kernels == "fast" else f" {kernels}")
        self.precision = precision
        self.context = lambda: kernel_switch.kernels_context(kernels)
        with self.context():
            self.model = keras_crvae.from_preset(preset, seed=0, precision=precision)
        self.task = task
        rng = np.random.default_rng(0)
        if task == "train":
            self.x = (rng.random((batch_size, 28, 28, 1)) < 0.3).astype("float32")
            self.rows = batch_size
        else:
            self.z = rng.standard_normal((decode_rows,) + self.model.latent_shape).astype("float32")
            self.rows = decode_rows
        self.keras = keras
        with self.context():
            self.run(2)  # trace and warm up (the kernels are chosen when the step is traced)
        self.flops = 3 * forward_flops_per_image(self.model)

    def run(self, steps):
        from keras_crvae.models.base import run_network

        start = time.perf_counter()
        for _ in range(steps):
            if self.task == "train":
                self.model.train_on_batch(self.x)
            else:
                self.keras.ops.convert_to_numpy(run_network(self.model.decoder, self.z))
        return time.perf_counter() - start


class PeerContestant:
    """The PyTorch worker process (`setup`, `run N`, `quit` over stdin/stdout)."""

    def __init__(self, preset, task, script, python, precision="float32"):
        env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PEER_THREADS="2")
        self.process = subprocess.Popen([python, script, "worker"], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=env)
        self.name = f"torch {precision}"
        self.precision = "bfloat16" if precision == "bf16" else "float32"
        reply = self._ask(f"setup {preset} {task}" + (" bf16" if precision == "bf16" else ""))
        self.version = reply.split()[1] if reply.startswith("ready") else reply
        self.rows = None

    def _ask(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        while True:
            out = self.process.stdout.readline()
            if not out:
                raise RuntimeError("the peer worker exited")
            if out.startswith("@@ "):
                return out[3:].strip()

    def run(self, steps):
        reply = self._ask(f"run {steps}")  # "time 1.234 rows=128"
        parts = reply.split()
        self.rows = int(parts[2].split("=")[1])
        return float(parts[1])

    def close(self):
        try:
            self._ask("quit")
        except Exception:
            pass
        self.process.wait(timeout=30)


def peer_available(python, script):
    """(True, "") when `python` imports torch and `script` exists, else (False, reason)."""
    if not os.path.exists(script):
        return False, f"peer script not found at {script}"
    result = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                            capture_output=True, text=True)
    if result.returncode:
        return False, f"torch is not importable from {python}"
    return True, result.stdout.strip()


# --- ceilings --------------------------------------------------------------------------------------


def make_ceiling_kernels():
    import tensorflow as tf

    kernels = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.normal((1024, 1024)), dtype)
        x = tf.cast(tf.random.normal((128, 14, 14, 64)), dtype)
        w = tf.cast(tf.random.normal((3, 3, 64, 64)), dtype)
        matmul = tf.function(lambda a=a: tf.matmul(a, a))
        conv = tf.function(lambda x=x, w=w: tf.nn.conv2d(x, w, 1, "SAME"))
        kernels[f"matmul {dtype.name}"] = (matmul, 2 * 1024 ** 3)
        kernels[f"conv3x3 {dtype.name}"] = (conv, 2 * 128 * 14 * 14 * 64 * 64 * 9)
    for function, _ in kernels.values():
        function().numpy()
    return kernels


def time_ceiling(function, flops, reps=10):
    start = time.perf_counter()
    for _ in range(reps):
        function().numpy()
    return flops * reps / (time.perf_counter() - start) / 1e9


# --- quality: the same short run in both precisions ----------------------------------------------


def quality_run(preset, epochs, base_channels, precisions):
    import keras_crvae  # noqa: F401
    from keras_crvae import training

    rows = []
    for precision in precisions:
        start = time.time()
        metrics = training.train(preset, output_dir=f"/tmp/benchmark_peer_quality_{precision}",
                                 epochs=epochs, seed=0, fresh=True, verbose=0,
                                 nll_samples=100, nll_images=500,
                                 base_channels=base_channels, precision=precision)
        rows.append({"precision": precision, "elbo": metrics["elbo"]["mean"],
                     "elbo_se": metrics["elbo"]["standard_error"], "nll": metrics["nll"]["mean"],
                     "nll_se": metrics["nll"]["standard_error"],
                     "train_images_per_second": metrics["train_images_per_second"],
                     "wall_seconds": round(time.time() - start, 1)})
    return rows


def main(_):
    import keras

    import kernels as kernel_switch

    for kernels in FLAGS.kernels:
        if kernels not in kernel_switch.SPECS:
            raise app.UsageError(f"--kernels={kernels}: expected one of "
                                 f"{', '.join(kernel_switch.SPECS)}.")
    for precision in FLAGS.peer_precisions:
        if precision not in ("float32", "bf16"):
            raise app.UsageError(f"--peer_precisions={precision}: expected float32 or bf16.")

    ok, peer_note = peer_available(FLAGS.peer_python, FLAGS.peer)
    ceilings = make_ceiling_kernels()
    report = {"machine": platform.platform(), "processor": platform.processor(),
              "cpu_count": os.cpu_count(), "backend": keras.backend.backend(),
              "rounds": FLAGS.rounds, "steps": FLAGS.steps, "peer": peer_note if ok else None,
              "peer_skipped": None if ok else peer_note, "tables": []}
    if not ok:
        print(f"PyTorch peer skipped: {peer_note}")
    for preset in FLAGS.presets:
        for task in FLAGS.tasks:
            contestants = [KerasContestant(preset, task, p, FLAGS.batch_size, FLAGS.decode_rows,
                                           kernels)
                           for p in FLAGS.precisions for kernels in FLAGS.kernels]
            peers = [PeerContestant(preset, task, FLAGS.peer, FLAGS.peer_python, precision)
                     for precision in FLAGS.peer_precisions] if ok else []
            everyone = contestants + peers
            samples = {c.name: [] for c in everyone}
            ceiling_samples = {name: [] for name in ceilings}
            loads = [os.getloadavg()[0]]
            for _ in range(FLAGS.rounds):
                for contestant in everyone:
                    seconds = contestant.run(FLAGS.steps)
                    samples[contestant.name].append(contestant.rows * FLAGS.steps / seconds)
                for name, (function, flops) in ceilings.items():
                    ceiling_samples[name].append(time_ceiling(function, flops))
                loads.append(os.getloadavg()[0])
            for peer in peers:
                peer.close()
            medians = {name: statistics.median(v) for name, v in samples.items()}
            ceiling = {name: statistics.median(v) for name, v in ceiling_samples.items()}
            flops = contestants[0].flops if task == "train" else contestants[0].flops / 3
            table = {"preset": preset, "task": task, "images_per_second": medians,
                     "all_rounds": samples, "ceiling_gflops": ceiling,
                     "gflop_per_image": flops / 1e9, "load_average": loads}
            peer_speeds = {peer.precision: medians[peer.name] for peer in peers}
            print(f"\n{preset} {task}  ({flops / 1e9:.3f} GFLOP per image; load average "
                  f"{min(loads):.2f}-{max(loads):.2f})")
            print(f"{'contestant':26s} {'images/s':>9s} {'vs torch':>9s} {'GFLOP/s':>8s} "
                  f"{'% fp32 ceil':>11s} {'% bf16 ceil':>11s}")
            fp32_ceiling = max(ceiling["matmul float32"], ceiling["conv3x3 float32"])
            bf16_ceiling = max(ceiling["matmul bfloat16"], ceiling["conv3x3 bfloat16"])
            table["ceiling_used"] = {"float32": fp32_ceiling, "bfloat16": bf16_ceiling}
            table["vs_torch_same_precision"] = {}
            for contestant in everyone:
                name, speed = contestant.name, medians[contestant.name]
                achieved = speed * flops / 1e9
                peer_speed = peer_speeds.get(contestant.precision)
                ratio = f"{speed / peer_speed:9.2f}" if peer_speed else f"{'-':>9s}"
                if peer_speed:
                    table["vs_torch_same_precision"][name] = round(speed / peer_speed, 3)
                print(f"{name:26s} {speed:9.1f} {ratio} {achieved:8.1f} "
                      f"{100 * achieved / fp32_ceiling:10.0f}% "
                      f"{100 * achieved / bf16_ceiling:10.0f}%")
            print("ceilings GFLOP/s: " + ", ".join(f"{k} {v:.0f}" for k, v in ceiling.items()))
            report["tables"].append(table)
            del contestants
    if FLAGS.quality_epochs:
        rows = quality_run(FLAGS.presets[0], FLAGS.quality_epochs, FLAGS.quality_base_channels,
                           FLAGS.precisions)
        report["quality"] = {"preset": FLAGS.presets[0], "epochs": FLAGS.quality_epochs,
                             "base_channels": FLAGS.quality_base_channels, "rows": rows,
                             "load_average": os.getloadavg()[0]}
        print(f"\nQuality: {FLAGS.presets[0]}, base_channels={FLAGS.quality_base_channels}, "
              f"{FLAGS.quality_epochs} epochs on the embedded subset, seed 0 "
              "(ELBO k=1 on 1,000 test images; NLL k=100 on 500)")
        for row in rows:
            print(f"{row['precision']:10s} ELBO {row['elbo']:8.2f} +- {row['elbo_se']:.2f}   "
                  f"NLL {row['nll']:7.2f} +- {row['nll_se']:.2f}   "
                  f"{row['train_images_per_second']:7.1f} img/s  {row['wall_seconds']} s")
    with open(FLAGS.output, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
