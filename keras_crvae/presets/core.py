"""The machinery of the presets: `TrainingConfig`, `Preset`, the registry, overrides, optimizers and
`from_preset`. The families' tables live beside it, one module each (see the package docstring).

No Keras or TensorFlow import at module level: `crvae` validates its flags against the tables before
TensorFlow loads. (`precision` imports Keras only when it builds.)
"""

import dataclasses

# The model, network and optimizer modules (Keras, TensorFlow) are imported inside the functions
# that build things, so that the tables can be read without loading TensorFlow: `crvae`
# validates its flags against them first. (`precision` imports Keras only when it builds.)
from keras_crvae import precision as crvae_precision

# The reference's `var_encoder`/`var_decoder`: the LSTMs, their BatchNorm and per-step Linear. The mean
# head and the latent biases belong to `vae_encoder`/`vae_decoder` and learn at the full LR.
RECURRENT_VARIABLE_PATTERNS = ("recurrence/lstm_", "recurrence/step_projection",
                               "recurrence/recurrent_batch_norm")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimisation hyperparameters of one preset (Adam, betas 0.9/0.999, eps 1e-8).

    Attributes:
        learning_rate: float, initial learning rate (`-LR`).
        batch_size: int, default 128 (`-batchSize`).
        epochs: int, default 200 (`-nEpochs`).
        lr_decay_every_epochs: int, default 50 (`-step`).
        lr_decay_rate: float, default 0.5 (`-decayLR`).
        recurrent_lr_multiplier: float, default 1.0. Multiplier of the recurrent parts' LR (1/T).
        recurrent_gradient_clip: float or None, default 5.0 (`-grad_clip`, recurrent parts only).
        discriminator_threshold: float, default 0.9. GAN presets: skip the discriminator's update
            when its batch accuracy exceeds this (`-margin 0.1`).
        discriminator_trunk_lr_multiplier: float, default 1.0. The reference trains the
            discriminator trunk at LR/2 (0.5); the paper does not say so.
        discriminator_warmup: bool, default False. The reference's `adam_gan.lua` warm-up: LR/50
            for 10 updates, then LR/5 until 30.
        adam_epsilon: float, default 1e-8. Adam's epsilon (the IWAE presets: 1e-4).
        lr_schedule: str, default "step". "step": x`lr_decay_rate` every `lr_decay_every_epochs`;
            "iwae": Burda et al.'s 8 stages (`iwae_learning_rate_schedule`) fitted to `epochs`.
        precision: str, default "float32". "bfloat16" builds the networks under Keras'
            `mixed_bfloat16` policy (float32 variables, optimizer state, BatchNorm statistics,
            densities and metrics); "auto" picks bfloat16 on CPUs with native bfloat16 arithmetic
            (`keras_crvae.precision`).
    """

    learning_rate: float
    batch_size: int = 128
    epochs: int = 200
    lr_decay_every_epochs: int = 50
    lr_decay_rate: float = 0.5
    recurrent_lr_multiplier: float = 1.0
    recurrent_gradient_clip: float = 5.0
    discriminator_threshold: float = 0.9
    discriminator_trunk_lr_multiplier: float = 1.0
    discriminator_warmup: bool = False
    precision: str = "float32"
    adam_epsilon: float = 1e-8
    lr_schedule: str = "step"

    def __post_init__(self):
        object.__setattr__(self, "precision", crvae_precision.normalize(self.precision))


LR_SCHEDULES = ("step", "iwae")


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named model configuration with its source.

    Attributes:
        name: str.
        description: str.
        source: str, where the numbers come from.
        network: dict of keyword arguments of the network builders (plus `encoder_latent`,
            `decoder_latent` and `builder`).
        model: dict of keyword arguments of the model class.
        training: `TrainingConfig`.
        paper_nll: float or None, the paper's Table 1 NLL (nats) for this row.
    """

    name: str
    description: str
    source: str
    network: dict
    model: dict
    training: TrainingConfig
    paper_nll: float = None

    def override_tables(self, key):
        """`(tables, key)`: the dicts in which an override `key` is looked up, and the key as it
        appears in them (a subclass with more tables, e.g. `TwoStagePreset`, maps prefixed keys)."""
        return [self.network, self.model, dataclasses.asdict(self.training)], key

    def valid_keys(self):
        """The sorted keys an override may name."""
        keys = set(self.network) | set(self.model) | {f.name for f in
                                                      dataclasses.fields(TrainingConfig)}
        return sorted(keys - {"builder"})

    def with_overrides(self, **overrides):
        """A copy with fields of `network`, `model` or `training` replaced; unknown keys raise."""
        network, model = dict(self.network), dict(self.model)
        training = dataclasses.asdict(self.training)
        for key, value in overrides.items():
            for table in (network, model, training):
                if key in table:
                    table[key] = check_override(self, key, value) if key != "builder" else value
                    break
            else:
                valid = sorted(set(network) | set(model) | set(training))
                raise ValueError(f"Unknown override {key!r} for preset {self.name!r}; valid: {valid}.")
        if "time_steps" in overrides and "recurrent_lr_multiplier" not in overrides and (
                "recurrent" in (network["encoder_latent"], network["decoder_latent"])):
            training["recurrent_lr_multiplier"] = 1.0 / network["time_steps"]
        return dataclasses.replace(self, network=network, model=model,
                                   training=TrainingConfig(**training))


