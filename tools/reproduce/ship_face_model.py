"""Ships a scored face run (issue 26, `tools/reproduce/face_run.py`) as a model for
`keras_crvae.load_pretrained(NAME)`, or makes the run's `model.keras` for the studies that follow
it (completion, Stage2): `OUTPUT/NAME/`.

A face run folder (`reproductions/faces/PRESET/`; `keras_crvae.jobs.scored_gan`) holds `run.json`
(the preset and its settings), `scores.json` (the checkpoints' FIDs), `sessions.json` (the
training stretches) and the weights of its last scored checkpoint: `scored.weights.h5` (float32,
on the machine that trained it) or, committed, the float16 light state `resume_weights.npz` when
its epoch is that checkpoint's. This tool writes:

- `model.keras`: the preset's model (`keras_crvae.from_preset` with the run's settings, computing
  in float32) holding those weights; with `--weights_dtype=float16` the weight arrays are stored
  in 16 bits (Keras widens them to float32 variables when loading);
- `metrics.json`: the shipped weights **measured again here** on the held-out faces (sample FID
  over `--fid_seeds` sets of `--num_samples` prior samples, so the card gives their spread,
  reconstruction FID and MSE), the run's curve (last and best checkpoints, the late scores of its
  last `--late_hours`), its budget and stretches, the checks below;
- `samples.png` (64 prior samples) and `reconstructions.png` (32 held-out faces above their
  reconstructions);
- `README.md`: the model card (data, split, budget, FIDs, how to load and reproduce it).

Checks before anything is in place (all written to a temporary folder, renamed at the end):

- **float16** (`--weights_dtype=float16` with the float32 `scored.weights.h5` here): the sample
  FID of the 16-bit-rounded weights and of the float32 weights with the same latents (seed 0)
  must differ by no more than the FID's own noise, the range of the float32 weights' sample FIDs
  over the `--fid_seeds` seeds; otherwise the tool refuses (exit 1). Where only the committed
  float16 light state is here, the shipped weights are those 16-bit weights themselves (nothing
  is rounded) and every number of the card is theirs; the card says the float32 weights were not
  compared.
- **reload**: `load_pretrained(NAME, directory=...)` gives back the written weights bit for bit
  and the same decode of fixed latents.

    python tools/reproduce/ship_face_model.py --run=reproductions/faces/celeba_vae_gan \\
        --output_dir=runs/face_models                      # the model.keras of the studies
    python tools/reproduce/ship_face_model.py --run=reproductions/faces/celeba_vae_gan \\
        --name=celeba64_vae_gan --weights_dtype=float16 \\
        --machine="the project's 2-core AMD EPYC VM"       # into saved_models/

Exit status 2, one line naming the flag: no run folder or one without its files, a run not over
(its budget `--budget_hours` not spent and its epochs not done) without `--allow_unfinished`, no
weights of its last scored checkpoint here, faces that are not the run's (`--faces`,
`--num_held_out`), an existing `OUTPUT/NAME` without `--overwrite`. Exit status 1: a check failed.
"""

import dataclasses
import json
import os
import pathlib
import time

import numpy as np
from absl import app

import face_run  # scripts beside this one (their folder is on sys.path when run)
import reproduction
from pretrained_card import relative_to_root, set_text, sessions_summary
from ship_pretrained import (CheckFailed, UsageError, _option, command_line, define_flags,
                             model_destination, preset_overrides, staged_model_folder,
                             store_weights_in_float16)

RUN_FILES = ("run.json", "scores.json", "sessions.json")
SCORED_WEIGHTS = "scored.weights.h5"  # scored_gan.SCORED_WEIGHTS, without importing Keras here
LIGHT_WEIGHTS, LIGHT_INFO = "resume_weights.npz", "resume.json"  # runs.RESUME_WEIGHTS / _INFO
# Largest difference of the reloaded model's decode from the written one's (the same bits; only
# the order of operations may differ).
RELOAD_TOLERANCE = 1e-4


