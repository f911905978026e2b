"""Does a Table 1 row's model work as shipped? From a row's weights file (the light state
`resume_weights.npz` while it trains, `final_weights.npz` once it is done), in a temporary folder:

1. the npz form (`keras_crvae.io.save_npz_form`, what `ship_pretrained.py --weights_format=npz`
   ships): `model.json` beside the row's weights file copied byte for byte, loaded back with
   `keras_crvae.io.load_model` and compared with the model in memory, bit for bit;
2. `crvae sample --model=FOLDER` (16 samples, a PNG kept as `OUTPUT`'s `.png` sibling to look at);
3. `crvae export --model=FOLDER` (a SavedModel), loaded with `tf.saved_model.load`: its `sample`
   signature against the model's `decode` on the same latent noise (largest absolute difference).

Prints and writes (JSON) the files' sizes, the checks and each step's seconds, with the load
average (the rows may be training beside it). Nothing is written to the repository but `OUTPUT` and
its PNG.

    python tools/reproduce/table1_serving_check.py [PRESET=mnist_crvae] [WEIGHTS=resume_weights.npz]
        [OUTPUT=table1_serving_check.json]
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import ship_pretrained  # noqa: E402  (a script beside this one: the row's preset and overrides)


def _crvae(*arguments):
    """`crvae ARGUMENTS` of this checkout; returns (exit status, seconds, last stderr line)."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "crvae_cli", *arguments], capture_output=True,
                            text=True, env=environment)
    lines = (result.stdout + result.stderr).strip().splitlines()
    return result.returncode, round(time.perf_counter() - start, 1), (lines[-1] if lines else "")


def _folder_bytes(folder):
    return sum(path.stat().st_size for path in pathlib.Path(folder).rglob("*") if path.is_file())


def main(preset="mnist_crvae", weights="resume_weights.npz", output="table1_serving_check.json"):
    import keras
    import tensorflow as tf

    from keras_crvae import io as crvae_io

    row = ROOT / "reproductions" / "table1" / preset
    weights_path = row / weights
    if not weights_path.exists():
        raise SystemExit(f"No weights file at {weights_path}.")
    config = json.loads((row / "config.json").read_text())
    report = {"preset": preset, "weights": str(weights_path.relative_to(ROOT)),
              "weights_sha256": crvae_io.file_sha256(weights_path), "seconds": {}}
    if (row / "resume.json").exists() and weights == "resume_weights.npz":
        report["epochs_done"] = json.loads((row / "resume.json").read_text()).get("epochs_done")
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="table1-serving-"))
    try:
        start = time.perf_counter()
        model = ship_pretrained.build_model(config, ship_pretrained.preset_overrides(config), 0)
        crvae_io.load_weights_npz(model, weights_path)
        folder = scratch / preset
        crvae_io.save_npz_form(model, folder, weights=weights_path)
        loaded = crvae_io.load_model(folder)
        report["seconds"]["npz_form"] = round(time.perf_counter() - start, 1)
        report["num_parameters"] = int(model.count_params())
        report["files"] = {path.name: path.stat().st_size for path in sorted(folder.iterdir())}
        report["weights_file_identical"] = ((folder / crvae_io.NPZ_FORM_WEIGHTS).read_bytes()
                                            == weights_path.read_bytes())
        report["reloaded_bit_for_bit"] = len(loaded.weights) == len(model.weights) and all(
            a.dtype == b.dtype and np.array_equal(a, b)
            for a, b in zip(loaded.get_weights(), model.get_weights()))

        png = pathlib.Path(output).with_suffix(".png")
        status, seconds, line = _crvae("sample", f"--model={folder}", "--num_images=16",
                                       f"--output={scratch / 'samples.png'}")
        report["sample"] = {"exit_status": status, "last_line": line}
        report["seconds"]["crvae_sample"] = seconds
        if status == 0:
            shutil.copyfile(scratch / "samples.png", png)
            report["sample"]["png"] = str(png)

        status, seconds, line = _crvae("export", f"--model={folder}",
                                       f"--output={scratch / 'export'}")
        report["export"] = {"exit_status": status, "last_line": line}
        report["seconds"]["crvae_export"] = seconds
        if status == 0:
            report["export"]["saved_model_bytes"] = _folder_bytes(scratch / "export")
            served = tf.saved_model.load(str(scratch / "export" / "1"))
            z = np.random.default_rng(0).standard_normal(
                (3,) + tuple(model.latent_shape)).astype("float32")
            images = served.signatures["sample"](z=tf.constant(z))["images"].numpy()
            report["export"]["sample_signature_max_abs_difference_from_decode"] = float(
                np.abs(images - keras.ops.convert_to_numpy(model.decode(z))).max())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report["load_average"] = [round(value, 2) for value in os.getloadavg()]
    print(json.dumps(report, indent=2))
    pathlib.Path(output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"Wrote {output}")
    passed = (report["weights_file_identical"] and report["reloaded_bit_for_bit"]
              and report["sample"]["exit_status"] == 0 and report["export"]["exit_status"] == 0)
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main(*sys.argv[1:])
