"""Ships a finished reproduction row as a pretrained model: `saved_models/NAME/` for
`keras_crvae.load_pretrained(NAME)`.

A row folder (`reproductions/iwae_table/ROW/`, `reproductions/table1/ROW/`; written by
`tools/reproduce/reproduce_iwae_table.py` / `tools/reproduce/reproduce_table1.py`) holds `config.json` (the preset and
its tables), `final_weights.npz` (the trained weights without the optimizer's state), `result.json`
(the committed scores), `train_info.json` and `sessions.json` (the training stretches). This tool
turns it into `OUTPUT/NAME/`:

- `model.keras`: the preset's model (`keras_crvae.from_preset` with the row's config, computing in
  float32) holding the row's `final_weights.npz` (`reproduction.load_weights_npz`);
- `metrics.json`: the row's committed scores (NLL with k, standard error and images, ELBO, active
  units), its protocol and training time, the checks below;
- `samples.png`: 64 samples from the prior (`--num_sample_images`);
- `README.md`: the model card (protocol, data, schedule, machine and training seconds, NLL against
  the paper, how to rescore the committed weights).

The NLLs are the committed ones (the tool scores nothing at k=5000): the shipped weights are the
row's `final_weights.npz`, and the card gives the `--rescore` command that scores them again.

`--weights_dtype=float16` stores the weights in 16 bits (the `.keras` file's weight arrays as
float16, widened to the model's float32 variables by Keras when loading; the zip deflated): about
half the size, for models near the size limit. Only after a measured check: the NLL of the
16-bit-rounded weights and of the float32 weights (`final_weights.npz`, or where that file is
already 16-bit, as a Table 1 row's is, the row's `model.weights.h5` on the machine that trained it)
on the first `--check_images` validation images,
k=`--check_samples`, paired (the same images and posterior noise), must differ by less than
`--max_nll_difference` nats (default 0.05) on average, or the tool refuses (exit 1, nothing
written). The check's numbers go into `metrics.json` and the card.

`--weights_format=npz` ships the model in the npz form instead of `model.keras`: `model.json` (the
Keras config and the variables' paths and shapes) and `weights.npz`, which is the row's
`final_weights.npz` copied byte for byte, so git stores the weights once for the row and the shipped
model (a Table 1 row's are ~30 MB, against issue 25's ~250 MB for the whole issue). The weights are
then exactly the row's, so `--weights_dtype` must name the dtype they are stored in (float16 for a
Table 1 row: the float16 check above runs against the float32 weights).

Whatever the form and dtype, after writing, `keras_crvae.load_pretrained(NAME)` must give back the weights
that were written, bit for bit, and the same per-image NLL (k=`--reload_check_samples` on the first
`--reload_check_images` validation images, same noise) as the model in memory; otherwise nothing is
written. Everything is written to a temporary folder under OUTPUT first and renamed into place.

    python tools/reproduce/ship_pretrained.py --row=reproductions/iwae_table/mnist_mlp_vae \
        --machine="the project's 2-core x86-64 CPU VM (CPU only), one thread per row, niced"
    python tools/reproduce/ship_pretrained.py --row=reproductions/table1/mnist_crvae --weights_dtype=float16 \
        --weights_format=npz --check_images=500 --check_samples=100 --overwrite

Exit status 2, with one line naming the flag: no `--row` folder, a row without `final_weights.npz`
(not finished) or without its other files, an existing `OUTPUT/NAME` without `--overwrite`, no
`--valid_data`, `--weights_format=npz` with a `--weights_dtype` that is not the row file's. Exit
status 1: the float16 check or the reload check failed.
"""

import contextlib
import dataclasses
import io
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
import zipfile

import numpy as np
from absl import app, flags

import reproduction  # a script beside this one (its folder is on sys.path when run)
from pretrained_card import (  # noqa: F401  (default_rescore_command: also used from here)
    default_rescore_command, model_card, relative_to_root, schedule_text, sessions_summary)

ROOT = reproduction.ROOT
FLAGS = flags.FLAGS
ROW_FILES = ("config.json", "result.json", "train_info.json", "sessions.json")
DEFAULT_VALID_DATA = str(reproduction.SHARED_DATA / "binarized_mnist.npz") + ":x_valid"
# Largest per-image NLL difference (nats) between the reloaded file and the model in memory: the
# weights are the same bits and the noise is the same, so only the order of operations differs.
RELOAD_TOLERANCE = 1e-3
WEIGHTS_MEMBER = "model.weights.h5"
CHOICES = {"weights_dtype": ["float32", "float16"], "weights_format": ["keras", "npz"]}
FULL_WEIGHTS = "model.weights.h5"  # longrun.FULL_WEIGHTS: a row's float32 weights, on its machine only