@dataclasses.dataclass
class FaceShipOptions:
    """What `ship_face_run` does; each field is also a flag of the same name."""

    run: str = _option(None, "The face run folder (run.json, scores.json, sessions.json and the "
                       "weights of its last scored checkpoint).")
    name: str = _option(None, "The model's name (default: the run folder's name).")
    output_dir: str = _option(str(reproduction.ROOT / "saved_models"), "Where NAME/ is written.")
    overwrite: bool = _option(False, "Replace an existing OUTPUT/NAME.")
    weights_dtype: str = _option("float32", "Storage dtype of the weights: float32, or float16 "
                                 "(after the sample-FID check where the float32 weights are here).")
    budget_hours: float = _option(6.0, "The run's machine-hours budget (face_run.py "
                                  "--budget_hours): the run is over when it is spent.")
    allow_unfinished: bool = _option(False, "Use a run still training (its last checkpoint).")
    faces: str = _option(str(face_run.FACES), "The run's faces (key x); the last "
                         "--num_held_out are the held-out faces it was scored on.")
    num_held_out: int = _option(1000, "The run's held-out faces (face_run.py --num_held_out).")
    num_samples: int = _option(1000, "Prior samples per sample FID.")
    fid_seeds: int = _option(3, "Sample sets (seeds 0..N-1) of the sample FID; their range is its "
                             "noise.")
    late_hours: float = _option(1.0, "The card's late scores: the checkpoints of the run's last "
                                "N machine-hours.")
    fid_weights: str = _option("default", "FIDInceptionV3 weights (docs/fid.md).")
    fid_precision: str = _option("bfloat16", "Inception precision (the runs': bfloat16).")
    batch_size: int = _option(50, "Images per sampling / feature batch.")
    machine: str = _option("", "Where the run trained, for the card.")
    deviations: str = _option("", "Where the training left its plan, for the card (e.g. resumed "
                              "from the light state with fresh optimizer moments).")
    seed: int = _option(0, "Seed of samples.png and of the checks' latents.")


CHOICES = {"weights_dtype": ["float32", "float16"], "fid_precision": ["float32", "bfloat16"]}


def _read_json(path):
    return json.loads(pathlib.Path(path).read_text())


def run_state(run, options):
    """`(run.json, scores, sessions, machine_hours, status)` of the run folder; status is "trained",
    "budget spent" or "training"."""
    info = _read_json(run / "run.json")
    scores, sessions = _read_json(run / "scores.json"), _read_json(run / "sessions.json")
    hours = sum(float(s.get("machine_seconds", s["train_seconds"] * max(int(s["threads"]), 1)))
                for s in sessions) / 3600.0
    status = ("trained" if info.get("trained") else
              "budget spent" if hours >= options.budget_hours else "training")
    return info, scores, sessions, hours, status


def weights_source(run, last_epoch):
    """`(path, dtype)` of the weights of the checkpoint scored last (`last_epoch`): the float32
    `scored.weights.h5` where it is here, else the light state when it holds that epoch; None
    when neither does."""
    if (run / SCORED_WEIGHTS).is_file():
        return run / SCORED_WEIGHTS, "float32"
    if (run / LIGHT_WEIGHTS).is_file() and (run / LIGHT_INFO).is_file():
        light = _read_json(run / LIGHT_INFO)
        if int(light["epochs_done"]) == int(last_epoch):
            return run / LIGHT_WEIGHTS, light.get("weights_dtype", "float32")
    return None