# name -> Preset, filled by the family modules through `register`.
PRESETS = {}
# network builder name -> (function(preset, steps_per_epoch, compile, seed) -> model,
#                          function(network dict) -> tuple of networks, or None).
_BUILDERS = {}
# network builder name -> function(model, preset, train_images) -> model (`initialize_from_data`).
_DATA_INITIALIZERS = {}
# Builders of standalone GANs (a generator without an encoder; critic steps take their own rows).
STANDALONE_GAN_BUILDERS = ("dcgan", "stylegan")
# Builders whose presets train with the adversarial job (`crvae train` runs `gan_training`).
GAN_BUILDERS = set()
# network builder name -> the name of the training job of its presets (`keras_crvae.jobs.JOBS`).
JOB_OF_BUILDER = {}


def register(presets, builder, build_model, build_networks=None, gan=False,
             initialize_from_data=None, job=None):
    """Adds a family's presets and its builder.

    Args:
        presets: iterable of `Preset`s (each `network["builder"]` should be `builder`).
        builder: str, the name in the presets' `network["builder"]`.
        build_model: function `(preset, steps_per_epoch, compile, seed) -> keras.Model` called by
            `from_preset` inside the preset's precision scope.
        build_networks: optional function `(network dict) -> tuple of keras.Model`s for
            `build_networks`.
        gan: bool, the family trains with the adversarial job (`is_gan_preset`).
        initialize_from_data: optional function `(model, preset, train_images) -> model`, the
            data-dependent initialisation of a fresh model (`initialize_from_data`).
        job: str, the job that trains the family (a name of `keras_crvae.jobs.JOBS`: "vae",
            "two_stage", "gan", "disentangling"); default "gan" when `gan`, else "vae".
    """
    _BUILDERS[builder] = (build_model, build_networks)
    JOB_OF_BUILDER[builder] = job or ("gan" if gan else "vae")
    if initialize_from_data is not None:
        _DATA_INITIALIZERS[builder] = initialize_from_data
    if gan:
        GAN_BUILDERS.add(builder)
    for preset in presets:
        if preset.name in PRESETS:
            raise ValueError(f"Preset {preset.name!r} is registered twice.")
        PRESETS[preset.name] = preset


def initialize_from_data(model, name, train_images, **overrides):
    """Applies the data-dependent initialisation a preset asks for to a freshly built model.

    Today: the IWAE-table MLP presets (`network["output_bias"] == "train_pixel_mean"`) start the
    decoder's output bias at the logit of the training pixels' mean (Burda et al.'s code); the
    other presets have none and the model is returned unchanged. Training jobs call it once, before
    the first epoch (never on a resumed or continued model).

    Args:
        model: the model `from_preset(name, **overrides)` built.
        name: str, the preset.
        train_images: array `(N, 28, 28[, 1])`, grey levels in [0, 1].
        **overrides: the overrides the model was built with.

    Returns:
        `model`.
    """
    preset = get_preset(name, **overrides)
    initialize = _DATA_INITIALIZERS.get(preset.network["builder"])
    return model if initialize is None else initialize(model, preset, train_images)