class UsageError(Exception):
    """A flag's value breaks the command line's rules: exit status 2, one line."""


class CheckFailed(Exception):
    """A measured check refused the shipped file: exit status 1, nothing written."""


def _option(default, text):
    return dataclasses.field(default=default, metadata={"help": text})


@dataclasses.dataclass
class ShipOptions:
    """What `ship_row` does; each field is also a flag of the same name (`define_flags`)."""

    row: str = _option(None, "The finished row's folder (config.json, final_weights.npz, "
                       "result.json, train_info.json, sessions.json).")
    name: str = _option(None, "The shipped model's name (default: the row folder's name).")
    output_dir: str = _option(str(ROOT / "saved_models"), "Where NAME/ is written.")
    overwrite: bool = _option(False, "Replace an existing OUTPUT/NAME.")
    weights_dtype: str = _option("float32", "Storage dtype of the shipped weights, float32 or "
                                 "float16 (only after the paired NLL check: --check_images, "
                                 "--check_samples, --max_nll_difference).")
    weights_format: str = _option("keras", "keras (model.keras) or npz (model.json + weights.npz, "
                                  "the row's final_weights.npz byte for byte: stored once in git).")
    check_images: int = _option(1000, "float16: validation images of the paired NLL check.")
    check_samples: int = _option(100, "float16: importance samples k of the paired NLL check.")
    max_nll_difference: float = _option(0.05, "float16: the check's mean NLL difference (16-bit "
                                        "minus float32 weights, nats) must be below this in "
                                        "absolute value.")
    reload_check_images: int = _option(10, "Validation images of the reload check.")
    reload_check_samples: int = _option(16, "Importance samples k of the reload check.")
    valid_data: str = _option(DEFAULT_VALID_DATA, "Statically binarized validation images, "
                              "PATH.npz:KEY (the checks').")
    eval_batch_size: int = _option(100, "Images per importance-sampling batch.")
    num_sample_images: int = _option(64, "Prior samples in samples.png (0: none).")
    machine: str = _option("", "Where the row trained, for the card (the row's files record the "
                           "backend, threads and load, not the machine).")
    deviations: str = _option("", "Where the training left the protocol, for the card (e.g. "
                              "epochs at another learning rate, optimizer state restarted).")
    rescore_command: str = _option("", "The card's rescore command (default: built from the row "
                                   "folder's parent, e.g. tools/reproduce/reproduce_iwae_table.py "
                                   "--rescore).")
    seed: int = _option(0, "Seed of the checks' posterior noise and of the samples.")


def define_flags(options_class=ShipOptions, choices=None):
    """One absl flag per field of the options dataclass (`ShipOptions`, or another tool's), with
    its default and help; `choices` (default `CHOICES`) makes enum flags."""
    choices = CHOICES if choices is None else choices
    define = {str: flags.DEFINE_string, bool: flags.DEFINE_boolean, int: flags.DEFINE_integer,
              float: flags.DEFINE_float}
    for field in dataclasses.fields(options_class):
        if field.name in choices:
            flags.DEFINE_enum(field.name, field.default, choices[field.name],
                              field.metadata["help"])
        else:
            define[field.type](field.name, field.default, field.metadata["help"])