def check_arguments(options):
    """The command line's rules, before Keras is imported. Returns (run folder, name, destination,
    state, weights source). Raises `UsageError`."""
    example = "e.g. reproductions/faces/celeba_vae_gan"
    if not options.run or not pathlib.Path(options.run).is_dir():
        raise UsageError(f"--run={options.run}: no such folder; expected a face run folder, "
                         f"{example}")
    run = pathlib.Path(options.run)
    missing = [name for name in RUN_FILES if not (run / name).is_file()]
    if missing:
        raise UsageError(f"--run={options.run}: no {', '.join(missing)}; expected a scored face "
                         f"run folder ({', '.join(RUN_FILES)}), {example}")
    for flag in ("num_held_out", "num_samples", "fid_seeds", "batch_size"):
        if getattr(options, flag) < (2 if flag in ("num_held_out", "num_samples") else 1):
            raise UsageError(f"--{flag}={getattr(options, flag)}: expected a positive integer"
                             + (" >= 2" if flag in ("num_held_out", "num_samples") else ""))
    if not options.budget_hours > 0 or not options.late_hours > 0:
        flag = "budget_hours" if not options.budget_hours > 0 else "late_hours"
        raise UsageError(f"--{flag}={getattr(options, flag)}: expected machine-hours > 0")
    for flag, choices in CHOICES.items():
        if getattr(options, flag) not in choices:
            raise UsageError(f"--{flag}={getattr(options, flag)}: expected one of "
                             f"{', '.join(choices)}")
    state = run_state(run, options)
    info, scores, _, hours, status = state
    if not scores:
        raise UsageError(f"--run={options.run}: no scored checkpoint yet; expected a run with "
                         "scores.json entries")
    if status == "training" and not options.allow_unfinished:
        raise UsageError(f"--allow_unfinished: {options.run} is still training ({hours:.2f} of "
                         f"--budget_hours={options.budget_hours:g} machine-hours spent, epoch "
                         f"{scores[-1]['epoch']} scored last); expected a finished run, or "
                         "--allow_unfinished to use its last checkpoint")
    source = weights_source(run, scores[-1]["epoch"])
    if source is None:
        raise UsageError(f"--run={options.run}: neither {SCORED_WEIGHTS} nor a light state of "
                         f"epoch {scores[-1]['epoch']} (the last scored) is here; expected the "
                         "machine that trained it, or the light state committed at that epoch")
    if not os.path.isfile(options.faces):
        raise UsageError(f"--faces={options.faces}: no such file; expected the run's faces npz")
    name, destination = model_destination(options, run)
    if info.get("preset") is None or "settings" not in info:
        raise UsageError(f"--run={options.run}: its run.json has no preset and settings; "
                         "expected a face run's")
    return run, name, destination, state, source


def held_out_faces(options, info):
    """The run's held-out faces in [-1, 1], checked against run.json's `data` (the same file, the
    same number of faces and held out). Raises `UsageError`."""
    faces = np.load(options.faces)["x"]
    if not 2 <= options.num_held_out < len(faces):
        raise UsageError(f"--num_held_out={options.num_held_out}: expected 2 to {len(faces) - 1}")
    expected = face_run.data_spec(options.faces, len(faces), options.num_held_out)
    if info.get("data") != expected:
        raise UsageError(f"--faces={options.faces} --num_held_out={options.num_held_out}: the run "
                         f"trained on {info.get('data')!r}, not {expected!r}; expected its faces")
    return faces[-options.num_held_out:].astype("float32") / 127.5 - 1.0


def run_config(info):
    """The run's config in `ship_pretrained.preset_overrides`' form: run.json's settings, with the
    preset's `epochs` where its training table leaves them out (a job's epochs are the run's
    length, not the model: the GAN job keeps them out of the settings it compares), and the
    `runs.SETTINGS_ADDED_LATER` of a run trained before its preset had those keys."""
    from keras_crvae import presets
    from keras_crvae.jobs.runs import SETTINGS_ADDED_LATER

    training = {"epochs": presets.get_preset(info["preset"]).training.epochs,
                **info["settings"]["training"]}
    network = {**SETTINGS_ADDED_LATER, **info["settings"]["network"]}
    return {"preset": info["preset"], **info["settings"], "network": network,
            "training": training}


def build_model(config, overrides, seed):
    """The run's model, computing in float32 (uncompiled)."""
    import keras_crvae

    return keras_crvae.from_preset(config["preset"], compile=False, seed=seed,
                                   **{**overrides, "precision": "float32"})


def define_checkpoint_flags(run_help="A face run folder (run.json)."):
    """Defines the flags every study tool that reads one checkpoint of a face run shares: --run
    (required), --weights (`checkpoint_paths`), --faces (the 9,500 faces) and --output (JSON).
    Called under the tool's `__main__`, never on import (the tests import the tools together)."""
    from absl import flags

    flags.DEFINE_string("run", None, run_help)
    flags.DEFINE_string("weights", None, "Weights file (default: RUN/scored.weights.h5).")
    flags.DEFINE_string("faces", str(face_run.checkout_paths.SHARED_DATA / "celeba64_train.npz"),
                        "Faces.")
    flags.DEFINE_string("output", None, "JSON output path.")
    flags.mark_flag_as_required("run")


