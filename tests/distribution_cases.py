"""Distribution checks run in a fresh process with two logical CPU devices; prints one JSON line.

    python tests/distribution_cases.py CASE [CASE ...]    -> {"CASE": result, ...}
        (CASE: vae | vaegan_threshold | train | wgan_gp | crvaegan_wgan_gp | stage2)

`tf.config.set_logical_device_configuration` must run before TensorFlow initialises its devices,
so `tests/test_distribution.py` runs the cases in a subprocess of their own (all in one: TensorFlow
and the library load once) and the rest of the test session keeps its single CPU device. Every case trains the same model twice from the same weights
on the same global batches: once on one device (the default strategy) and once under
`MirroredStrategy` over the two logical CPUs (each replica gets a contiguous half of every batch),
one `fit` call per step, and reports both runs' per-step metrics and weight differences.

For the two runs to compute the same thing, no per-example quantity may depend on how the batch
is split:
- BatchNorm: `synchronized_batch_norm=True` (global-batch statistics).
- Noise: `keras_crvae.distribute.replica_normal` hands each replica its rows of the one-device draw,
  so drawn noise matches (cases `vae`, `crvaegan_wgan_gp`); `vaegan_threshold` passes the noise explicitly
  (`{"images", "posterior_noise", "prior_noise"}` batches).
- The discriminator: `dropout_rate=0` and `minibatch_kernels=0` (dropout masks and minibatch
  features are per replica by nature).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402  (devices must be configured before any TF op runs)

# Grappler off, as in the test session (tests/conftest.py): each graph here runs once or twice.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})

NUM_REPLICAS = 2
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(NUM_REPLICAS)])
DEVICES = [f"/cpu:{index}" for index in range(NUM_REPLICAS)]

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_crvae import layers, models, networks, presets  # noqa: E402
from keras_crvae.optimizers import MultiplierAdam, ThresholdedAdam  # noqa: E402

# Adam's first step is `lr * g / (|g| + epsilon)`: with the usual epsilon 1e-8 that is `lr * sign(g)`,
# so a gradient that is zero up to rounding (+-1e-9) moves its weight by +-lr in one run and -+lr in
# the other, and a wrongly scaled gradient (2g) moves it exactly as far. With epsilon = 1 the step is
# about `lr * g`: weight differences then measure gradient differences, scale included.
ADAM_EPSILON = 1.0

# One strategy per process: a second MirroredStrategy over the same devices can collide with the
# first one's collective instance keys.
STRATEGY = tf.distribute.MirroredStrategy(DEVICES)


def max_difference(first, second):
    """Largest absolute element difference between two lists of arrays."""
    return max(float(np.max(np.abs(np.asarray(a, "float64") - np.asarray(b, "float64"))))
               if np.size(a) else 0.0 for a, b in zip(first, second))


def train_both(build, batches, watch=None):
    """Builds a model on one device and under `STRATEGY` with the same weights; fits both.

    Args:
        build: callable `() -> compiled model`; called with the same global seed both times.
        batches: list of global batches (arrays, or dicts of arrays); one `fit` call per batch.
        watch: callable `model -> list of arrays` or None. With it, `watched_step_change` holds,
            per run, the largest change of those arrays over each step.

    Returns:
        dict: `single` / `mirrored` lists of per-step metric dicts, `weight_difference` (largest
        difference between the two runs' weights after each step), `weight_change` (largest
        change of the one-device weights over the run), and `runs` (the models and the initial
        weights, for case-specific checks; dropped before printing).
    """
    keras.utils.set_random_seed(0)
    single = build()
    initial = single.get_weights()
    with STRATEGY.scope():
        keras.utils.set_random_seed(0)
        mirrored = build()
    mirrored.set_weights(initial)
    result = {"single": [], "mirrored": [], "weight_difference": [], "replicas":
              mirrored.distribute_strategy.num_replicas_in_sync}
    if watch is not None:
        result["watched_step_change"] = {"single": [], "mirrored": []}
    for batch in batches:
        size = len(keras.tree.flatten(batch)[0])
        for name, model in (("single", single), ("mirrored", mirrored)):
            before = None if watch is None else watch(model)
            dataset = tf.data.Dataset.from_tensor_slices(batch).batch(size)
            history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
            result[name].append({key: float(values[-1]) for key, values in history.history.items()})
            if watch is not None:
                result["watched_step_change"][name].append(max_difference(watch(model), before))
        result["weight_difference"].append(max_difference(single.get_weights(),
                                                          mirrored.get_weights()))
    result["weight_change"] = max_difference(single.get_weights(), initial)
    result["runs"] = (single, mirrored, initial)
    return result


def printable(result):
    return {key: value for key, value in result.items() if key != "runs"}


# --- the VAE family (compute_loss path, GaussianSampler noise) ------------------------------------

def sampler_rows():
    """GaussianSampler under STRATEGY: each replica's noise vs the one-device draw of the batch."""
    mean = np.zeros((8, 3), "float32")
    log_var = np.zeros((8, 3), "float32")
    single = layers.GaussianSampler(seed=5, use_tfp=False)
    expected = keras.ops.convert_to_numpy(single([mean, log_var])[0])
    with STRATEGY.scope():
        sampler = layers.GaussianSampler(seed=5, use_tfp=False)
    dataset = STRATEGY.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((mean, log_var)).batch(8))

    @tf.function
    def draw(inputs):
        return sampler(list(inputs))[0]

    per_replica = STRATEGY.run(draw, args=(next(iter(dataset)),))
    shards = [keras.ops.convert_to_numpy(t) for t in STRATEGY.experimental_local_results(per_replica)]
    return {"one_device": expected.tolist(), "replicas": [s.tolist() for s in shards]}