def job_name(name):
    """The name of the job that trains preset `name` (str or `Preset`), as its family registered it.

    Standard library only: `keras_crvae.jobs.job_for` answers with it before TensorFlow loads."""
    preset = name if isinstance(name, Preset) else get_preset(name)
    return JOB_OF_BUILDER[preset.network["builder"]]


def is_gan_preset(name):
    """True for presets trained by the adversarial job (the 64x64 VAE-GAN / crVAE-GAN)."""
    return get_preset(name).network["builder"] in GAN_BUILDERS


def gan_batch_multiple(preset):
    """`(multiple, reason)`: every batch size of GAN preset `preset` (a `Preset`) must be a multiple
    of `multiple`: 4 for the VAE-GANs (their 50/25/25 discriminator batch), `critic_steps` for the
    standalone GANs (each critic step takes its own rows)."""
    if preset.network["builder"] not in STANDALONE_GAN_BUILDERS:
        return 4, "the 50/25/25 discriminator batch"
    steps = int(preset.model.get("critic_steps", 1))
    return steps, f"critic_steps={steps}: each critic step takes its own rows"


def is_digit_gan(preset):
    """True for a GAN `Preset` on 28x28 grey MNIST digits (it trains on MNIST arrays)."""
    return tuple(preset.network.get("image_shape", (64, 64, 3))) == (28, 28, 1)


# Settings that count things: an override must be >= 1 (other integers must be >= 0).
_COUNT_SETTINGS = ("base_channels", "latent_channels", "time_steps", "lstm_layers", "batch_size",
                   "epochs", "discriminator_channels", "iwae_samples", "latent_dim", "depth",
                   "width", "critic_steps", "w_dim", "mapping_layers", "max_channels",
                   "r1_interval", "path_length_interval")


def _parse_value(text):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _current_value(preset, key):
    """`(found, value)` of `key` in the preset's tables (`Preset.override_tables`)."""
    tables, key = preset.override_tables(key)
    for table in tables:
        if key in table:
            return True, table[key]
    return False, None


def valid_keys(preset):
    """The setting names `--set` accepts for `preset` (`Preset.valid_keys`)."""
    return preset.valid_keys()



def check_override(preset, key, value):
    """Checks one override against the type and range of the preset's own value.

    Args:
        preset: `Preset`.
        key: str, a key of the preset's tables (`stage2_` prefix for Two-Stage stage 2).
        value: the new value.

    Returns:
        The value, an int widened to float where the preset holds a float; a list as integers where
        the preset's list holds integers, else as floats.

    Raises:
        ValueError: an unknown key, or a value of the wrong type or range; the message names the key
            and what is expected.
    """
    found, current = _current_value(preset, key)
    if not found or key == "builder":
        raise ValueError(f"unknown setting {key!r} for preset {preset.name!r}; valid: "
                         f"{valid_keys(preset)}")
    if isinstance(value, str) and current is not None and not isinstance(current, str):
        # Text from `parse_overrides` without a preset (`--set channels=8,8,16,16`): typed here.
        value = _value_from_text(current, value)
    return _check_typed(preset, key, current, value)


def _check_typed(preset, key, current, value):
    """`check_override` of a value already of its type (or wrong, which raises)."""
    name = key.rsplit("stage2_", 1)[-1]
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{key}={value!r}: expected true or false")
    elif isinstance(current, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}={value!r}: expected an integer")
        low = 1 if name in _COUNT_SETTINGS else 0
        if value < low:
            raise ValueError(f"{key}={value!r}: expected an integer >= {low}")
    elif isinstance(current, float) or (isinstance(current, list) and not isinstance(value, str)):
        numbers = value if isinstance(value, (list, tuple)) else [value]
        if not numbers or any(isinstance(v, bool) or not isinstance(v, (int, float))
                              for v in numbers):
            raise ValueError(f"{key}={value!r}: expected a number"
                             + (" or a list of numbers" if isinstance(current, list) else ""))
        if any(v != v or v in (float("inf"), float("-inf")) for v in numbers):
            raise ValueError(f"{key}={value!r}: expected a finite number")
        if name == "learning_rate" and numbers[0] <= 0:
            raise ValueError(f"{key}={value!r}: expected a number > 0")
        if any(v < 0 for v in numbers):
            raise ValueError(f"{key}={value!r}: expected a number >= 0")
        if isinstance(value, (list, tuple)):
            if isinstance(current, list) and current and all(
                    isinstance(v, int) and not isinstance(v, bool) for v in current):
                # A list of counts (channels, units, an image shape) stays a list of integers.
                if any(float(v) != int(v) for v in numbers):
                    raise ValueError(f"{key}={value!r}: expected a list of integers")
                return [int(v) for v in value]
            return [float(v) for v in value]
        return float(value)
    elif isinstance(current, str) and not isinstance(value, str) and value is not None:
        raise ValueError(f"{key}={value!r}: expected text")  # (None: the setting's default)
    return value