def checkpoint_paths(run, weights=None):
    """`(run, weights)` as paths, for the study tools that read one checkpoint of a face run:
    `weights` defaults to RUN/scored.weights.h5 (the last scored epoch). Raises `app.UsageError`
    naming the flag of a missing run.json or weights file."""
    run = pathlib.Path(run)
    weights = pathlib.Path(weights or run / "scored.weights.h5")
    for flag, path in (("--run", run / "run.json"), ("--weights", weights)):
        if not path.is_file():
            raise app.UsageError(f"{flag}: {path} does not exist.")
    return run, weights


def run_model(run, seed=0):
    """`(model, info)`: the model of the face run in folder `run` (float32, uncompiled, untrained),
    built from its run.json (`info`, its content) as `build_model` builds it for shipping. The
    study tools load a checkpoint into it (tools/studies/batch_norm_check.py, latent_use.py,
    batch_norm_inputs.py, aggregate_posterior.py)."""
    info = _read_json(pathlib.Path(run) / "run.json")
    overrides = preset_overrides(run_config(info))
    return build_model({"preset": info["preset"]}, overrides, seed), info


def in_batches(function, inputs, batch_size=50):
    """`function` applied to `inputs` `(N, ...)` in slices of `batch_size`, the results (tensors
    or arrays) concatenated into one float32 NumPy array (the study tools' decodes and encodes)."""
    import keras

    return np.concatenate([np.asarray(keras.ops.convert_to_numpy(function(
        inputs[i:i + batch_size])), "float32") for i in range(0, len(inputs), batch_size)])


def encode_faces(model, images, batch_size=50):
    """`(means, log_vars)` float32 `(N, *latent_shape)` of `model.encode` (inference mode) over
    `images` `(N, 64, 64, 3)` in [-1, 1], in slices of `batch_size`."""
    import keras

    parts = [[np.asarray(keras.ops.convert_to_numpy(part), "float32")
              for part in model.encode(images[i:i + batch_size])]
             for i in range(0, len(images), batch_size)]
    return (np.concatenate([mean for mean, _ in parts]),
            np.concatenate([log_var for _, log_var in parts]))


def load_source(model, source):
    """Loads the weights file `source = (path, dtype)` into `model`."""
    path, _ = source
    if path.suffix == ".npz":
        reproduction.load_weights_npz(model, path)
    else:
        model.load_weights(str(path))
    return model


def shipped_scores(model, held_out, reference, extractor, options):
    """The weights' scores: sample FID per seed (0..`fid_seeds`-1), its mean and range, and the
    reconstruction FID and MSE (`scored_gan.measure`)."""
    from keras_crvae.jobs import scored_gan

    per_seed = []
    for seed in range(options.fid_seeds):
        scores, _, _ = scored_gan.measure(model, held_out, reference, extractor,
                                          num_samples=options.num_samples, seed=seed,
                                          batch_size=options.batch_size,
                                          reconstructions=seed == 0)  # the same for every seed
        per_seed.append(scores["sample_fid"])
        if seed == 0:
            reconstruction = scores
    return {"sample_fid_per_seed": per_seed, "sample_fid_mean": float(np.mean(per_seed)),
            "sample_fid_range": float(max(per_seed) - min(per_seed)),
            "reconstruction_fid": reconstruction["reconstruction_fid"],
            "reconstruction_mse": reconstruction["reconstruction_mse"],
            "num_samples": int(options.num_samples), "num_held_out": int(len(held_out))}


def float16_check(reference_scores, rounded, held_out, reference, extractor, options):
    """Sample FID (seed 0) of the 16-bit-rounded weights against the float32 weights'; raises
    `CheckFailed` when they differ by more than the float32 FID's range over the seeds."""
    from keras_crvae.jobs import scored_gan

    scores, _, _ = scored_gan.measure(rounded, held_out, reference, extractor,
                                      num_samples=options.num_samples, seed=0,
                                      batch_size=options.batch_size)
    difference = scores["sample_fid"] - reference_scores["sample_fid_per_seed"][0]
    noise = reference_scores["sample_fid_range"]
    check = {"sample_fid_float32": reference_scores["sample_fid_per_seed"][0],
             "sample_fid_float16": scores["sample_fid"], "difference": float(difference),
             "noise": noise, "noise_is": f"range of the float32 sample FID over "
                                         f"{options.fid_seeds} seeds",
             "reconstruction_mse_float16": scores["reconstruction_mse"],
             "passed": bool(abs(difference) <= noise)}
    print(f"float16 check: sample FID {check['sample_fid_float16']:.2f} (16-bit) vs "
          f"{check['sample_fid_float32']:.2f} (float32), difference {difference:+.2f}; noise "
          f"{noise:.2f}", flush=True)
    if not check["passed"]:
        raise CheckFailed(f"--weights_dtype=float16: the 16-bit weights' sample FID differs from "
                          f"the float32 weights' by {difference:+.2f}, more than the FID's noise "
                          f"({noise:.2f}); nothing written, ship float32")
    return check


