"""What the MNIST reproduction scripts share (`reproduce_table1.py`, `reproduce_iwae_table.py`).

A row is one preset: train it on the dynamically binarized MNIST training images (resumable:
`keras.callbacks.BackupAndRestore`, weights kept once trained), then score it on statically binarized
images (ELBO, importance-sampled NLL, active units per stochastic layer). Each script defines its rows,
its defaults and its table; this module gives the flags, the data, the training loop of a row, its
evaluation and the loop over rows (finished rows are skipped, rows of earlier invocations join the
table).
"""

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import time
import types

import numpy as np
from absl import flags

# The long-run engine (time budget, SIGTERM stop, light state, stretch records) is the library's
# (`keras_crvae.jobs.longrun`). It loads on first use, not here: importing the library loads
# TensorFlow, and a tool's flag checks answer before that (tools/reproduce/ship_pretrained.py). Its
# names stay importable from this module for the scripts (`reproduction.load_weights_npz`, ...).
_LONGRUN_NAMES = frozenset({
    "PROGRESS", "RESUME_INFO", "RESUME_WEIGHTS", "SESSIONS", "TimeLimitReached", "limit_threads",
    "load_weights_npz", "save_weights_npz", "read_json_list", "resume_epoch"})


def _longrun():
    from keras_crvae.jobs import longrun

    return longrun