def _value_from_text(current, text):
    """`text` parsed as the type of the preset's value `current` (unparseable text stays text)."""
    if isinstance(current, bool):
        return {"true": True, "1": True, "yes": True, "false": False, "0": False,
                "no": False}.get(text.lower(), text)
    if isinstance(current, (int, float)) or current is None:
        return _parse_value(text)
    if isinstance(current, list):
        parts = [part for part in text.strip("[]").split(",") if part.strip()]
        value = [_parse_value(part.strip()) for part in parts]
        return value[0] if len(value) == 1 and "," not in text else value
    return text


def _parse_typed(preset, key, text):
    """The `--set KEY=TEXT` value as the type of the preset's own value."""
    found, current = _current_value(preset, key)
    if not found or key == "builder":
        raise ValueError(f"--set {key}={text}: unknown setting for preset {preset.name!r}; valid: "
                         f"{', '.join(valid_keys(preset))}")
    value = _value_from_text(current, text)
    try:
        return _check_typed(preset, key, current, value)
    except ValueError as error:
        message = str(error).replace(f"{key}={value!r}", f"--set {key}={text}", 1)
        raise ValueError(message) from None


def parse_overrides(items, preset=None):
    """`["KEY=VALUE", ...]` (command-line `--set` flags) -> dict of overrides.

    Args:
        items: list of "KEY=VALUE" strings.
        preset: str or None. With a preset name, every value is parsed as the type of the preset's
            own value (integer, number, list of numbers, true/false, text) and checked
            (`check_override`), so `--set base_channels=abc` fails here with
            "--set base_channels=abc: expected an integer". Without, ints, floats, true/false and
            none are recognised and the rest is kept as text.

    Raises:
        ValueError: an item without "=", an unknown key or a bad value (with `preset`).
    """
    config = None if preset is None else get_preset(preset)
    overrides = {}
    for item in items:
        if "=" not in item or not item.split("=", 1)[0].strip():
            raise ValueError(f"--set {item}: expected KEY=VALUE, e.g. --set base_channels=8")
        key, value = (part.strip() for part in item.split("=", 1))
        overrides[key] = _parse_value(value) if config is None else _parse_typed(config, key,
                                                                                 value)
    return overrides


def preset_for_run(name, epochs=None, batch_size=None, **overrides):
    """`(preset, overrides)` for a training run: `epochs` / `batch_size` (when given) join the overrides,
    and a run of fewer than one epoch is refused with a clear error."""
    if epochs is not None:
        overrides["epochs"] = int(epochs)
    if batch_size is not None:
        overrides["batch_size"] = int(batch_size)
    config = get_preset(name, **overrides)
    check_shapes(config)
    if config.training.epochs < 1:
        raise ValueError(f"`epochs` must be >= 1, got {config.training.epochs}.")
    return config, overrides


class SettingError(ValueError):
    """Settings that do not fit together (`check_shapes`).

    Attributes:
        problems: dict, setting name -> what would fit (a phrase after "expected"), in the order
            in which to blame them; the CLI names the first one the user gave.
    """

    def __init__(self, problems, values):
        self.problems, self.values = dict(problems), dict(values)
        key, expected = next(iter(self.problems.items()))
        super().__init__(f"`{key}`={self.values[key]!r}: expected {expected}.")


def _divisors(number):
    return [d for d in range(1, number + 1) if number % d == 0]