def reload_check(name, folder, written, seed):
    """`load_pretrained(name, directory=folder)` against the written model: the same weights bit
    for bit and the same decode of fixed latents. Returns (dict, loaded); raises `CheckFailed`."""
    import keras
    import keras_crvae

    loaded = keras_crvae.load_pretrained(name, directory=folder)
    mismatched = [variable.path for variable, stored, array in zip(
        loaded.weights, loaded.get_weights(), written.get_weights())
        if not np.array_equal(stored, array)]
    if len(loaded.weights) != len(written.weights) or mismatched:
        raise CheckFailed(f"--run: the reloaded {name} holds other weights than were written "
                          f"({mismatched[:3] or 'another number of variables'}); nothing written")
    latents = keras.random.normal((8,) + tuple(written.latent_shape), seed=seed)
    difference = float(np.abs(keras.ops.convert_to_numpy(loaded.decode(latents))
                              - keras.ops.convert_to_numpy(written.decode(latents))).max())
    if not difference <= RELOAD_TOLERANCE:
        raise CheckFailed(f"--run: the reloaded {name} decodes fixed latents up to "
                          f"{difference:.2e} away from the written model (tolerance "
                          f"{RELOAD_TOLERANCE}); nothing written")
    return {"weights_identical": True, "max_abs_decode_difference": difference,
            "tolerance": RELOAD_TOLERANCE}, loaded


def curve_summary(run, scores, options):
    """The run's curve: its last and best checkpoints and its late sample FIDs."""
    from keras_crvae.jobs import scored_gan

    late = scored_gan.late_scores({"run": str(run)}, "sample_fid", options.late_hours)["run"]
    best = min(scores, key=lambda entry: entry["sample_fid"])
    keep = ("epoch", "machine_hours", "sample_fid", "reconstruction_fid", "reconstruction_mse")
    return {"checkpoints": len(scores), "last": {key: scores[-1][key] for key in keep},
            "best_sample_fid": {key: best[key] for key in keep},
            "late_hours": options.late_hours, "late_checkpoints": int(len(late)),
            "late_sample_fid_median": float(np.median(late)),
            "late_sample_fid_range": [float(late.min()), float(late.max())]}


def reproduce_command(run, info, overrides, epochs):
    """face_run.py's command that trains the same run (its epochs exactly: the budget flag only
    caps them, so a slower machine trains the same run)."""
    sets = " ".join(f"--set={key}={set_text(value)}" for key, value in sorted(overrides.items())
                    if key != "batch_size")
    batch = overrides.get("batch_size", info["settings"]["training"].get("batch_size"))
    return (f"python tools/reproduce/face_run.py --preset={info['preset']} --epochs={epochs} "
            f"--budget_hours=100 --threads=1 --batch_size={batch} {sets} "
            f"--output_dir={relative_to_root(run)}")


