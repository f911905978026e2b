"""Reproduces the crVAE paper's MNIST ablation (supplement section B, Table 1) with the library's tools.

Protocol (the reference `main_mnist.lua` of WendyShang/crVAE and its README command lines): train each
preset on the MNIST training images, dynamically binarized every epoch, with Adam, the preset's
learning rates and step decay (x0.5 every 50 epochs), 200 epochs; evaluate the importance-sampled NLL
(k=5000 here by default; the paper used 10,000) on statically binarized MNIST. The paper reports the
Larochelle *test* split; this script uses the *validation* split (`x_valid` of
`shared/data/binarized_mnist.npz`), because the test split is held out for independent evaluation.
The validation images are binarizations of 10,000 MNIST *training* images, so those are dropped from
the training set (`--hold_out_valid_sources`, default; `keras_crvae.data.binarization_sources`):
50,009 of the 60,000 training images remain, the paper's test images were never trained on either.

    python tools/reproduce/reproduce_table1.py --output_dir=table1 [--presets=mnist_vae,mnist_crvae]
    python tools/reproduce/reproduce_table1.py --presets=mnist_crvae_2layer ...   # "2 stochastic layers", 79.65
    python tools/reproduce/reproduce_table1.py --smoke --output_dir=/tmp/smoke        # a few minutes on CPU
    KERAS_BACKEND=jax python tools/reproduce/reproduce_table1.py ...                  # the lent GPU (no TF)

Per preset it writes `OUTPUT/PRESET/`: `model.weights.h5`, `final_weights.npz` (the weights without
the optimizer's state), `config.json`, `history.csv`, `result.json`, `train_info.json`, and `backup/`
while training. A preset with a `result.json` is skipped; a killed run resumes from its last finished
epoch (`keras.callbacks.BackupAndRestore`), or goes straight to evaluation once `model.weights.h5` or
`final_weights.npz` is written; `--rescore` scores a finished row again from `final_weights.npz`
into `rescore.json` (`reproduction.rescore_rows`). A row stopped by
`--stop_after_minutes` also leaves its light state (`resume_weights.npz`, `resume.json`: weights and
epoch, small enough to commit or carry) and a progress NLL (`progress.json`); on a machine without its
`backup/` the row resumes from that (`reproduction.train_row`). `OUTPUT/results.json` and
`OUTPUT/results.md` collect every finished row next to the paper's number.
"""

import dataclasses
import json
import pathlib

from absl import app

import reproduction
from reproduction import FLAGS, RunSettings

TABLE1_ORDER = ["mnist_vae", "mnist_crvae", "mnist_cvae", "mnist_crvae_inference",
                "mnist_crvae_generation", "mnist_crvae_t4", "mnist_crvae_t16", "mnist_criwae",
                "mnist_crvae_2layer"]
DEFAULTS = RunSettings(epochs=200, num_samples=5000, num_valid=0, num_train=0)
SMOKE = RunSettings(epochs=2, num_samples=50, num_valid=500, num_train=1024)

# The final NLL (k=5000 on 2,000 images, and the float32 check of 1,000) takes hours on a CPU core:
# it is scored 100 images at a time and resumes across sessions (`score_nll_in_parts`).
reproduction.define_flags("table1_runs", DEFAULTS, SMOKE, max_decoder_batch=2000,
                          steps_per_execution=10, score_part_images=100)


def run_preset(name, folder, train_images, valid_images, settings, overrides):
    """Trains (or resumes) and evaluates one row; returns its result dict."""
    import keras

    import keras_crvae

    preset, model, compile_model = reproduction.build_row(name, folder, settings, overrides,
                                                          train_images)
    batch_size = preset.training.batch_size
    steps_per_epoch = len(train_images) // batch_size
    train_info = reproduction.train_row(model, folder, train_images, batch_size, settings.epochs,
                                        compile_model, valid_images=valid_images,
                                        settings=settings)
    scores = reproduction.evaluate_row(
        model, valid_images, settings, folder,
        float32_model=lambda: keras_crvae.from_preset(
            name, steps_per_epoch=steps_per_epoch, seed=FLAGS.seed, compile=False,
            epochs=settings.epochs, **{**overrides, "precision": "float32"}))
    return {
        "preset": name,
        "time_steps": preset.network["time_steps"] if "recurrent" in (
            preset.network["encoder_latent"], preset.network["decoder_latent"]) else None,
        "epochs": settings.epochs,
        "num_train_images": int(len(train_images)),
        **train_info,
        **scores,
        "active_units": sum(scores["active_units_per_layer"]),
        "paper_nll": preset.paper_nll,
        "backend": keras.backend.backend(),
    }


def write_tables(output_dir, results, settings, show=True):
    rows = reproduction.sort_rows(results, TABLE1_ORDER)
    (pathlib.Path(output_dir) / "results.json").write_text(json.dumps(
        {"settings": dataclasses.asdict(settings), "results": rows}, indent=2))
    lines = [
        "| model | T | epochs | training (wall hours, stretches) | ELBO | NLL (k, images) | "
        "scoring (wall hours) | bfloat16 - float32 (images) | active units | paper NLL | gap |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gap = "" if r["paper_nll"] is None else f"{r['nll']['mean'] - r['paper_nll']:+.2f}"
        # A row trained over several sessions: all its stretches (train_info.json).
        hours = r.get("train_seconds_all_sessions", r["wall_seconds_this_session"]) / 3600.0
        scoring = r["nll"].get("scoring_seconds")
        check = r.get("float32_check") or {}
        lines.append(
            f"| {r['preset']} | {r['time_steps'] or '-'} | {r['epochs']} | "
            f"{hours:.1f} ({r.get('training_sessions', 1)}) | {r['elbo']['mean']:.2f} | "
            f"{r['nll']['mean']:.2f} +- {r['nll']['standard_error']:.2f} "
            f"({r['nll']['num_samples']}, {r['nll']['num_images']}) | "
            f"{'-' if scoring is None else f'{scoring / 3600.0:.1f}'} | "
            + (f"{check['difference_mean']:+.3f} +- {check['difference_standard_error']:.3f} "
               f"({check['num_images']})" if "difference_mean" in check else "-")
            + f" | {reproduction.active_units_text(r)}/{r['num_latents']} | "
            f"{r['paper_nll'] if r['paper_nll'] is not None else '-'} | {gap} |")
    (pathlib.Path(output_dir) / "results.md").write_text("\n".join(lines) + "\n")
    if show:
        print("\n".join(lines))


def main(_):
    settings = reproduction.resolve_settings(DEFAULTS, SMOKE)
    names = FLAGS.presets or (["mnist_vae", "mnist_crvae"] if FLAGS.smoke else TABLE1_ORDER)
    reproduction.run_rows(
        names, settings, lambda: reproduction.prepare_rows(settings),
        lambda name, folder, prepared: run_preset(
            name, folder, prepared.train_images, prepared.valid_images, settings,
            prepared.overrides),
        lambda results, show: write_tables(FLAGS.output_dir, results, settings, show=show))


if __name__ == "__main__":
    app.run(main)