def case_vae():
    """crVAE (mnist_crvae at tiny width: recurrent latent on both paths), 2 steps of batch 8."""
    def build():
        model = presets.from_preset("mnist_crvae", compile=False, seed=1, base_channels=2,
                                    latent_channels=8, time_steps=4, lstm_layers=1,
                                    synchronized_batch_norm=True)
        training = presets.get_preset("mnist_crvae", learning_rate=0.1).training
        optimizer = presets.make_optimizer(training)
        optimizer.epsilon = ADAM_EPSILON
        model.compile(optimizer=optimizer, jit_compile=False)
        return model

    images = (np.random.default_rng(0).random((2, 8, 28, 28, 1)) < 0.3).astype("float32")
    result = printable(train_both(build, list(images)))
    result["sampler"] = sampler_rows()
    return result


# --- VAE-GAN and crVAE-GAN (custom train_step) ----------------------------------------------------

GAN_SIZE = dict(base_channels=4, latent_channels=8, time_steps=4, lstm_layers=1,
                synchronized_batch_norm=True)


def brightness_discriminator():
    """A discriminator whose logit is `10 * (mean pixel value - 0.5)`: real iff brighter than 0.5."""
    discriminator = keras.Sequential([
        keras.Input((64, 64, 3)),
        keras.layers.GlobalAveragePooling2D(name="channel_means"),
        keras.layers.Dense(1, name="logit"),
    ], name="brightness_discriminator")
    discriminator.get_layer("logit").set_weights([np.full((3, 1), 10.0 / 3, "float32"),
                                                 np.array([-5.0], "float32")])
    return discriminator


def threshold_batches(per_replica=16):
    """Two global batches of 2 * `per_replica` images with explicit noise.

    Real images are bright (pixels uniform in [0.6, 1]: the discriminator says real, correctly)
    except the "dark" ones (pixels in [-1, -0.6]: it says fake, wrongly); the generator's fakes are
    dark too (decoder bias -2), so they are classified correctly. (Pixel noise, not constant images:
    synchronized BatchNorm computes the variance as E[x^2] - E[x]^2, which loses float32 precision
    when a channel is nearly constant.) Real images sit at positions `i % 4 in {0, 1}`, 8 per replica:
        step 0: replica 1's 8 real images dark: accuracies 16/16 and 8/16, global 24/32 = 0.75.
        step 1: 2 of replica 1's real images dark:    16/16 and 14/16, global 30/32 = 0.9375.
    """
    rng = np.random.default_rng(1)
    batches = []
    for dark_count in (8, 2):
        images = rng.uniform(0.6, 1.0, (2 * per_replica, 64, 64, 3)).astype("float32")
        real_positions = [i for i in range(per_replica, 2 * per_replica) if i % 4 in (0, 1)]
        images[real_positions[:dark_count]] *= -1.0
        noise_shape = (2 * per_replica, 4, 4, 8)
        batches.append({"images": images,
                        "posterior_noise": rng.standard_normal(noise_shape).astype("float32"),
                        "prior_noise": rng.standard_normal(noise_shape).astype("float32")})
    return batches