def ship_face_run(options, feature_extractor=None):
    """Writes `OUTPUT/NAME/` from the face run `options.run` (module docstring); returns its
    metrics. `feature_extractor`: the feature network (default `FIDInceptionV3`; tests pass a toy).

    Raises:
        UsageError: a flag breaks the rules (exit 2).
        CheckFailed: the float16 or the reload check failed (exit 1); nothing is written.
    """
    run, name, destination, state, source = check_arguments(options)
    info, scores, sessions, hours, status = state
    held_out = held_out_faces(options, info)
    overrides = preset_overrides(run_config(info))

    import keras_crvae
    from keras_crvae import evaluation, io as crvae_io
    from keras_crvae.jobs import base, scored_gan

    started = time.time()
    extractor = feature_extractor if feature_extractor is not None else \
        evaluation.FIDInceptionV3(weights=options.fid_weights, input_range=(-1, 1),
                                  precision=options.fid_precision)
    reference = scored_gan.held_out_statistics(str(run), held_out, extractor,
                                               batch_size=options.batch_size)
    config = {"preset": info["preset"]}
    trained = load_source(build_model(config, overrides, options.seed), source)
    trained_scores = shipped_scores(trained, held_out, reference, extractor, options)
    with staged_model_folder(options.output_dir, name, destination) as (staging, folder):
        shipped, shipped_scores_, check16 = trained, trained_scores, None
        rounded_here = options.weights_dtype == "float16" and source[1] == "float32"
        if rounded_here:
            reproduction.save_weights_npz(trained, staging / "float16.npz", dtype="float16")
            shipped = load_source(build_model(config, overrides, options.seed),
                                  (staging / "float16.npz", "float16"))
            check16 = float16_check(trained_scores, shipped, held_out, reference, extractor,
                                    options)
            shipped_scores_ = shipped_scores(shipped, held_out, reference, extractor, options)
        shipped.save(folder / crvae_io.KERAS_MODEL_FILE)
        stored16 = (store_weights_in_float16(folder / crvae_io.KERAS_MODEL_FILE)
                    if options.weights_dtype == "float16" else None)
        reload, loaded = reload_check(name, staging, shipped, options.seed)
        epochs = int(scores[-1]["epoch"])
        metrics = {
            "name": name, "preset": info["preset"],
            "description": keras_crvae.get_preset(info["preset"]).description,
            "overrides": overrides, "run": relative_to_root(run), "run_status": status,
            "model_class": type(loaded).__name__, "num_parameters": int(loaded.count_params()),
            "data": info["data"],
            "held_out": f"the last {options.num_held_out} faces of "
                        f"{reproduction_path(options.faces)} (never trained on)",
            "epochs": epochs, "machine_hours": round(hours, 3),
            "budget_hours": options.budget_hours,
            "training": sessions_summary(sessions, epochs),
            "cpus": sorted({s.get("cpu", "?") for s in sessions}),
            "training_precision": info["settings"]["training"].get("precision", "float32"),
            "scores": shipped_scores_, "curve": curve_summary(run, scores, options),
            "weights": {"source": relative_to_root(source[0]), "source_dtype": source[1],
                        "dtype": options.weights_dtype,
                        "arrays_in_float16": stored16[0] if stored16 else 0,
                        "model_keras_bytes": os.path.getsize(folder /
                                                             crvae_io.KERAS_MODEL_FILE)},
            "float16_check": check16,
            "float16_unchecked": (None if check16 or options.weights_dtype == "float32" else
                                  "only the float16 light state was here: the shipped weights "
                                  "are those 16-bit weights, and every score is theirs"),
            "reload_check": reload,
            "features": f"{type(extractor).__name__} ({options.fid_precision})",
            "reproduce_command": reproduce_command(run, info, overrides, epochs),
            "machine": options.machine, "deviations": options.deviations,
            "seed": int(options.seed), "seconds": round(time.time() - started, 1),
        }
        import keras

        crvae_io.save_image_grid(keras.ops.convert_to_numpy(loaded.sample(64, seed=options.seed)),
                                 folder / "samples.png", columns=8)
        base.save_reconstruction_grid(loaded, held_out[:32], folder / "reconstructions.png")
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (folder / "README.md").write_text(face_model_card(metrics))
    s = metrics["scores"]
    print(f"{name}: {destination} ({metrics['weights']['model_keras_bytes']:,} bytes, "
          f"{options.weights_dtype}; sample FID {s['sample_fid_mean']:.1f} (range "
          f"{s['sample_fid_range']:.1f} over {options.fid_seeds} seeds), reconstruction FID "
          f"{s['reconstruction_fid']:.1f}, MSE {s['reconstruction_mse']:.4f})", flush=True)
    return metrics


def reproduction_path(path):
    """`path` as the committed records say it (relative to the checkout)."""
    return face_run.checkout_paths.in_checkout(path)