def check_arguments(options):
    """The command line's rules, before anything heavy is imported. Returns (row folder, name,
    destination). Raises `UsageError`."""
    if not options.row:
        raise UsageError("--row: expected a finished reproduction row folder, e.g. "
                         "reproductions/iwae_table/mnist_mlp_vae")
    row = pathlib.Path(options.row)
    if not row.is_dir():
        raise UsageError(f"--row={options.row}: no such folder; expected a finished reproduction "
                         "row folder, e.g. reproductions/iwae_table/mnist_mlp_vae")
    if not (row / reproduction.FINAL_WEIGHTS).is_file():
        raise UsageError(f"--row={options.row}: no {reproduction.FINAL_WEIGHTS}; expected a "
                         "finished row (an unfinished one has only its light state)")
    missing = [name for name in ROW_FILES if not (row / name).is_file()]
    if missing:
        raise UsageError(f"--row={options.row}: no {', '.join(missing)}; expected a finished row "
                         f"with {', '.join(ROW_FILES)}")
    name, destination = model_destination(options, row)
    # PATH or PATH:KEY (`keras_crvae.io.split_npz_spec`, without importing TensorFlow here).
    valid_path = (options.valid_data if os.path.exists(options.valid_data)
                  else options.valid_data.rsplit(":", 1)[0])
    if not os.path.isfile(valid_path):
        raise UsageError(f"--valid_data={options.valid_data}: no such file; expected the "
                         "statically binarized validation images, PATH.npz:KEY")
    for flag in ("check_images", "check_samples", "reload_check_images", "reload_check_samples",
                 "eval_batch_size"):
        if getattr(options, flag) < 1:
            raise UsageError(f"--{flag}={getattr(options, flag)}: expected a positive integer")
    if options.max_nll_difference < 0:
        raise UsageError(f"--max_nll_difference={options.max_nll_difference}: expected >= 0 nats")
    for flag, choices in CHOICES.items():
        if getattr(options, flag) not in choices:
            raise UsageError(f"--{flag}={getattr(options, flag)}: expected one of "
                             f"{', '.join(choices)}")
    in_16_bits = stored_in_16_bits(row / reproduction.FINAL_WEIGHTS)
    if options.weights_format == "npz" and options.weights_dtype != ("float16" if in_16_bits
                                                                      else "float32"):
        raise UsageError(
            f"--weights_dtype={options.weights_dtype}: --weights_format=npz ships "
            f"{relative_to_root(row / reproduction.FINAL_WEIGHTS)} as it is, stored in "
            f"{'float16' if in_16_bits else 'float32'}; expected --weights_dtype="
            f"{'float16' if in_16_bits else 'float32'} (or --weights_format=keras)")
    if (options.weights_dtype == "float16" and in_16_bits
            and not (row / FULL_WEIGHTS).is_file()):
        raise UsageError(
            f"--weights_dtype=float16: {relative_to_root(row / reproduction.FINAL_WEIGHTS)} is "
            f"stored in 16 bits and {relative_to_root(row / FULL_WEIGHTS)} (the trained float32 "
            "weights) is not on this machine; the check against the float32 weights needs it: run "
            "this where the row was trained")
    return row, name, destination


def model_destination(options, source):
    """`(name, OUTPUT/NAME)` of the shipped model: `--name`, or the folder name of `source`.
    Raises `UsageError` for a name that is a path, or an existing destination without
    `--overwrite`."""
    name = options.name or pathlib.Path(source).resolve().name
    if not name or os.sep in name or name.startswith("."):
        raise UsageError(f"--name={name}: expected a folder name, not a path")
    destination = pathlib.Path(options.output_dir) / name
    if destination.exists() and not options.overwrite:
        raise UsageError(f"--overwrite: {destination} exists; expected --overwrite to replace it, "
                         "or another --name")
    return name, destination