def case_vaegan_threshold():
    """VAEGAN (dense latent) with `brightness_discriminator`: the thresholded D decision is global.

    Reports each step's global `d_accuracy` / `d_updated`, each replica's shard accuracy (what a
    per-replica decision would have used), how far each step moved the discriminator's weights
    (`watched_step_change`) and its optimizer's applied-update count.
    """
    def build():
        encoder = networks.build_image64_encoder("dense", **GAN_SIZE)
        decoder = networks.build_image64_decoder("dense", **GAN_SIZE)
        decoder.get_layer("to_rgb").bias.assign(np.full((3,), -2.0, "float32"))
        model = models.VAEGAN(encoder, decoder, brightness_discriminator(), seed=3)
        model.compile(MultiplierAdam(0.1, epsilon=ADAM_EPSILON),
                      ThresholdedAdam(0.1, threshold=0.9, epsilon=ADAM_EPSILON), jit_compile=False)
        return model

    batches = threshold_batches()
    keras.utils.set_random_seed(0)
    probe = build()
    shard_accuracy = []
    for batch in batches:
        halves = [{key: value[r * 16:(r + 1) * 16] for key, value in batch.items()}
                  for r in range(NUM_REPLICAS)]
        terms = [probe.compute_terms(h["images"], h["posterior_noise"], h["prior_noise"])
                 for h in halves]
        shard_accuracy.append([float(t["d_correct"] / t["d_count"]) for t in terms])

    result = train_both(build, batches, watch=lambda model: model.discriminator.get_weights())
    single, mirrored, _ = result.pop("runs")
    result.update({
        "shard_accuracy": shard_accuracy,
        "discriminator_iterations": {
            name: int(model.discriminator_optimizer.iterations.numpy())
            for name, model in (("single", single), ("mirrored", mirrored))},
    })
    return result


def case_stage2():
    """Stage2 (32 -> 64) on a frozen tiny VAE-GAN: synchronized BatchNorm in G and D, drawn noise,
    the random-VGG16 perceptual term, one step of 8 at LR 0.01.

    One step: the random VGG16's features are large (caffe-scaled inputs through Glorot weights), so
    its gradients carry float32 rounding differences of a few 1e-4 between the two reductions, which a
    second step at a large LR amplifies through BatchNorm (measured: 3e-6 after one step, 6e-5 after
    two; without the perceptual term 2e-6 and 6e-5 at LR 0.1).

    Reports the largest differences between the runs of the trainable weights (absolute) and of
    the BatchNorm statistics (relative: the discriminator's first moving variances reach 1e3 to
    1e4 after a step, where float32 rounding alone differs by 1e-5 absolute), and how far Stage1
    moved in either run.
    """
    def build():
        stage1 = models.VAEGAN(networks.build_image64_encoder("dense", **GAN_SIZE),
                               networks.build_image64_decoder("dense", **GAN_SIZE),
                               brightness_discriminator(), seed=3)
        generator = networks.build_stage2_generator(32, 64, base_channels=4, residual_blocks=1,
                                                    synchronized_batch_norm=True)
        discriminator = networks.build_stage2_discriminator(64, base_channels=2,
                                                            synchronized_batch_norm=True)
        features = networks.build_perceptual_network("vgg16", image_size=64, weights=None)
        model = models.Stage2(stage1, generator, discriminator, features, seed=3)
        model.compile(MultiplierAdam(0.01, epsilon=ADAM_EPSILON),
                      ThresholdedAdam(0.01, threshold=1.0, epsilon=ADAM_EPSILON), jit_compile=False)
        return model

    images = np.random.default_rng(0).uniform(-1, 1, (1, 8, 64, 64, 3)).astype("float32")
    result = train_both(build, list(images))
    single, mirrored, initial = result.pop("runs")
    keras.utils.set_random_seed(0)
    fresh = build()
    fresh.set_weights(initial)
    values = lambda variables: [np.asarray(v.numpy(), "float64") for v in variables]  # noqa
    trainable = lambda model: values(model.generator.trainable_variables  # noqa: E731
                                     + model.discriminator.trainable_variables)
    statistics = lambda model: values(model.generator.non_trainable_variables  # noqa: E731
                                      + model.discriminator.non_trainable_variables)
    result["trainable_difference"] = max_difference(trainable(single), trainable(mirrored))
    result["trainable_change"] = max_difference(trainable(single), trainable(fresh))
    result["statistics_relative_difference"] = max(
        float(np.max(np.abs(a - b) / (np.abs(a) + 1e-3)))
        for a, b in zip(statistics(single), statistics(mirrored)))
    result["stage1_change"] = max(max_difference(run.stage1.get_weights(),
                                                 fresh.stage1.get_weights())
                                  for run in (single, mirrored))
    return result