def face_model_card(metrics):
    """The model card (`README.md`) of a shipped face model from its `metrics.json` facts."""
    s, curve, training = metrics["scores"], metrics["curve"], metrics["training"]
    overrides = ", ".join(f"`{k}={v}`" for k, v in sorted(metrics["overrides"].items()))
    seeds = ", ".join(f"{value:.1f}" for value in s["sample_fid_per_seed"])
    check = metrics["float16_check"]
    if check:
        storage = (f"float16 (the weights rounded to 16 bits: sample FID "
                   f"{check['sample_fid_float16']:.1f} against {check['sample_fid_float32']:.1f} "
                   f"for the float32 weights with the same latents, difference "
                   f"{check['difference']:+.1f}, within the FID's noise of {check['noise']:.1f}, "
                   f"its {check['noise_is']})")
    elif metrics["float16_unchecked"]:
        storage = f"float16 ({metrics['float16_unchecked']})"
    else:
        storage = "float32"
    last, best = curve["last"], curve["best_sample_fid"]
    lines = [
        f"# {metrics['name']}: {metrics['preset']} trained on 64x64 CelebA faces",
        "",
        f"{metrics['description']} Written by `tools/reproduce/ship_face_model.py` from the face "
        f"run `{metrics['run']}` (issue 26; docs/faces.md).",
        "",
        "```python",
        "import keras_crvae",
        f"model = keras_crvae.load_pretrained({metrics['name']!r})  # {metrics['model_class']}",
        "faces = model.sample(16, seed=0)          # (16, 64, 64, 3) in [-1, 1]",
        "```",
        "",
        "## Data and training",
        "",
        f"- Data: {metrics['data']}; scored on {metrics['held_out']}.",
        f"- Preset `{metrics['preset']}` with {overrides}; {metrics['num_parameters']:,} "
        f"parameters (encoder, decoder, discriminator). Trained in "
        f"{metrics['training_precision']}; this file computes in float32.",
        f"- Budget: {metrics['machine_hours']:.2f} machine-hours (wall x threads; the run's budget "
        f"{metrics['budget_hours']:g}), {metrics['epochs']} epochs, run status: "
        f"{metrics['run_status']}; {training['training_stretches']} stretches on "
        f"{', '.join(metrics['cpus'])}, {', '.join(map(str, training['threads']))} thread(s), "
        f"backend {', '.join(training['backends'])}"
        + (f", load average {training['load_average_range'][0]:.1f} to "
           f"{training['load_average_range'][1]:.1f}" if training["load_average_range"] else "")
        + (f"; {metrics['machine']}" if metrics["machine"] else "") + ".",
    ]
    if metrics["deviations"]:
        lines.append(f"- Deviations: {metrics['deviations']}")
    lines += [
        "",
        "## Scores of these weights (measured when shipped)",
        "",
        f"On the {s['num_held_out']} held-out faces, with the standard FID Inception features "
        f"({metrics['features']}; docs/fid.md):",
        "",
        "| sample FID (mean over seeds) | per seed | reconstruction FID | reconstruction MSE |",
        "|---|---|---|---|",
        f"| {s['sample_fid_mean']:.1f} | {seeds} ({s['num_samples']} samples each) | "
        f"{s['reconstruction_fid']:.1f} | {s['reconstruction_mse']:.4f} |",
        "",
        f"The run's curve (`{metrics['run']}/scores.json`, {curve['checkpoints']} checkpoints, "
        f"scored while training in {metrics['training_precision']}): last checkpoint (epoch "
        f"{last['epoch']}, {last['machine_hours']:.2f} h) sample FID {last['sample_fid']:.1f}; "
        f"best {best['sample_fid']:.1f} at epoch {best['epoch']} ({best['machine_hours']:.2f} h; "
        f"not shipped: choosing the best of a noisy curve flatters it); over the last "
        f"{curve['late_hours']:g} machine-hours ({curve['late_checkpoints']} checkpoints) median "
        f"{curve['late_sample_fid_median']:.1f}, range {curve['late_sample_fid_range'][0]:.1f} "
        f"to {curve['late_sample_fid_range'][1]:.1f}.",
        "",
        f"Storage: {storage}; `model.keras` {metrics['weights']['model_keras_bytes']:,} bytes. "
        "Reload check: `load_pretrained` gives back the written weights bit for bit and the same "
        "decode of fixed latents.",
        "",
        "![samples](samples.png)",
        "",
        "![reconstructions](reconstructions.png)",
        "",
        "## Reproduce",
        "",
        "```bash",
        metrics["reproduce_command"],
        "```",
        "",
        "(`--epochs` trains exactly the shipped epochs; the machine-hours budget only caps them.)",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    define_flags(FaceShipOptions, CHOICES)
    app.run(command_line("ship_face_model.py", ship_face_run, FaceShipOptions))