def check_shapes(preset):
    """Checks the shape rules that the network builders enforce, without Keras (so `crvae train`
    can report them before TensorFlow loads): a channel-recurrent latent (crVAE, crVAE-GAN) splits
    the encoder's `8 * base_channels` output channels and the `latent_channels` into `time_steps`
    blocks, so `time_steps` must divide both.

    Raises:
        SettingError: naming each setting that could be changed to fit, with what would fit.
    """
    network = preset.network
    latents = (network.get("encoder_latent"), network.get("decoder_latent"))
    if "recurrent" not in latents or "time_steps" not in network:
        return
    steps, base, latent = (network["time_steps"], network["base_channels"],
                           network["latent_channels"])
    trunk = 8 * base
    if steps >= 1 and not trunk % steps and not latent % steps:
        return
    import math

    common = math.gcd(trunk, latent)
    fitting = ", ".join(map(str, _divisors(common)))
    problems = {"time_steps": f"a divisor of both 8*base_channels={trunk} and "
                              f"latent_channels={latent} (the crVAE latent splits both into "
                              f"time_steps blocks): one of {fitting}"}
    if steps >= 1 and latent % steps:
        problems["latent_channels"] = (f"a multiple of time_steps={steps} (the crVAE latent "
                                       "splits its channels into time_steps blocks)")
    if steps >= 1 and trunk % steps:
        problems["base_channels"] = (f"a value with 8*base_channels a multiple of "
                                     f"time_steps={steps}")
    raise SettingError(problems, {"time_steps": steps, "base_channels": base,
                                  "latent_channels": latent})


def list_presets():
    """Names of all presets, sorted."""
    return sorted(PRESETS)