def case_wgan_gp():
    """GAN with the WGAN-GP objective (LayerNorm critic, synchronized BatchNorm in G), 2 critic
    steps per generator step, 2 steps of global batch 8: each replica's critic steps take their
    rows of the global sub-batches, the noise and the penalty's per-example epsilon are the
    replicas' rows of one global draw."""
    def build():
        generator = networks.build_dcgan_generator((28, 28, 1), 8, base_channels=4,
                                                   synchronized_batch_norm=True)
        critic = networks.build_dcgan_discriminator((28, 28, 1), base_channels=4, norm="layer")
        model = models.GAN(generator, critic, adversarial_loss="wgan_gp", critic_steps=2, seed=3)
        model.compile(keras.optimizers.Adam(0.05, epsilon=ADAM_EPSILON),
                      keras.optimizers.Adam(0.05, epsilon=ADAM_EPSILON), jit_compile=False)
        return model

    images = np.random.default_rng(0).uniform(-1, 1, (2, 8, 28, 28, 1)).astype("float32")
    result = train_both(build, list(images))
    single, mirrored, _ = result.pop("runs")
    result["discriminator_iterations"] = [int(m.discriminator_optimizer.iterations.numpy())
                                          for m in (single, mirrored)]
    return result


def case_crvaegan_wgan_gp():
    """CRVAEGAN (Q head) with adversarial_loss="wgan_gp", drawn noise, 1 step of 8.

    One critic step per generator step: how several critic steps split the global sub-batches over
    the replicas is `case_wgan_gp`'s (the same `GAN`-level loop), and a second critic step here
    would trace the recurrent networks' double backpropagation once more (64 -> 51 CPU-seconds for
    this case, measured).
    """
    def build():
        encoder = networks.build_image64_encoder("recurrent", **GAN_SIZE)
        decoder = networks.build_image64_decoder("recurrent", **GAN_SIZE)
        discriminator = networks.build_image64_discriminator(
            base_channels=4, latent_channels=8, dropout_rate=0.0, minibatch_kernels=0,
            synchronized_batch_norm=True)
        model = models.CRVAEGAN(encoder, decoder, discriminator, seed=3,
                                kl_weight=[3e-4, 3e-4, 2e-4, 2e-4], adversarial_loss="wgan_gp")
        model.compile(MultiplierAdam(0.1, epsilon=ADAM_EPSILON),
                      ThresholdedAdam(0.1, threshold=0.9, epsilon=ADAM_EPSILON), jit_compile=False)
        return model

    images = np.random.default_rng(0).uniform(-1, 1, (1, 8, 64, 64, 3)).astype("float32")
    return printable(train_both(build, list(images)))


def case_train():
    """`training.train` (what `crvae train --strategy=mirrored` runs) on the two logical devices."""
    import tempfile

    from keras_crvae import training

    images = np.random.default_rng(0).random((64, 28, 28)).astype("float32")
    output_dir = tempfile.mkdtemp()
    metrics = training.train("mnist_vae", train_images=images, eval_images=images[:32],
                             output_dir=output_dir, epochs=1, batch_size=32, nll_samples=2,
                             nll_images=4, verbose=0, strategy=STRATEGY, base_channels=1,
                             latent_channels=2, synchronized_batch_norm=True)
    reloaded = training.load_model(os.path.join(output_dir, "model.keras"))
    return {"replicas": metrics["replicas"], "history": metrics["history"],
            "nll": metrics["nll"]["mean"], "files": sorted(os.listdir(output_dir)),
            "reloaded_sample_shape": list(reloaded.sample(2, seed=0).shape)}


CASES = {"vae": case_vae, "train": case_train, "vaegan_threshold": case_vaegan_threshold,
         "wgan_gp": case_wgan_gp,
         "crvaegan_wgan_gp": case_crvaegan_wgan_gp, "stage2": case_stage2}


def run_cases(names):
    """`{name: result}` of the cases `names`, one process for all (TensorFlow loads once); a case
    that raises reports `{"error": traceback}` and the others still run."""
    import traceback

    results = {}
    for name in names:
        try:
            results[name] = printable(CASES[name]())
        except Exception:  # noqa: BLE001  (reported to the test of that case)
            results[name] = {"error": traceback.format_exc()}
        keras.backend.clear_session()
    return results


if __name__ == "__main__":
    print(json.dumps(run_cases(sys.argv[1:])))
