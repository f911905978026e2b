"""`crvae train`: checks a preset's flags and data (`check`), then trains it (`run`).

`check` resolves the preset, its overrides and the run folder's plan (resume, continue, done or
refuse) before TensorFlow loads; `run` hands the checked job to the training function of the job that
`keras_crvae.jobs.job_for(preset)` names (vae, two_stage, gan, disentangling, likelihood) and prints where the
artifacts are. `--stop_after_minutes` stops a resumable job at an epoch end; with
`--light_state_dtype` it also writes the light state a machine without `backup/` resumes from.
"""

import math
import os

from keras_crvae import precision as crvae_precision
from keras_crvae import jobs, presets
from keras_crvae.jobs import runs
from keras_crvae.cli.checks import (check_output_dir, check_tfds_prepared, colour_images,
                                    mnist_images)
from keras_crvae.cli.flags import FLAGS, UsageError, check_positive, flag_text, given, require
from keras_crvae.cli.runtime import load_library, load_mnist_spec, say


def check():
    """Everything `crvae train` can check before TensorFlow loads; returns the job's arguments."""
    preset = FLAGS.preset
    if preset not in presets.PRESETS:
        raise UsageError(f"--preset={preset}: expected one of {', '.join(presets.list_presets())} "
                         "(see `crvae presets`)")
    config = presets.PRESETS[preset]
    kind = jobs.job_for(preset).name  # vae, two_stage, gan or disentangling
    if any(item.split("=", 1)[0].strip() == "help" for item in FLAGS.set):
        return {"kind": "list_settings", "preset": preset,
                "settings": presets.valid_keys(config)}
    try:
        overrides = presets.parse_overrides(FLAGS.set, preset=preset)
    except ValueError as error:
        raise UsageError(str(error)) from None
    # --set epochs=N and --set batch_size=N mean what --epochs / --batch_size mean.
    epochs, batch_size = FLAGS.epochs, FLAGS.batch_size
    for name in ("epochs", "batch_size"):
        if name in overrides:
            value = overrides.pop(name)
            if FLAGS[name].value is not None and FLAGS[name].value != value:
                raise UsageError(f"--set {name}={value} contradicts --{name}={FLAGS[name].value}; "
                                 "give one of them")
            epochs, batch_size = (value, batch_size) if name == "epochs" else (epochs, value)
    check_positive("epochs", "batch_size", "time_steps", "nll_samples", "nll_images",
                   "steps_per_epoch", "stage2_epochs")
    check_positive("num_fid_samples", low=0)
    if FLAGS.learning_rate is not None:
        require(math.isfinite(FLAGS.learning_rate) and FLAGS.learning_rate > 0, "learning_rate",
                "a finite number > 0")
        overrides["learning_rate"] = FLAGS.learning_rate
    if FLAGS.time_steps is not None:
        overrides["time_steps"] = FLAGS.time_steps
    if FLAGS.precision is not None:
        try:
            overrides["precision"] = crvae_precision.normalize(FLAGS.precision)
        except ValueError:
            raise UsageError(f"--precision={FLAGS.precision}: expected float32, bfloat16 or auto "
                             "(fp32 and bf16 also work)") from None

    only = {"gan": ("npz", "image_dir", "tfds", "steps_per_epoch"),
            "two_stage": ("stage2_epochs", "num_fid_samples"),
            "vae": ("nll_samples", "nll_images")}
    family = {"gan": "the 64x64 GAN presets", "two_stage": "the Two-Stage presets",
              "vae": "the MNIST VAE-family presets"}
    shared = {"steps_per_epoch": ("gan", "disentangling"),  # flags of more than one family
              "nll_images": ("vae", "likelihood")}
    for owner, names in only.items():
        for name in names:
            if kind not in shared.get(name, (owner,)) and given(name):
                hint = (" (it trains on --data=PATH.npz[:KEY])" if name == "npz" else "")
                raise UsageError(f"--{name} is for {family[owner]}; --preset={preset} does not "
                                 f"take it{hint}")
    if kind in ("gan", "disentangling") and given("eval_data"):
        raise UsageError(f"--eval_data is for the MNIST and Two-Stage presets; --preset={preset} "
                         "does not take it")
    if kind == "disentangling" and (given("data") or FLAGS.strategy != "default"):
        name = "data" if given("data") else "strategy"
        raise UsageError(f"{flag_text(name)}: --preset={preset} trains on procedural sprites "
                         "drawn on one device; expected no --data and --strategy=default")
    _check_stop_after_minutes(preset)
    colour_shape = tuple(config.network.get("image_shape", (28, 28, 1)))
    if kind == "vq_vae" and colour_shape != (28, 28, 1) and not given("data"):
        raise UsageError(f"--preset={preset} trains on {colour_shape} images: give "
                         "--data=PATH.npz[:KEY] (e.g. ../shared/data/celeba64_train.npz) and "
                         "optionally --eval_data (default: the last "
                         f"{HELD_OUT_IMAGES} images of --data, never trained on)")
    if kind in ("two_stage", "likelihood", "vq_vae") and FLAGS.strategy != "default":
        job_text = {"two_stage": "Two-Stage"}.get(kind, kind)
        raise UsageError(f"--strategy={FLAGS.strategy}: the {job_text} job runs on one device; "
                         "expected default")
    digits = kind == "gan" and presets.is_digit_gan(config)
    if digits:
        for name in ("npz", "image_dir", "tfds"):
            if given(name):
                raise UsageError(f"--{name} is for the 64x64 colour GAN presets; --preset={preset} "
                                 "trains on MNIST digits (--data=embedded, PATH.npz[:KEY] or "
                                 "tfds:mnist)")

    try:
        full_overrides = dict(overrides)
        full_overrides.update({k: v for k, v in (("epochs", epochs), ("batch_size", batch_size))
                               if v is not None})
        if kind == "two_stage" and FLAGS.stage2_epochs is not None:
            full_overrides["stage2_epochs"] = FLAGS.stage2_epochs
        resolved = presets.get_preset(preset, **full_overrides)
    except ValueError as error:
        raise UsageError(str(error)) from None
    try:  # the builders' shape rules, here before TensorFlow loads
        presets.check_shapes(resolved)
    except presets.SettingError as error:
        raise UsageError(_setting_problem(error, preset)) from None
    if kind == "gan":
        multiple, reason = presets.gan_batch_multiple(resolved)
        effective_batch = batch_size or resolved.training.batch_size
        require(effective_batch % multiple == 0, "batch_size", f"a multiple of {multiple} "
                f"({reason})", effective_batch)

    if resolved.network.get("builder") == "stage2":  # Stage2 trains on a trained Stage1 model
        stage1_model = resolved.network.get("stage1_model")
        if stage1_model in (None, "", "none", "None"):
            raise UsageError(f"--preset={preset} is a Stage2 preset: pass the trained Stage1 model "
                             "with --set stage1_model=PATH.keras (e.g. "
                             f"{resolved.network['stage1_preset']}_run/model.keras)")
        if not os.path.isfile(os.path.expanduser(stage1_model)):
            raise UsageError(f"--set stage1_model={stage1_model}: no such file; expected a trained "
                             "Stage1 .keras model (VAEGAN / CRVAEGAN)")

    job = {"kind": kind, "preset": preset, "epochs": epochs, "batch_size": batch_size,
           "overrides": overrides}
    if kind == "disentangling":
        job["data_spec"] = "procedural sprites"
    elif digits:
        job["data_spec"], job["arrays"] = mnist_images("data", "embedded", (28, 28, 1))
    elif kind == "gan":
        sources = [name for name in ("data", "npz", "image_dir", "tfds") if given(name)]
        side = int(resolved.network.get("output_size", 64))
        if len(sources) != 1:
            raise UsageError(
                f"--preset={preset} trains on {side}x{side} colour images: give one of "
                "--data=PATH.npz[:KEY]"
                ", --image_dir=DIR or --tfds=NAME (with --data_dir)"
                + (f"; got {', '.join('--' + s for s in sources)}" if sources else ""))
        source = sources[0]
        spec = FLAGS[source].value
        job["data_spec"] = f"{source}={spec}"
        if source in ("data", "npz"):
            job["arrays"] = colour_images(source, spec)
        elif source == "image_dir":
            require(os.path.isdir(spec), "image_dir", "an existing folder of image files")
            job["image_dir"] = spec
        else:
            require(FLAGS.data_dir is not None, "data_dir", "the TFDS data directory where "
                    f"--tfds={spec} is prepared", "(none)")
            check_tfds_prepared("tfds", spec, spec)
            job["tfds_name"] = spec
    else:
        image_shape = tuple(config.network.get("image_shape", (28, 28, 1)))
        job["data_spec"], job["train_images"] = mnist_images("data", "embedded", image_shape)
        if kind == "vq_vae" and image_shape != (28, 28, 1) and not given("eval_data"):
            # Colour images without --eval_data: the last HELD_OUT_IMAGES are held out.
            images = job["train_images"]
            require(len(images) > 2 * HELD_OUT_IMAGES, "data", f"more than "
                    f"{2 * HELD_OUT_IMAGES} images (the last {HELD_OUT_IMAGES} are held out for "
                    f"evaluation without --eval_data); got {len(images)}")
            job["train_images"], job["eval_images"] = (images[:-HELD_OUT_IMAGES],
                                                       images[-HELD_OUT_IMAGES:])
            job["eval_spec"] = f"{job['data_spec']} (its last {HELD_OUT_IMAGES} images)"
            job["data_spec"] = f"{job['data_spec']} (all but its last {HELD_OUT_IMAGES} images)"
        else:
            job["eval_spec"], job["eval_images"] = mnist_images("eval_data", "embedded:test",
                                                                image_shape)

    _check_batch_size(job, kind, batch_size or resolved.training.batch_size)

    if not given("output_dir"):
        FLAGS.output_dir = runs.default_output_dir(preset)
    check_output_dir("output_dir")
    try:
        # Last: one process per folder from here to the end (multi-worker: each worker locks
        # its own folder when the job starts, as only the job knows which worker it is).
        if FLAGS.strategy != "multi_worker":
            lock = runs.output_lock(FLAGS.output_dir)
            if lock.took_over:
                say(f"Taking over {os.path.join(FLAGS.output_dir, runs.LOCK_FILE)} of pid "
                    f"{lock.took_over.get('pid')} (no longer running)")
        job["plan"] = runs.plan_run(FLAGS.output_dir, preset, runs.run_settings(resolved),
                                    runs.total_epochs(resolved), fresh=FLAGS.fresh,
                                    resumable=jobs.job_for(preset).resumable)
    except runs.RunConflictError as error:
        raise UsageError(str(error)) from None
    return job