def get_preset(name, **overrides):
    """The `Preset` called `name`, with `overrides` applied (see `Preset.with_overrides`)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Available presets: {list_presets()}.")
    return PRESETS[name].with_overrides(**overrides)


def build_networks(network):
    """The networks of a preset's `network` dict: (encoder, decoder) for the MNIST builder,
    (encoder, decoder, discriminator) for a GAN preset."""
    builder = network["builder"]
    if builder not in _BUILDERS:
        raise ValueError(f"Unknown network builder {builder!r}.")
    build = _BUILDERS[builder][1]
    if build is None:
        raise ValueError(f"Builder {builder!r} makes a whole model: use `from_preset`.")
    return build(network)


def iwae_learning_rate_schedule(total_steps, base_learning_rate=1e-3):
    """Burda et al.'s (2016, section 5) schedule squeezed into `total_steps` optimizer steps.

    The paper trains for `3**i` epochs at learning rate `0.001 * 10**(-i/7)`, `i = 0..7` (3,280 epochs;
    the authors' `experiments.py` rounds the factor to one decimal: 1e-3, 7.2e-4, 5.2e-4, 3.7e-4,
    2.7e-4, 1.9e-4, 1.4e-4, 1e-4). Here stage `i` lasts the fraction `3**i / 3280` of `total_steps`,
    so a shorter budget keeps the schedule's shape. Every stage lasts at least one step: a budget of
    fewer than 8 steps (a smoke run) ends inside an early stage. Returns a
    `keras.optimizers.schedules` `PiecewiseConstantDecay`.
    """
    import keras

    if int(total_steps) < 1:
        raise ValueError(f"`total_steps` must be >= 1, got {total_steps}.")
    factors = [round(10.0 ** (1.0 - i / 7.0), 1) / 10.0 for i in range(8)]
    lengths = [3 ** i for i in range(8)]
    boundaries, elapsed = [], 0
    for length in lengths[:-1]:
        elapsed += length
        boundaries.append(max(int(round(total_steps * elapsed / sum(lengths))), len(boundaries) + 1))
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries, [base_learning_rate * factor for factor in factors])


def _learning_rate(training, steps_per_epoch):
    import keras

    if training.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"`lr_schedule` must be one of {LR_SCHEDULES}, got {training.lr_schedule!r}.")
    if training.lr_schedule == "iwae":
        if steps_per_epoch is None:
            return training.learning_rate
        return iwae_learning_rate_schedule(int(steps_per_epoch) * int(training.epochs),
                                           training.learning_rate)
    if steps_per_epoch is None or not training.lr_decay_every_epochs:
        return training.learning_rate
    if int(steps_per_epoch) < 1:
        raise ValueError(f"`steps_per_epoch` must be >= 1, got {steps_per_epoch}.")
    # The reference's step decay: multiply by `-decayLR` every `-step` epochs.
    return keras.optimizers.schedules.ExponentialDecay(
        training.learning_rate,
        decay_steps=int(training.lr_decay_every_epochs) * int(steps_per_epoch),
        decay_rate=training.lr_decay_rate,
        staircase=True,
    )


def make_discriminator_optimizer(training, steps_per_epoch=None):
    """`ThresholdedAdam` of a GAN preset: its LR schedule, threshold, trunk LR and warm-up switches."""
    from keras_crvae.optimizers import ThresholdedAdam

    multipliers = {}
    if training.discriminator_trunk_lr_multiplier != 1.0:
        multipliers["trunk"] = training.discriminator_trunk_lr_multiplier
    return ThresholdedAdam(
        _learning_rate(training, steps_per_epoch), threshold=training.discriminator_threshold,
        warmup=((10, 1 / 50), (30, 1 / 5)) if training.discriminator_warmup else (),
        lr_multipliers=multipliers, beta_1=0.9, beta_2=0.999, epsilon=1e-8)


def make_optimizer(training, steps_per_epoch=None, start_step=0):
    """`MultiplierAdam` with the preset's LR, its step decay (needs `steps_per_epoch`), and the
    recurrent parts' LR multiplier and gradient clipping. `start_step` > 0 continues the LR schedule
    from that step (a run resumed from its weights with a fresh optimizer)."""
    import keras

    from keras_crvae.optimizers import MultiplierAdam, StepOffsetSchedule

    learning_rate = _learning_rate(training, steps_per_epoch)
    if int(start_step) and isinstance(learning_rate,
                                      keras.optimizers.schedules.LearningRateSchedule):
        learning_rate = StepOffsetSchedule(learning_rate, int(start_step))
    clip = training.recurrent_gradient_clip
    return MultiplierAdam(
        learning_rate,
        lr_multipliers={p: training.recurrent_lr_multiplier for p in RECURRENT_VARIABLE_PATTERNS},
        clip_values={p: clip for p in RECURRENT_VARIABLE_PATTERNS} if clip else {},
        beta_1=0.9,
        beta_2=0.999,
        epsilon=training.adam_epsilon,
    )


def from_preset(name, steps_per_epoch=None, compile=True, seed=None, **overrides):
    """Builds (and by default compiles) the model of a preset.

    Args:
        name: str, one of `list_presets()`.
        steps_per_epoch: int or None. When given, the optimizer halves the LR every
            `lr_decay_every_epochs` epochs as the reference does; None keeps it constant.
        compile: bool, default True. Compile with the preset's optimizer.
        seed: int or None. Seed of the posterior sampler. The initial weights are drawn from
            Keras' global generator: call `keras.utils.set_random_seed(n)` before `from_preset`
            for repeatable weights (two calls with the same `seed` alone build different ones).
        **overrides: any key of the preset's `network`, `model` or `training` tables, e.g.
            `time_steps=4`, `base_channels=16`, `learning_rate=1e-3`, `precision="bfloat16"`
            (mixed bfloat16 training, see `keras_crvae.precision`; "auto" picks it on CPUs with
            native bfloat16 arithmetic). Without `precision`, Keras' global dtype policy decides
            when the caller set one (`keras.mixed_precision.set_global_policy("mixed_bfloat16")`
            builds in bfloat16), else the preset's own precision; a policy the library does not
            train in (e.g. "mixed_float16") raises ValueError saying so.

    Returns:
        `keras_crvae.models.VAE`; `VAEGAN` / `CRVAEGAN` (compiled with a generator
        `MultiplierAdam` and a discriminator `ThresholdedAdam`) for the 64x64 GAN presets;
        `keras_crvae.models.TwoStageVAE` for a `TwoStagePreset` (overrides of stage 2 take a
        `stage2_` prefix).

    >>> model = from_preset("mnist_cvae", base_channels=4)
    """
    if "precision" not in overrides:  # Keras' global dtype policy, when the caller set one
        from_policy = crvae_precision.from_global_policy()
        if from_policy is not None:
            overrides["precision"] = from_policy
    preset = get_preset(name, **overrides)
    builder = preset.network["builder"]
    if builder not in _BUILDERS:
        raise ValueError(f"Preset {name!r} names an unknown network builder {builder!r}.")
    # Layers take the precision's dtype policy; variables and optimizer state stay float32.
    with crvae_precision.scope(preset.training.precision):
        return _BUILDERS[builder][0](preset, steps_per_epoch, compile, seed)