def __getattr__(name):
    if name in _LONGRUN_NAMES:
        return getattr(_longrun(), name)
    raise AttributeError(f"module 'reproduction' has no attribute {name!r}")


ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"
FLAGS = flags.FLAGS
# A finished row's weights without the optimizer's state (committed: 1.6-2.0 MB for the IWAE-table
# MLPs), and where `--rescore` writes its scores.
# `keras_crvae.jobs.runs.FINAL_WEIGHTS` (named here too, so that checks need no TensorFlow).
FINAL_WEIGHTS, RESCORE = "final_weights.npz", "rescore.json"
# A trained row's NLL, kept part by part (`score_nll_in_parts`); a --rescore keeps its own.
SCORE_PARTS, RESCORE_PARTS = "score_parts.json", "rescore_parts.json"


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The protocol of one invocation, after --smoke and explicit flags are resolved."""

    epochs: int
    num_samples: int
    num_valid: int
    num_train: int


def define_flags(output_dir, defaults, smoke, max_decoder_batch, steps_per_execution,
                 score_part_images=0):
    """The flags every reproduction script takes.

    Args:
        output_dir: str, default `--output_dir`.
        defaults, smoke: `RunSettings` of a full run and of `--smoke` (0: all images).
        max_decoder_batch: int, default rows per log-weight call of the NLL.
        steps_per_execution: int, default `--steps_per_execution`.
        score_part_images: int, default `--score_part_images` (0: a row's NLL in one part).
    """
    flags.DEFINE_list("presets", None, "Rows to run, in order (default: the script's table).")
    flags.DEFINE_string("output_dir", output_dir, "Where models and results go.")
    flags.DEFINE_string("train_data", str(SHARED_DATA / "mnist.npz") + ":x_train",
                        "Training images (grey levels), PATH.npz:KEY.")
    flags.DEFINE_string("valid_data", str(SHARED_DATA / "binarized_mnist.npz") + ":x_valid",
                        "Statically binarized evaluation images, PATH.npz:KEY.")
    flags.DEFINE_integer("epochs", None, f"Epochs per row (default {defaults.epochs}; smoke "
                         f"{smoke.epochs}).")
    flags.DEFINE_integer("num_samples", None, f"Importance samples k of the NLL (default "
                         f"{defaults.num_samples}; smoke {smoke.num_samples}).")
    flags.DEFINE_integer("num_valid", None, f"Validation images evaluated (default all; smoke "
                         f"{smoke.num_valid}); the training set holds out the sources of all of "
                         "them either way.")
    flags.DEFINE_integer("num_train", None, f"Training images used (default all; smoke "
                         f"{smoke.num_train}).")
    flags.DEFINE_boolean("hold_out_valid_sources", True,
                         "Drop from the training images the grey sources of the evaluated validation "
                         "images (binarized-MNIST validation images are binarizations of MNIST "
                         "training images; `data.binarization_sources`), so the validation split is "
                         "held out.")
    flags.DEFINE_integer("eval_batch_size", 100, "Images per importance-sampling batch.")
    flags.DEFINE_integer("max_decoder_batch", max_decoder_batch,
                         "Rows per log-weight call in the NLL (bounds memory).")
    flags.DEFINE_integer("steps_per_execution", steps_per_execution,
                         "Training steps between batch callbacks (Keras `steps_per_execution`; "
                         "speed only: the same steps, order, noise and schedule, but the loop no "
                         "longer waits for every step's loss; the NaN check sees every Nth step).")
    flags.DEFINE_multi_string("set", [], "Preset overrides KEY=VALUE applied to every row.")
    flags.DEFINE_boolean("smoke", False, f"{smoke.epochs} epoch(s) on {smoke.num_train} images, "
                         f"k={smoke.num_samples} on {smoke.num_valid} validation images.")
    flags.DEFINE_integer("threads", 0, "TensorFlow intra- and inter-op threads (0: TensorFlow's "
                         "default).")
    flags.DEFINE_float("stop_after_minutes", 0.0,
                       "Stop training at the first epoch end after this many minutes of this "
                       "invocation (0: never); the row resumes from there on the next run. For lent "
                       "machines with a hard time limit. SIGTERM (`kill PID`) stops the same way at "
                       "the end of the current epoch.")
    flags.DEFINE_integer("float32_check_images", 1000,
                         "For a row trained in mixed bfloat16 (--set=precision=bfloat16): also "
                         "score the first N validation images with a float32 copy of the model "
                         "(same weights, same noise) and record both NLLs in its result; the row's "
                         "NLL stays the bfloat16 one (0: no check).")
    flags.DEFINE_integer("score_part_images", score_part_images,
                         f"Images per part of a trained row's NLL (and of its float32 check): "
                         f"every finished part is kept in PRESET/{SCORE_PARTS}, so a scoring "
                         "stopped between parts by --stop_after_minutes or SIGTERM, or killed, "
                         "resumes at its first missing part on the next run. Part i draws its "
                         "noise from --seed + i (0: one part, the whole set, from --seed).")
    flags.DEFINE_integer("progress_images", 1000,
                         "When --stop_after_minutes stops a row: validation images of the progress "
                         "NLL written to PRESET/progress.json (0: none).")
    flags.DEFINE_integer("progress_samples", 0,
                         "Importance samples k of the progress NLL (0: the row's --num_samples). A "
                         "progress score is an indicator between sessions, not a result: a smaller k "
                         "keeps it to minutes for the convolutional rows on a CPU.")
    flags.DEFINE_enum("light_state_dtype", "float32", ["float32", "float16"],
                      "Storage dtype of the light state's weights (resume_weights.npz). float16 "
                      "halves a committed state (31 MB instead of 62 for mnist_crvae); an array "
                      "whose values float16 cannot hold stays float32.")
    flags.DEFINE_boolean("rescore", False,
                         "Score the finished rows of --presets again from their committed weights "
                         f"(PRESET/{FINAL_WEIGHTS}) with this invocation's settings, into "
                         f"PRESET/{RESCORE}, and print the committed and the new NLL side by side; "
                         "trains nothing and leaves result.json and the tables as they are. Pass "
                         "the --epochs the row trained with.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_integer("verbose", 2, "Keras fit verbosity (2: one line per epoch).")


def resolve_settings(defaults, smoke):
    """`RunSettings` from the flags: explicit values, else `smoke` under --smoke, else `defaults`."""
    base = smoke if FLAGS.smoke else defaults
    return RunSettings(epochs=FLAGS.epochs or base.epochs,
                       num_samples=FLAGS.num_samples or base.num_samples,
                       num_valid=FLAGS.num_valid or base.num_valid,
                       num_train=FLAGS.num_train or base.num_train)


# Median log-likelihood (nats) of the validation images' best grey matches below which they are not
# binarizations of the training images (`data.binarization_sources`; real sources score far above,
# the best match of an unrelated image far below, `tests/test_data.py`).
MAX_SOURCE_NATS = -100.0
# Where the validation images' sources are kept between runs (keyed by the arrays' SHA-1).
SOURCES_CACHE = os.path.join("~", ".keras", "keras_crvae", "cache")


def load_data(settings):
    """(train, valid) image arrays in [0, 1] from --train_data / --valid_data, cut to the settings.

    With --hold_out_valid_sources (default) the training images that the evaluated validation images
    were binarized from are dropped first (the default data: 60,000 MNIST training images less the
    ~10,000 sources of the binarized-MNIST validation split)."""
    from keras_crvae import data

    train_images = data.load_npz_images(FLAGS.train_data)
    valid_images = data.load_npz_images(FLAGS.valid_data)
    if valid_images.min() < 0 or not set(valid_images.reshape(-1)[:10000].tolist()) <= {0.0, 1.0}:
        raise ValueError("--valid_data must be statically binarized (values 0/1).")
    if FLAGS.hold_out_valid_sources:
        sources, log_likelihood = data.binarization_sources(
            valid_images, train_images, return_log_likelihood=True, cache_dir=SOURCES_CACHE)
        if np.median(log_likelihood) < MAX_SOURCE_NATS:
            raise ValueError(
                f"--valid_data does not look like binarizations of --train_data images (median best "
                f"match {np.median(log_likelihood):.0f} nats, below {MAX_SOURCE_NATS}); pass "
                "--nohold_out_valid_sources to train on all of --train_data.")
        sources = np.unique(sources)
        train_images = np.delete(train_images, sources, axis=0)
        print(f"Held out the {len(sources)} training images that the {len(valid_images)} "
              f"validation images were binarized from: {len(train_images)} training images.",
              flush=True)
    # The whole validation split is held out whatever --num_valid scores, so a row's training set
    # does not depend on how many images its score uses (50,009 for MNIST).
    if settings.num_valid:
        valid_images = valid_images[:settings.num_valid]
    if settings.num_train:
        train_images = train_images[:settings.num_train]
    return train_images, valid_images


def build_row(name, folder, settings, overrides, train_images=None):
    """The model of one row, seeded, its config written to `folder/config.json`.

    Returns `(preset, model, compile_model)`: `compile_model(start_step)` compiles `model` with the
    preset's optimizer, its learning-rate schedule starting at optimizer step `start_step`, and
    --steps_per_execution. With `train_images`, the preset's data-dependent initialisation runs
    (`presets.initialize_from_data`: the IWAE MLPs' output bias from the pixel means).
    """
    import keras

    import keras_crvae

    preset = keras_crvae.get_preset(name, epochs=settings.epochs, **overrides)
    steps_per_epoch = len(train_images) // preset.training.batch_size
    keras.utils.set_random_seed(FLAGS.seed)
    model = keras_crvae.from_preset(name, steps_per_epoch=steps_per_epoch, seed=FLAGS.seed,
                                    compile=False, epochs=settings.epochs, **overrides)
    keras_crvae.presets.initialize_from_data(model, name, train_images, epochs=settings.epochs,
                                             **overrides)

    def compile_model(start_step):
        model.compile(keras_crvae.presets.make_optimizer(preset.training, steps_per_epoch,
                                                         start_step=start_step),
                      steps_per_execution=min(FLAGS.steps_per_execution, steps_per_epoch))

    write_config(folder, name, preset)
    return preset, model, compile_model


def write_config(folder, name, preset):
    """`folder/config.json`: the row's preset (network, model, training). Not under --rescore, which
    leaves a finished row's files as they are."""
    if FLAGS.rescore:
        return
    (pathlib.Path(folder) / "config.json").write_text(json.dumps(
        {"preset": name, "network": preset.network, "model": preset.model,
         "training": dataclasses.asdict(preset.training)}, indent=2))


_STARTED = time.time()




def score_nll(model, images, settings, verbose=0):
    """`evaluation.importance_sampled_nll` of `images` with the run's k, batch sizes and seed: the
    same posterior noise for the same images whichever model is scored."""
    from keras_crvae import evaluation

    return evaluation.importance_sampled_nll(model, images, num_samples=settings.num_samples,
                                             batch_size=FLAGS.eval_batch_size, seed=FLAGS.seed,
                                             max_decoder_batch=FLAGS.max_decoder_batch,
                                             verbose=verbose)


def weights_fingerprint(model):
    """SHA-256 (first 16 hex digits) of `model.get_weights()`: which weights a kept score is of."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def score_nll_in_parts(model, images, settings, folder, label):
    """`score_nll` of `images` in parts of --score_part_images images, resumable across runs.

    Part i (images `[i * P, (i + 1) * P)`) draws its posterior noise from `--seed + i`; with one
    part (P = 0 or P >= N) this is exactly `score_nll(model, images, settings)`. Each finished part's
    per-image NLL and Monte Carlo error are written at once to `folder/score_parts.json`
    (`rescore_parts.json` under --rescore), under `label` with the settings they depend on and
    `weights_fingerprint(model)` (a mismatch starts that label over); scoring more images later
    adds parts. Before each part the scoring stops, raising `TimeLimitReached`, once
    --stop_after_minutes have passed since the invocation began, a SIGTERM came or a queue's
    deadline passed (`longrun.TimeBudget.stop_reason`; the part under way finishes first, and the
    stop is reported to the queue); a kill loses at most the part under way.

    Returns:
        `(estimate, seconds)`: the `keras_crvae.evaluation.LikelihoodEstimate` of all of `images`,
        and the scoring seconds of all its parts (whichever sessions scored them).
    """
    import keras

    from keras_crvae import evaluation, io as crvae_io

    longrun = _longrun()
    folder = pathlib.Path(folder)
    path = folder / (RESCORE_PARTS if FLAGS.rescore else SCORE_PARTS)
    count = len(images)
    part_images = FLAGS.score_part_images if 0 < FLAGS.score_part_images < count else count
    num_parts = -(-count // part_images)
    # What a kept part depends on (not the number of images: more images add parts).
    key = {"num_samples": int(settings.num_samples), "part_images": int(part_images),
           "seed": int(FLAGS.seed),
           "eval_batch_size": int(FLAGS.eval_batch_size),
           "max_decoder_batch": int(FLAGS.max_decoder_batch),
           "weights": weights_fingerprint(model)}
    kept = json.loads(path.read_text()) if path.exists() else {}
    entry = kept.get(label)
    if entry is not None and entry.get("settings") != key:
        print(f"{folder.name}: the kept parts of {label} are of other settings or weights "
              f"({entry.get('settings')}); scoring {label} again.", flush=True)
        entry = None
    entry = entry or {"settings": key, "parts": {}}
    budget = longrun.TimeBudget(FLAGS.stop_after_minutes * 60.0, start=_STARTED,
                                label=f"--stop_after_minutes={FLAGS.stop_after_minutes:g}")
    with longrun.stop_on_sigterm(budget):
        for index in range(num_parts):
            part = images[index * part_images:(index + 1) * part_images]
            kept_part = entry["parts"].get(str(index))
            if kept_part is not None and len(kept_part["nll"]) == len(part):
                continue
            reason = budget.stop_reason()  # SIGTERM, --stop_after_minutes or a queue's deadline
            if reason:
                longrun.report_stop(str(folder), reason)  # a queue resumes it, not "finished"
                raise longrun.TimeLimitReached(
                    f"{folder.name}: scoring stopped by {reason} with {len(entry['parts'])} of "
                    f"{num_parts} parts of {label} kept in {path.name}; run the same command "
                    "again to resume.")
            started = time.time()
            estimate = evaluation.importance_sampled_nll(
                model, part, num_samples=settings.num_samples, batch_size=FLAGS.eval_batch_size,
                seed=FLAGS.seed + index, max_decoder_batch=FLAGS.max_decoder_batch,
                verbose=1 if num_parts == 1 else 0)
            entry["parts"][str(index)] = {
                # The backend draws the noise: two rows' parts pair only from the same one.
                "backend": keras.backend.backend(),
                "nll": [float(x) for x in estimate.per_example],
                "monte_carlo_error": None if estimate.monte_carlo_error is None else [
                    float(x) for x in estimate.monte_carlo_error],
                "seconds": round(time.time() - started, 1)}
            kept[label] = entry
            crvae_io.write_json(kept, path)
            if num_parts > 1:
                print(f"{folder.name}: {label} part {index + 1}/{num_parts}: NLL "
                      f"{estimate.mean:.2f} on {len(part)} images "
                      f"({entry['parts'][str(index)]['seconds']:.0f} s)", flush=True)
    parts = [entry["parts"][str(index)] for index in range(num_parts)]
    per_example = np.concatenate([np.asarray(p["nll"], np.float64) for p in parts])
    errors = None if any(p["monte_carlo_error"] is None for p in parts) else np.concatenate(
        [np.asarray(p["monte_carlo_error"], np.float64) for p in parts])
    spread = float(np.std(per_example, ddof=1) / np.sqrt(count)) if count > 1 else float("nan")
    seconds = round(sum(p["seconds"] for p in parts), 1)
    return evaluation.LikelihoodEstimate(float(per_example.mean()), spread, per_example,
                                         int(settings.num_samples), errors), seconds


def save_progress(model, folder, epochs_done, valid_images, settings):
    """Appends a progress score to `PRESET/progress.json`: the NLL (k = settings.num_samples, or
    --progress_samples) and ELBO on the first --progress_images validation images of a row that
    --stop_after_minutes or SIGTERM stopped (after `longrun.save_light_state`)."""
    from keras_crvae import evaluation

    if not FLAGS.progress_images or valid_images is None:
        return
    images = valid_images[:FLAGS.progress_images]
    if FLAGS.progress_samples:
        settings = dataclasses.replace(settings, num_samples=FLAGS.progress_samples)
    start = time.time()
    nll = score_nll(model, images, settings, verbose=1)
    bound = evaluation.elbo(model, images, batch_size=FLAGS.eval_batch_size, seed=FLAGS.seed)
    folder = pathlib.Path(folder)
    _longrun().append_json_list(folder / _longrun().PROGRESS, {
        "epoch": int(epochs_done), "num_images": int(len(images)),
        "num_samples": int(settings.num_samples),
        "nll": round(float(nll.mean), 3), "nll_standard_error": round(float(nll.standard_error), 3),
        "elbo": round(float(bound["elbo"].mean), 3),
        "eval_seconds": round(time.time() - start, 1)})
    print(f"{folder.name}: epoch {epochs_done}: NLL {nll.mean:.2f} +- {nll.standard_error:.2f} "
          f"(k={settings.num_samples}, {len(images)} validation images)", flush=True)


def train_row(model, folder, train_images, batch_size, epochs, compile_model, valid_images=None,
              settings=None, **fit_kwargs):
    """`keras_crvae.jobs.longrun.train_resumably` with this invocation's flags: --seed, --verbose,
    --stop_after_minutes (counted from the start of the invocation), --light_state_dtype,
    --threads and --rescore; a stopped row also gets a progress score (`save_progress`).

    Returns the train-info dict; raises `TimeLimitReached` when the row stopped before its end."""
    return _longrun().train_resumably(
        model, folder, train_images, batch_size, epochs, compile_model, seed=FLAGS.seed,
        verbose=FLAGS.verbose, stop_after_seconds=FLAGS.stop_after_minutes * 60.0, start=_STARTED,
        stop_label=f"--stop_after_minutes={FLAGS.stop_after_minutes}",
        light_state_dtype=FLAGS.light_state_dtype, threads=FLAGS.threads,
        scored_only=FLAGS.rescore,
        on_stop=lambda trained, epochs_done: save_progress(trained, folder, epochs_done,
                                                           valid_images, settings),
        **fit_kwargs)


def evaluate_row(model, valid_images, settings, folder, float32_model=None):
    """ELBO, NLL (k = settings.num_samples) and active units per stochastic layer of a trained row.

    The NLL is scored in parts kept in `folder` (`score_nll_in_parts`: a scoring stopped by the
    time budget or SIGTERM raises `TimeLimitReached` and resumes on the next run). `float32_model`:
    optional function returning an untrained float32 build of the row's model. When the row
    computes in another precision (mixed bfloat16) and --float32_check_images > 0, the result also
    holds `float32_check` (`float32_precision_check`)."""
    from keras_crvae import evaluation

    start = time.time()
    bound = evaluation.elbo(model, valid_images, batch_size=FLAGS.eval_batch_size, seed=FLAGS.seed)
    nll, nll_seconds = score_nll_in_parts(model, valid_images, settings, folder, "nll")
    units = evaluation.active_units(model, valid_images)
    scores = {
        "eval_wall_seconds": round(time.time() - start, 1),
        "elbo": bound["elbo"].to_dict(),
        "nll": nll.to_dict(),
        # One entry per stochastic layer (bottom first).
        "active_units_per_layer": units.get("active_units_per_layer", [units["active_units"]]),
        "num_latents": units["num_latents"],
    }
    if FLAGS.score_part_images:
        scores["nll"]["part_images"] = int(min(FLAGS.score_part_images, len(valid_images)))
        # The NLL's own seconds, summed over the sessions that scored its parts
        # (eval_wall_seconds is this invocation's only).
        scores["nll"]["scoring_seconds"] = nll_seconds
    if (float32_model is not None and FLAGS.float32_check_images
            and model.dtype_policy.compute_dtype != "float32"):
        try:
            scores["float32_check"] = float32_precision_check(
                model, float32_model(), valid_images[:FLAGS.float32_check_images], settings,
                folder, nll_per_example=nll.per_example)
        except _longrun().TimeLimitReached:
            raise
        except Exception as error:  # a side check (e.g. out of memory) must not lose the scores
            scores["float32_check"] = {"error": f"{type(error).__name__}: {error}"[:500]}
            print(f"float32 check failed: {scores['float32_check']['error']}", flush=True)
    return scores


def float32_precision_check(model, float32_model, images, settings, folder,
                            nll_per_example=None):
    """The NLL of `images` from `model` (e.g. mixed bfloat16) and from `float32_model` given the
    same weights and the same posterior noise, paired per image: how much the row's precision moves
    its score. Both are scored in parts kept in `folder` (`score_nll_in_parts`, labels
    `float32_check_model` and `nll_float32`; part i of `images` gets the noise of the row's part i).
    `nll_per_example`: `model`'s per-image NLL of a set that starts with `images` (`evaluate_row`'s),
    reused when `images` end where that scoring's noise is the same (a part boundary, or with one
    part an evaluation-batch boundary); otherwise `model` is scored again. Returns a dict:
    num_images, num_samples, nll (model's), nll_float32, difference_mean and
    difference_standard_error (model's minus float32's, over images)."""
    if not float32_model.built:
        float32_model(images[:1])
    float32_model.set_weights(model.get_weights())  # variables are float32 under both policies
    count = len(images)
    part_images = FLAGS.score_part_images
    same_noise = (count % FLAGS.eval_batch_size == 0 if not part_images or count < part_images
                  else count % part_images == 0)
    if nll_per_example is not None and same_noise and len(nll_per_example) >= count:
        per_example = np.asarray(nll_per_example)[:count]
    else:
        per_example = score_nll_in_parts(model, images, settings, folder,
                                         "float32_check_model")[0].per_example
    nll_float32 = score_nll_in_parts(float32_model, images, settings, folder,
                                     "nll_float32")[0].per_example
    difference = per_example - nll_float32
    check = {"num_images": int(count), "num_samples": int(settings.num_samples),
             "nll": round(float(per_example.mean()), 3),
             "nll_float32": round(float(nll_float32.mean()), 3),
             "difference_mean": round(float(difference.mean()), 4),
             "difference_standard_error": round(float(
                 difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1
                 else 0.0), 4)}
    print(f"{model.dtype_policy.name} against float32 on {check['num_images']} images: NLL "
          f"{check['nll']:.3f} vs {check['nll_float32']:.3f} (difference "
          f"{check['difference_mean']:+.4f} +- {check['difference_standard_error']:.4f})",
          flush=True)
    return check


def active_units_text(row):
    """Active units in the paper's notation: "19", or "16+5" per stochastic layer."""
    per_layer = row.get("active_units_per_layer") or [row["active_units"]]
    return "+".join(str(units) for units in per_layer)


def run_rows(names, settings, prepare, run_row, write_tables):
    """Runs each row not finished yet (`OUTPUT/PRESET/result.json`), rewriting the tables after each;
    rows finished by earlier invocations (other --presets) join the final table.

    `prepare()` sets up what training and scoring need (the thread limit, then TensorFlow, the data,
    the --set overrides) and returns it, an object with `train_images` and `valid_images`; it is
    called once, before the first row that trains or is rescored, so a call whose rows are all
    finished (or refused) answers without loading TensorFlow or the data.
    `run_row(name, folder, prepared)` returns a row's result."""
    prepared = functools.cache(prepare)

    def run(name, folder):
        return run_row(name, folder, prepared())

    os.makedirs(FLAGS.output_dir, exist_ok=True)
    if FLAGS.rescore:
        return rescore_rows(names, settings, run)
    results = []
    for name in names:
        done = pathlib.Path(FLAGS.output_dir) / name / "result.json"
        if done.exists():
            print(f"{name}: already finished, skipping ({done}).")
            results.append(json.loads(done.read_text()))
            continue
        print(f"=== {name}: {settings.epochs} epochs on {len(prepared().train_images)} images, "
              f"k={settings.num_samples} on {len(prepared().valid_images)} validation images",
              flush=True)
        folder = pathlib.Path(FLAGS.output_dir) / name
        folder.mkdir(parents=True, exist_ok=True)
        try:
            result = run(name, folder)
        except _longrun().TimeLimitReached as stopped:
            print(stopped, flush=True)
            break
        (folder / "result.json").write_text(json.dumps(result, indent=2))
        results.append(result)
        write_tables(results, show=False)
    for path in sorted(pathlib.Path(FLAGS.output_dir).glob("*/result.json")):
        row = json.loads(path.read_text())
        if row["preset"] not in {r["preset"] for r in results}:
            results.append(row)
    write_tables(results, show=True)
    return results


def prepare_rows(settings):
    """The usual `run_rows` preparation: the thread limit (before TensorFlow loads), the data
    (`load_data`) and the --set overrides; returns a namespace with `train_images`,
    `valid_images` and `overrides`."""
    limit_threads = _longrun().limit_threads
    limit_threads(FLAGS.threads)
    from keras_crvae import presets

    overrides = presets.parse_overrides(FLAGS.set)
    train_images, valid_images = load_data(settings)
    return types.SimpleNamespace(train_images=train_images, valid_images=valid_images,
                                 overrides=overrides)


def rescore_rows(names, settings, run_row):
    """`--rescore`: each finished row of `names` with committed weights, scored again into
    `PRESET/rescore.json`; returns the new results. A row trained with other epochs than
    `settings.epochs` is refused (its preset, and so its config, would differ)."""
    results = []
    for name in names:
        folder = pathlib.Path(FLAGS.output_dir) / name
        if not (folder / "result.json").exists():
            print(f"{name}: not finished in {folder}; not rescored.", flush=True)
            continue
        missing = [f for f in (FINAL_WEIGHTS, "train_info.json") if not (folder / f).exists()]
        if missing:
            print(f"{name}: finished, but {' and '.join(missing)} not in {folder} (a row finished "
                  "before the weights were kept, or trained on another machine); not rescored.",
                  flush=True)
            continue
        committed = json.loads((folder / "result.json").read_text())
        if committed["epochs"] != settings.epochs:
            raise ValueError(f"--epochs={settings.epochs}: {name} was trained with "
                             f"{committed['epochs']} epochs; pass --epochs={committed['epochs']}.")
        result = run_row(name, folder)
        (folder / RESCORE).write_text(json.dumps(result, indent=2) + "\n")
        old, new = committed["nll"], result["nll"]
        print(f"{name}: NLL committed {old['mean']:.3f} +- {old['standard_error']:.3f} "
              f"(k={old['num_samples']}, {old['num_images']} images), rescored "
              f"{new['mean']:.3f} +- {new['standard_error']:.3f} (k={new['num_samples']}, "
              f"{new['num_images']} images) -> {folder / RESCORE}", flush=True)
        results.append(result)
    return results


def sort_rows(results, order):
    return sorted(results, key=lambda r: order.index(r["preset"]) if r["preset"] in order
                  else len(order))
