"""LeakyReLU in bfloat16 on TensorFlow: forward and gradient of the MNIST networks' activation
(`keras_crvae.networks.mnist`, slope 0.1) by three formulations, on the shapes of the crVAE's
feature maps, one thread, interleaved rounds (milliseconds per forward + gradient, best round).

- `leaky_relu`: `tf.nn.leaky_relu` in bfloat16 (what Keras' `LeakyReLU` runs);
- `float32_island`: cast to float32, `leaky_relu`, cast back (the casts' gradients included);
- `maximum`: `maximum(x, slope * x)`.

    python tools/benchmarks/leaky_relu_kernels.py --rounds=3

It also counts the LeakyReLU outputs of one training batch of `--preset` (its built encoder and
decoder, `--batch_size` images) and prints what they cost at the measured time per element.

Run it on a quiet machine: these ops are memory-bound, and a profile taken beside other jobs
inflates them (docs/performance.md, section 0).
"""

import argparse
import json
import math
import os
import time

SHAPES = {"128x14x14x64": (128, 14, 14, 64), "128x7x7x128": (128, 7, 7, 128)}
SLOPE = 0.1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--output", default="leaky_relu_kernels.json")
    parser.add_argument("--preset", default="mnist_crvae")
    parser.add_argument("--batch_size", type=int, default=128)
    args = parser.parse_args()
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    formulations = {
        "leaky_relu": lambda x: tf.nn.leaky_relu(x, SLOPE),
        "float32_island": lambda x: tf.cast(tf.nn.leaky_relu(tf.cast(x, tf.float32), SLOPE),
                                            tf.bfloat16),
        "maximum": lambda x: tf.maximum(x, x * SLOPE),
    }
    results = {}
    for shape_name, shape in SHAPES.items():
        x = tf.Variable(tf.cast(tf.random.normal(shape), tf.bfloat16))
        upstream = tf.cast(tf.random.normal(shape), tf.bfloat16)
        steps = {}
        for name, formulation in formulations.items():
            def step(formulation=formulation):
                inputs = tf.convert_to_tensor(x)
                with tf.GradientTape() as tape:
                    tape.watch(inputs)
                    outputs = formulation(inputs)
                return outputs, tape.gradient(outputs, inputs, output_gradients=upstream)

            steps[name] = tf.function(step, autograph=False)
            steps[name]()  # trace
        for _ in range(args.rounds):
            for name, step in steps.items():
                started = time.perf_counter()
                for _ in range(args.repeats):
                    outputs = step()
                outputs[1].numpy()
                results.setdefault(shape_name, {}).setdefault(name, []).append(
                    (time.perf_counter() - started) / args.repeats * 1000)
    print("| shape (bfloat16) | " + " | ".join(formulations) + " |")
    print("|---|" + "---|" * len(formulations))
    for shape_name, times in results.items():
        print(f"| {shape_name} | " + " | ".join(f"{min(times[name]):.2f} ms"
                                                 for name in formulations) + " |")
    first = next(iter(SHAPES))
    per_element_ms = min(results[first]["leaky_relu"]) / math.prod(SHAPES[first])
    elements = leaky_relu_outputs(args.preset, args.batch_size)
    print(f"{args.preset}: {elements / 1e6:.1f} million LeakyReLU outputs per batch of "
          f"{args.batch_size}, ~{elements * per_element_ms:.0f} ms forward + gradient at "
          f"{per_element_ms * 1e6:.2f} ns per element ({first})")
    load = [round(value, 2) for value in os.getloadavg()]
    print(f"load average: {load}")
    with open(args.output, "w") as handle:
        json.dump({"milliseconds": results, "load_average": load, "threads": 1,
                   "preset": args.preset, "leaky_relu_outputs_per_batch": elements,
                   "estimated_ms_per_step": round(elements * per_element_ms, 1)},
                  handle, indent=1)


def leaky_relu_outputs(preset, batch_size):
    """Elements of every LeakyReLU output of `preset`'s encoder and decoder for one batch."""
    import keras

    import keras_crvae

    model = keras_crvae.from_preset(preset, compile=False)
    return batch_size * sum(
        math.prod(layer.output.shape[1:]) for network in (model.encoder, model.decoder)
        for layer in network.layers if isinstance(layer, keras.layers.LeakyReLU))


if __name__ == "__main__":
    main()