@contextlib.contextmanager
def staged_model_folder(output_dir, name, destination):
    """Yields `(staging, folder)`: an empty `folder` (named `name`) inside a temporary `staging`
    folder under `output_dir`, which the caller fills. When the block ends without an exception
    the folder goes into place at `destination` (an old one moves aside first, then goes); the
    staging folder is removed whatever happens, so a failed check leaves nothing behind."""
    output_dir = pathlib.Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".ship-{name}-", dir=output_dir))
    try:
        folder = staging / name
        folder.mkdir()
        yield staging, folder
        if destination.exists():
            os.replace(destination, staging / ".replaced")
        os.replace(folder, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def stored_in_16_bits(path):
    """Whether the npz at `path` holds float16 arrays (`save_weights_npz(dtype="float16")`)."""
    with np.load(path) as stored:
        return any(stored[key].dtype == np.float16 for key in stored.files)


def _read_json(path):
    return json.loads(pathlib.Path(path).read_text())


def _normalized(value):
    return json.loads(json.dumps(value))


def preset_overrides(config):
    """The overrides that turn the preset `config["preset"]` into the row's config (its
    `network`, `model` and `training` tables). Raises `UsageError` if none do."""
    from keras_crvae import presets

    name = config["preset"]
    default = presets.get_preset(name)
    tables = {"network": default.network, "model": default.model,
              "training": dataclasses.asdict(default.training)}
    overrides = {}
    for table, values in tables.items():
        for key, value in config.get(table, {}).items():
            if key == "builder":
                continue
            if key not in values or _normalized(values[key]) != _normalized(value):
                overrides[key] = value
    try:
        rebuilt = presets.get_preset(name, **overrides)
    except ValueError as error:
        raise UsageError(f"--row: config.json is not preset {name!r} with overrides ({error})")
    if _normalized({"network": rebuilt.network, "model": rebuilt.model,
                    "training": dataclasses.asdict(rebuilt.training)}) != _normalized(
                        {table: config.get(table) for table in tables}):
        raise UsageError(f"--row: config.json is not preset {name!r} with overrides {overrides}")
    return overrides


def build_model(config, overrides, seed):
    """The row's model, computing in float32 (uncompiled)."""
    import keras_crvae

    return keras_crvae.from_preset(config["preset"], compile=False, seed=seed,
                                   **{**overrides, "precision": "float32"})


def per_image_nll(model, images, num_samples, options):
    """Per-image importance-sampled NLL with the options' seed: the same noise for any model."""
    from keras_crvae import evaluation

    return np.asarray(evaluation.importance_sampled_nll(
        model, images, num_samples=num_samples, batch_size=options.eval_batch_size,
        seed=options.seed, verbose=0).per_example, dtype=np.float64)


def float32_weights(row, reference, config, overrides, options):
    """The model holding the row's trained float32 weights, the float16 check's reference:
    `reference` (loaded from `final_weights.npz`) when that file is float32; else the row's
    `model.weights.h5` (`check_arguments` made sure it is here): a Table 1 row commits its final
    weights in float16 and is scored with those, and only the machine that trained it keeps the
    float32 ones."""
    if not stored_in_16_bits(row / reproduction.FINAL_WEIGHTS):
        return reference
    model = build_model(config, overrides, options.seed)
    model.load_weights(str(row / FULL_WEIGHTS))
    return model


def float16_check(reference, rounded, images, options):
    """Paired NLL of the 16-bit-rounded weights against the float32 weights (dict); raises
    `CheckFailed` when the mean difference is not below `options.max_nll_difference`."""
    start = time.time()
    nll32 = per_image_nll(reference, images, options.check_samples, options)
    nll16 = per_image_nll(rounded, images, options.check_samples, options)
    difference = nll16 - nll32
    error = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else 0.0
    check = {"num_images": int(len(images)), "num_samples": int(options.check_samples),
             "seed": int(options.seed), "nll_float32": round(float(nll32.mean()), 4),
             "nll_float16": round(float(nll16.mean()), 4),
             "difference_mean": float(difference.mean()),
             "difference_standard_error": float(error),
             "max_abs_difference_per_image": float(np.abs(difference).max()),
             "max_nll_difference": float(options.max_nll_difference),
             "seconds": round(time.time() - start, 1)}
    check["passed"] = bool(abs(check["difference_mean"]) < options.max_nll_difference)
    print(f"float16 check on {len(images)} images, k={options.check_samples}: NLL "
          f"{check['nll_float16']:.4f} (16-bit) vs {check['nll_float32']:.4f} (float32), "
          f"difference {check['difference_mean']:+.5f} +- {error:.5f} nats", flush=True)
    if not check["passed"]:
        raise CheckFailed(
            f"--max_nll_difference={options.max_nll_difference}: the 16-bit weights' NLL differs "
            f"from the float32 weights' by {check['difference_mean']:+.5f} nats (k="
            f"{options.check_samples}, {len(images)} images); nothing written, ship float32")
    return check


def store_weights_in_float16(path):
    """Rewrites the weight arrays of the `.keras` file `path` as float16 where float16 holds them
    exactly (the model's rounded float32 values), and deflates the zip. Keras widens them to the
    variables' float32 when loading. Returns (arrays stored in 16 bits, arrays kept)."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info.filename) for info in archive.infolist()}
    converted, kept = 0, 0
    weights = io.BytesIO()
    with h5py.File(io.BytesIO(members[WEIGHTS_MEMBER]), "r") as source, \
            h5py.File(weights, "w") as target:
        for key, value in source.attrs.items():
            target.attrs[key] = value

        def copy(name, item):
            nonlocal converted, kept
            if isinstance(item, h5py.Group):
                group = target.require_group(name)
                for key, value in item.attrs.items():
                    group.attrs[key] = value
                return
            array = item[()]
            if isinstance(array, np.ndarray) and array.dtype == np.float32:
                narrow = array.astype(np.float16)
                if np.array_equal(narrow.astype(np.float32), array):
                    array, converted = narrow, converted + 1
                else:
                    kept += 1
            target.create_dataset(name, data=array)
            for key, value in item.attrs.items():
                target[name].attrs[key] = value

        source.visititems(copy)
    members[WEIGHTS_MEMBER] = weights.getvalue()
    temporary = str(path) + ".tmp"
    with zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=9) as archive:
        for filename, content in members.items():
            archive.writestr(filename, content)
    os.replace(temporary, path)
    return converted, kept


def reload_check(name, folder, written, images, options):
    """`load_pretrained(name, directory=folder)` against the model that was written: the same
    weights bit for bit and the same per-image NLL. Returns (dict, loaded model); raises
    `CheckFailed`."""
    import keras_crvae

    loaded = keras_crvae.load_pretrained(name, directory=folder)
    mismatched = [variable.path for variable, stored, array in zip(
        loaded.weights, loaded.get_weights(), written.get_weights())
        if stored.dtype != array.dtype or not np.array_equal(stored, array)]
    if len(loaded.weights) != len(written.weights) or mismatched:
        raise CheckFailed(f"--row: the reloaded {name} holds other weights than were written "
                          f"({mismatched[:3] or 'another number of variables'}); nothing written")
    nll_written = per_image_nll(written, images, options.reload_check_samples, options)
    nll_loaded = per_image_nll(loaded, images, options.reload_check_samples, options)
    difference = float(np.abs(nll_loaded - nll_written).max())
    check = {"num_images": int(len(images)), "num_samples": int(options.reload_check_samples),
             "seed": int(options.seed), "weights_identical": True,
             "nll_in_memory": round(float(nll_written.mean()), 4),
             "nll_reloaded": round(float(nll_loaded.mean()), 4),
             "max_abs_difference_per_image": difference, "tolerance": RELOAD_TOLERANCE}
    if not difference <= RELOAD_TOLERANCE:
        raise CheckFailed(f"--row: the reloaded {name}'s NLL differs from the written model's by "
                          f"up to {difference:.2e} nats per image (tolerance {RELOAD_TOLERANCE}); "
                          "nothing written")
    return check, loaded


def weights_files(folder, weights_format, stored16):
    """The `metrics.json` facts of the written model files: their sizes, and for `model.keras` how
    many weight arrays are stored in 16 bits."""
    from keras_crvae import io as crvae_io

    if weights_format == "npz":
        names = (crvae_io.NPZ_FORM_CONFIG, crvae_io.NPZ_FORM_WEIGHTS)
        extra = {"weights_npz_is_row_file": True}
    else:
        names = (crvae_io.KERAS_MODEL_FILE,)
        extra = {"arrays_in_float16": stored16[0] if stored16 else 0,
                 "arrays_kept_float32": stored16[1] if stored16 else None,
                 "model_keras_bytes": os.path.getsize(folder / crvae_io.KERAS_MODEL_FILE)}
    return {"files": {name: os.path.getsize(folder / name) for name in names}, **extra}


def ship_row(options):
    """Writes `OUTPUT/NAME/` from the row `options.row` (module docstring). Returns its metrics.

    Raises:
        UsageError: a flag breaks the rules (exit 2).
        CheckFailed: the float16 or the reload check failed (exit 1); nothing is written.
    """
    row, name, destination = check_arguments(options)
    config, result = _read_json(row / "config.json"), _read_json(row / "result.json")
    train_info = _read_json(row / "train_info.json")
    sessions = reproduction.read_json_list(row / reproduction.SESSIONS)
    overrides = preset_overrides(config)

    import keras_crvae
    from keras_crvae import data, io as crvae_io

    valid = data.load_npz_images(options.valid_data)
    reference = build_model(config, overrides, options.seed)
    reproduction.load_weights_npz(reference, row / reproduction.FINAL_WEIGHTS)
    with staged_model_folder(options.output_dir, name, destination) as (staging, folder):
        shipped, check16 = reference, None
        if options.weights_dtype == "float16":
            # Exactly what `reproduction.save_weights_npz(dtype="float16")` keeps of the weights.
            reproduction.save_weights_npz(reference, staging / "float16.npz", dtype="float16")
            shipped = build_model(config, overrides, options.seed)
            reproduction.load_weights_npz(shipped, staging / "float16.npz")
            check16 = float16_check(float32_weights(row, reference, config, overrides, options),
                                    shipped, valid[:options.check_images], options)
        model_path, stored16 = folder / "model.keras", None
        if options.weights_format == "npz":
            # The row's file itself (`save_npz_form` checks it holds the shipped weights).
            crvae_io.save_npz_form(shipped, folder, weights=row / reproduction.FINAL_WEIGHTS)
        else:
            shipped.save(model_path)
            stored16 = store_weights_in_float16(model_path) if check16 else None
        reload, loaded = reload_check(name, staging, shipped, valid[:options.reload_check_images],
                                      options)
        metrics = {
            "name": name, "preset": config["preset"],
            "description": keras_crvae.get_preset(config["preset"]).description,
            "overrides": overrides, "row": relative_to_root(row),
            "model_class": type(loaded).__name__,
            "num_parameters": int(loaded.count_params()),
            "nll": result["nll"], "elbo": result["elbo"],
            "split": (f"the statically binarized MNIST validation split (`binarized_mnist.npz:"
                      f"x_valid`), its first {result['nll']['num_images']:,} images"
                      if result["nll"]["num_images"] < 10000 else
                      "all 10,000 images of the statically binarized MNIST validation split "
                      "(`binarized_mnist.npz:x_valid`; the test split stays held out)"),
            "active_units": reproduction.active_units_text(result),
            "active_units_per_layer": result.get("active_units_per_layer"),
            "num_latents": result.get("num_latents"),
            "paper_nll": result.get("paper_nll"),
            "gap_to_paper": (round(result["nll"]["mean"] - result["paper_nll"], 3)
                             if result.get("paper_nll") is not None else None),
            "epochs": int(result["epochs"]), "num_train_images": int(result["num_train_images"]),
            "schedule": schedule_text(config["training"], config["network"]),
            "training_precision": config["training"].get("precision", "float32"),
            "training": {**sessions_summary(sessions, int(result["epochs"])),
                         "train_info": train_info},
            "scoring_backend": result.get("backend", "?"),
            "scoring_seconds": result.get("eval_wall_seconds"),
            "machine": options.machine, "deviations": options.deviations,
            "weights": {"source": relative_to_root(row / reproduction.FINAL_WEIGHTS),
                        "source_sha256": crvae_io.file_sha256(row / reproduction.FINAL_WEIGHTS),
                        "dtype": options.weights_dtype, "format": options.weights_format,
                        **weights_files(folder, options.weights_format, stored16)},
            "float16_check": check16, "reload_check": reload,
            "float32_check": result.get("float32_check"),
            "rescored": (_read_json(row / reproduction.RESCORE)
                         if (row / reproduction.RESCORE).exists() else None),
            "rescore_command": options.rescore_command or default_rescore_command(
                row, config, result, overrides),
            "samples_png": int(options.num_sample_images), "seed": int(options.seed),
            "config": config,
        }
        if options.num_sample_images:
            import keras

            crvae_io.save_image_grid(keras.ops.convert_to_numpy(
                loaded.sample(options.num_sample_images, seed=options.seed)),
                folder / "samples.png", columns=8)
        (folder / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (folder / "README.md").write_text(model_card(metrics))
    files = ", ".join(f"{file} {size:,} bytes" for file, size in metrics["weights"]["files"].items())
    print(f"{name}: {destination} ({files}, {options.weights_dtype}; NLL {result['nll']['mean']:.2f} +- "
          f"{result['nll']['standard_error']:.2f})", flush=True)
    return metrics


def options_from_flags(options_class=ShipOptions):
    return options_class(**{field.name: getattr(FLAGS, field.name)
                            for field in dataclasses.fields(options_class)})


def command_line(tool, ship, options_class=ShipOptions):
    """The `main(argv)` of a shipping tool: `ship(options)` with the flags' options; a
    `UsageError` exits with status 2 and a `CheckFailed` with 1, each in one line."""
    def main(argv):
        if len(argv) > 1:
            print(f"{tool}: error: unexpected arguments {argv[1:]}; expected flags only",
                  file=sys.stderr)
            sys.exit(2)
        try:
            ship(options_from_flags(options_class))
        except UsageError as error:
            print(f"{tool}: error: {error}", file=sys.stderr)
            sys.exit(2)
        except CheckFailed as error:
            print(f"{tool}: refused: {error}", file=sys.stderr)
            sys.exit(1)
    return main


if __name__ == "__main__":
    define_flags()
    app.run(command_line("ship_pretrained.py", ship_row))