# A colour VQ-VAE preset (the faces) without --eval_data is scored on the last images of --data.
HELD_OUT_IMAGES = 500

# Images in the embedded MNIST subset (`keras_crvae.data.load_embedded_mnist`), known here
# without loading it.
EMBEDDED_IMAGES = {"embedded": 10000, "embedded:train": 10000, "embedded:test": 1000}


def _check_batch_size(job, kind, batch_size):
    """A batch larger than the training images would give no batch at all (drop_remainder)."""
    if kind == "disentangling" or job.get("image_dir") or job.get("tfds_name"):
        return  # procedural, or counted only once TensorFlow loads
    arrays = job.get("arrays", job.get("train_images"))
    if arrays is not None:
        count = len(arrays)
    elif job.get("data_spec") in EMBEDDED_IMAGES:
        count = EMBEDDED_IMAGES[job["data_spec"]]
    else:
        return  # tfds:NAME: counted once TensorFlow loads
    if batch_size > count:
        name = "batch_size" if given("batch_size") else None
        shown = (flag_text(name) if name else f"--set batch_size={batch_size}" if
                 any(item.split("=", 1)[0].strip() == "batch_size" for item in FLAGS.set)
                 else f"--preset={FLAGS.preset}'s batch_size={batch_size}")
        raise UsageError(f"{shown}: expected at most the {count:,} training images of "
                         f"{job['data_spec']} (every batch is full; the last partial one is "
                         "dropped)")


def _setting_problem(error, preset):
    """The one line of a `presets.SettingError`, naming the flag the user gave for it."""
    given_by_set = {item.split("=", 1)[0].strip(): item.split("=", 1)[1].strip()
                    for item in FLAGS.set if "=" in item}
    for key, expected in error.problems.items():
        if key == "time_steps" and given("time_steps"):
            return f"{flag_text('time_steps')}: expected {expected}"
        if key in given_by_set:
            return f"--set {key}={given_by_set[key]}: expected {expected}"
    key, expected = next(iter(error.problems.items()))
    return f"--preset={preset} with {key}={error.values[key]}: expected {expected}"


def _check_stop_after_minutes(preset):
    value = FLAGS.stop_after_minutes
    require(value is None or (math.isfinite(value) and value >= 0), "stop_after_minutes",
            "a number of minutes >= 0 (0: no limit)")
    if value and not jobs.job_for(preset).resumable:
        raise UsageError(f"{flag_text('stop_after_minutes')}: --preset={preset} cannot resume a "
                         "stopped run; expected no --stop_after_minutes")
    if given("light_state_dtype") and not jobs.job_for(preset).resumable:
        raise UsageError(f"{flag_text('light_state_dtype')}: --preset={preset} cannot resume a "
                         "stopped run; expected no --light_state_dtype")


def run(job):
    """Trains the job `check` returned; returns the exit status."""
    if job["kind"] == "list_settings":
        say(f"--set KEY=VALUE keys of {job['preset']}: {', '.join(job['settings'])}")
        return 0
    plan = job["plan"]
    if plan.action == "done":  # decided before TensorFlow loads; other plans are announced by the job
        say(plan.message)
        return 0
    say(f"Loading TensorFlow and the data for {job['preset']} ...")  # ~5-20 s of silence else
    load_library(FLAGS.verbose)
    from keras_crvae import distribute, training

    output_dir = FLAGS.output_dir
    if job["kind"] == "disentangling":
        from keras_crvae.sprites_training import train_sprites

        train_sprites(job["preset"], output_dir=output_dir, epochs=job["epochs"],
                      batch_size=job["batch_size"], steps_per_epoch=FLAGS.steps_per_epoch,
                      seed=FLAGS.seed, fresh=FLAGS.fresh, **job["overrides"])
        _done(output_dir, "model.keras, samples.png, reconstructions.png, traversals.png, "
              "metrics.json, history.csv")
        return 0
    if job["kind"] != "gan":
        for images, spec, split in (("train_images", "data_spec", "train"),
                                    ("eval_images", "eval_spec", "test")):
            if job[images] is None:
                job[images] = load_mnist_spec(job[spec], split)
    if job["kind"] == "two_stage":
        training.train_two_stage(
            job["preset"], train_images=job["train_images"],
            eval_images=job["eval_images"], output_dir=output_dir, epochs=job["epochs"],
            stage2_epochs=FLAGS.stage2_epochs, batch_size=job["batch_size"],
            num_fid_samples=FLAGS.num_fid_samples, seed=FLAGS.seed, fresh=FLAGS.fresh,
            data_spec=job["data_spec"], eval_spec=job["eval_spec"], **job["overrides"])
        _done(output_dir, "model.keras, samples.png (stage 2), samples_stage1.png, "
              "reconstructions.png, metrics.json, history_stage1.csv, history_stage2.csv")
        return 0
    if job["kind"] == "vq_vae":
        from keras_crvae.jobs.vq_vae import train_vq_vae

        if train_vq_vae(job["preset"], train_images=job["train_images"],
                        eval_images=job["eval_images"], output_dir=output_dir,
                        epochs=job["epochs"], batch_size=job["batch_size"], seed=FLAGS.seed,
                        fresh=FLAGS.fresh, data_spec=job["data_spec"],
                        eval_spec=job["eval_spec"], stop_after_minutes=FLAGS.stop_after_minutes,
                        light_state_dtype=FLAGS.light_state_dtype,
                        **job["overrides"]).get("stopped"):
            return 0  # the job said so; the run resumes on the next `crvae train`
        _done(output_dir, "model.keras, samples.png, reconstructions.png, metrics.json, "
              "history.csv, history_prior.csv")
        return 0
    if job["kind"] == "likelihood":
        from keras_crvae.jobs.likelihood import train_likelihood

        if train_likelihood(
                job["preset"], train_images=job["train_images"], eval_images=job["eval_images"],
                output_dir=output_dir, epochs=job["epochs"], batch_size=job["batch_size"],
                nll_images=FLAGS.nll_images if given("nll_images") else None, seed=FLAGS.seed,
                fresh=FLAGS.fresh, data_spec=job["data_spec"], eval_spec=job["eval_spec"],
                stop_after_minutes=FLAGS.stop_after_minutes,
                light_state_dtype=FLAGS.light_state_dtype, **job["overrides"]).get("stopped"):
            return 0  # the job said so; the run resumes on the next `crvae train`
        _done(output_dir, "model.keras, samples.png, samples_t0.7.png, metrics.json, "
              "history.csv")
        return 0
    strategy = distribute.make_strategy(FLAGS.strategy)  # before any TF op (multi-worker)
    if job["kind"] == "gan":
        from keras_crvae.gan_training import train_gan

        if job.get("arrays") is None and job.get("image_dir") is None and \
                job.get("tfds_name") is None:  # an MNIST GAN preset on 'embedded' / 'tfds:'
            job["arrays"] = load_mnist_spec(job["data_spec"], "train")
        if train_gan(job["preset"], image_dir=job.get("image_dir"), tfds_name=job.get("tfds_name"),
                     arrays=job.get("arrays"), data_dir=FLAGS.data_dir, output_dir=output_dir,
                     epochs=job["epochs"], steps_per_epoch=FLAGS.steps_per_epoch,
                     batch_size=job["batch_size"], fresh=FLAGS.fresh, strategy=strategy,
                     seed=FLAGS.seed, data_spec=job["data_spec"],
                     stop_after_minutes=FLAGS.stop_after_minutes,
                     light_state_dtype=FLAGS.light_state_dtype,
                     **job["overrides"]).get("stopped"):
            return 0  # the job said so; the run resumes on the next `crvae train`
        grids = "samples.png" + ("" if _is_standalone_gan(job["preset"]) else
                                 ", reconstructions.png")
        _done(output_dir, f"model.keras, {grids}, metrics.json, history.csv, tensorboard/")
        return 0
    stopped = training.train(
        job["preset"], train_images=job["train_images"], eval_images=job["eval_images"],
        output_dir=output_dir, epochs=job["epochs"], batch_size=job["batch_size"],
        nll_samples=FLAGS.nll_samples, nll_images=FLAGS.nll_images, seed=FLAGS.seed,
        fresh=FLAGS.fresh, strategy=strategy, data_spec=job["data_spec"],
        eval_spec=job["eval_spec"], stop_after_minutes=FLAGS.stop_after_minutes,
        light_state_dtype=FLAGS.light_state_dtype, **job["overrides"]).get("stopped")
    if stopped:  # the job said so; the run resumes on the next `crvae train`
        return 0
    _done(output_dir, "model.keras, samples.png, reconstructions.png, metrics.json, history.csv")
    return 0


def _done(output_dir, artifacts):
    """The last line of a finished run: where it is and what it holds (run.json: the record)."""
    say(f"Done. Artifacts in {os.path.abspath(output_dir)}: {artifacts}, run.json (settings, "
        "precision, state)")


def _is_standalone_gan(preset):
    """Whether the preset trains a GAN without an encoder (no reconstructions.png)."""
    from keras_crvae.presets.core import STANDALONE_GAN_BUILDERS

    return presets.get_preset(preset).network["builder"] in STANDALONE_GAN_BUILDERS

