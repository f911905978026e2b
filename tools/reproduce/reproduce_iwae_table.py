"""Reproduces Burda et al.'s MNIST table (IWAE paper, Table 1: VAE vs IWAE, 1 vs 2 stochastic layers).

Rows (presets in `keras_crvae.presets`; published MNIST test NLL / active units):

    mnist_mlp_vae           VAE,  k=1, 1 stochastic layer    86.76 / 19
    mnist_mlp_iwae          IWAE, k=5, 1 stochastic layer    85.54 / 22
    mnist_mlp_vae_2layer    VAE,  k=1, 2 stochastic layers   85.33 / 16+5
    mnist_mlp_iwae_2layer   IWAE, k=5, 2 stochastic layers   83.89 / 21+5

Protocol: the presets' architectures and optimiser (tanh MLPs, Adam eps 1e-4, batches of 20, the
8-stage 3**i learning-rate schedule squeezed into `--epochs`), the MNIST training images
dynamically binarized, the output bias started at the training pixels' mean logit (as the authors'
code does). Evaluation: the importance-sampled NLL with k=5000 (the paper's k) on the statically
binarized MNIST *validation* split (`shared/data/binarized_mnist.npz:x_valid`; the test split is held
out), the ELBO, and the active units per stochastic layer (`Cov_x E_q[z_i] > 0.01`, the paper's
section 5.2). The validation images are binarizations of MNIST training images: their 9,991 grey
sources are dropped from training (`--hold_out_valid_sources`), leaving 50,009 (the paper: 59,600
training images, tested on the MNIST test images). The paper trains 3,280 epochs (`--epochs=3280`,
the schedule unsqueezed); `--epochs` (default 100) is the CPU budget.

    python tools/reproduce/reproduce_iwae_table.py --output_dir=runs/iwae_table --results_json=docs/iwae_table.json
    python tools/reproduce/reproduce_iwae_table.py --smoke --output_dir=/tmp/iwae_smoke    # about a minute
    python tools/reproduce/reproduce_iwae_table.py --threads=1 ...     # one TensorFlow thread (a shared CPU)

Per preset it writes `OUTPUT/PRESET/`: `config.json`, `history.csv` (training curve: per-epoch
training bound, and every `--validation_every` epochs the validation loss), `model.weights.h5`,
`final_weights.npz` (the same weights without the optimizer's state, 1.6-2.0 MB: committed),
`train_info.json`, `result.json`, and `backup/` while training. A preset with a `result.json` is
skipped; a killed run resumes from its last finished epoch (`keras.callbacks.BackupAndRestore`) or
goes straight to evaluation once `model.weights.h5` or `final_weights.npz` is written. A row longer
than one session: run it with `--stop_after_minutes`; at the stop it writes its light state
(`resume_weights.npz` + `resume.json`, 1.6-2.0 MB: weights and epoch) and appends a progress NLL (k
as the table, first `--progress_images` validation images) to `progress.json`. Committed, these let the next session
resume without `backup/` (a fresh Adam; the schedule continues from the epoch reached). After every
finished row the table is rewritten: `OUTPUT/results.json`, `OUTPUT/results.md` and, with
`--results_json`, that file too, each with the checks of the finished rows (`table_checks`: every
gap against the 1.5-nat goal, and the paper's orderings IWAE < VAE and 2 layers < 1 layer where both
rows of a pair are finished), which `--report_progress` prints as well.

Anyone can check a finished row's committed score from a clean checkout: `--rescore` scores it again
from `final_weights.npz` (with the same settings and seed: the same number) into `rescore.json`:

    python tools/reproduce/reproduce_iwae_table.py --rescore --presets=mnist_mlp_vae --epochs=3280 \
        --output_dir=reproductions/iwae_table      # k=5000 on 10,000 images: 12-25 minutes

The paper's full schedule, one session at a time (the state under `reproductions/` is committed):

    python tools/reproduce/reproduce_iwae_table.py --presets=mnist_mlp_vae --epochs=3280 --threads=1 \
        --validation_every=20 --stop_after_minutes=120 --output_dir=reproductions/iwae_table \
        --results_json=docs/iwae_table_3280.json
"""

import dataclasses
import json
import os
import pathlib

from absl import app, flags

import reproduction
from reproduction import FLAGS, RunSettings

IWAE_TABLE_ORDER = ["mnist_mlp_vae", "mnist_mlp_iwae", "mnist_mlp_vae_2layer",
                    "mnist_mlp_iwae_2layer"]
PAPER_ACTIVE_UNITS = {"mnist_mlp_vae": "19", "mnist_mlp_iwae": "22",
                      "mnist_mlp_vae_2layer": "16+5", "mnist_mlp_iwae_2layer": "21+5"}
# The goal for every row: within this many nats of the published NLL.
GOAL_NATS = 1.5
# The paper's orderings, (better, worse, what it says): IWAE below VAE, 2 layers below 1 layer.
PAPER_ORDERINGS = [
    ("mnist_mlp_iwae", "mnist_mlp_vae", "IWAE (k=5) below VAE, 1 stochastic layer"),
    ("mnist_mlp_iwae_2layer", "mnist_mlp_vae_2layer", "IWAE (k=5) below VAE, 2 stochastic layers"),
    ("mnist_mlp_vae_2layer", "mnist_mlp_vae", "2 layers below 1 layer, VAE"),
    ("mnist_mlp_iwae_2layer", "mnist_mlp_iwae", "2 layers below 1 layer, IWAE (k=5)"),
]
DEFAULTS = RunSettings(epochs=100, num_samples=5000, num_valid=0, num_train=0)
SMOKE = RunSettings(epochs=1, num_samples=20, num_valid=200, num_train=2000)

reproduction.define_flags("runs/iwae_table", DEFAULTS, SMOKE, max_decoder_batch=5000,
                          steps_per_execution=300)
flags.DEFINE_string("results_json", None, "Also write the finished rows to this JSON file.")
flags.DEFINE_integer("validation_every", 10, "Epochs between validation losses in history.csv.")
flags.DEFINE_boolean("report_progress", False, "Print a table of the rows under --output_dir that "
                     "are training or trained (epochs, sessions, validation curve, progress NLLs) "
                     "and exit; trains nothing.")


def run_preset(name, folder, train_images, valid_images, settings, overrides):
    """Trains (or resumes) and evaluates one row; returns its result dict."""
    import keras

    preset, model, compile_model = reproduction.build_row(name, folder, settings, overrides,
                                                          train_images)
    batch_size = preset.training.batch_size
    train_info = reproduction.train_row(
        model, folder, train_images, batch_size, settings.epochs, compile_model,
        valid_images=valid_images, settings=settings, validation_data=valid_images,
        validation_freq=max(1, FLAGS.validation_every))
    scores = reproduction.evaluate_row(model, valid_images, settings, folder)
    return {
        "preset": name,
        "stochastic_layers": len(scores["active_units_per_layer"]),
        "iwae_samples": preset.model["iwae_samples"],
        "epochs": settings.epochs,
        "num_train_images": int(len(train_images)),
        **train_info,
        **scores,
        "active_units": reproduction.active_units_text(scores),
        "paper_nll": preset.paper_nll,
        "paper_active_units": PAPER_ACTIVE_UNITS.get(name),
        "backend": keras.backend.backend(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def validation_curve(history_path):
    """`{epoch: {metric: value}}` of the validation metrics (`val_elbo`, and `val_iwae_bound` for IWAE
    rows) in a row's `history.csv`, epochs counted from 1; {} when there is none."""
    import csv

    path = pathlib.Path(history_path)
    if not path.exists():
        return {}
    curve = {}
    with path.open() as handle:
        for record in csv.DictReader(handle):
            values = {key[4:]: round(float(value), 3) for key, value in record.items()
                      if key in ("val_elbo", "val_iwae_bound") and value not in ("", "NA")}
            if values:
                curve[int(record["epoch"]) + 1] = values
    return curve


def table_checks(rows, goal_nats=GOAL_NATS):
    """What the table must show, for the finished rows among `rows` (result dicts): each row's gap
    to the published NLL against `goal_nats`, and each of the paper's orderings
    (`PAPER_ORDERINGS`) whose two rows are both finished, with the NLL difference and its standard
    error. The error combines the two rows' standard errors as if independent; both rows score the
    same images, whose NLLs are positively correlated across models, so it overstates the error of
    the difference.

    Returns `{"goal_nats", "rows": [{preset, gap, within_goal}], "orderings": [{claim, better,
    worse, difference, standard_error, holds}]}`; `difference` is the worse row's NLL less the
    better row's, > 0 when the ordering holds.
    """
    by_name = {row["preset"]: row for row in rows}
    checks = {"goal_nats": goal_nats, "rows": [], "orderings": []}
    for row in rows:
        if row.get("paper_nll") is None:
            continue
        gap = row["nll"]["mean"] - row["paper_nll"]
        checks["rows"].append({"preset": row["preset"], "gap": round(gap, 3),
                               "within_goal": bool(abs(gap) <= goal_nats)})
    for better, worse, claim in PAPER_ORDERINGS:
        if better in by_name and worse in by_name:
            low, high = by_name[better]["nll"], by_name[worse]["nll"]
            difference = high["mean"] - low["mean"]
            error = (low["standard_error"] ** 2 + high["standard_error"] ** 2) ** 0.5
            checks["orderings"].append({"claim": claim, "better": better, "worse": worse,
                                        "difference": round(difference, 3),
                                        "standard_error": round(error, 3),
                                        "holds": bool(difference > 0)})
    return checks


def checks_text(checks):
    """Markdown lines of `table_checks`."""
    lines = []
    for row in checks["rows"]:
        verdict = "within" if row["within_goal"] else "**outside**"
        lines.append(f"- `{row['preset']}`: {row['gap']:+.2f} nats from the paper, {verdict} "
                     f"the {checks['goal_nats']}-nat goal")
    for order in checks["orderings"]:
        verdict = "holds" if order["holds"] else "**does not hold**"
        lines.append(f"- {order['claim']}: `{order['worse']}` - `{order['better']}` = "
                     f"{order['difference']:+.2f} +- {order['standard_error']:.2f} nats, {verdict}")
    if not checks["orderings"]:
        lines.append("- the orderings: no pair of rows finished yet")
    return lines


def write_tables(output_dir, results, settings, results_json=None, show=True):
    """`OUTPUT/results.json`, `OUTPUT/results.md` (and `results_json`) of the finished rows."""
    for row in results:  # the training curve of every finished row, from its history.csv
        row["validation_curve"] = validation_curve(
            pathlib.Path(output_dir) / row["preset"] / "history.csv")
    rows = reproduction.sort_rows(results, IWAE_TABLE_ORDER)
    report = {"settings": dataclasses.asdict(settings), "results": rows,
              "checks": table_checks(rows)}
    (pathlib.Path(output_dir) / "results.json").write_text(json.dumps(report, indent=2))
    if results_json:
        pathlib.Path(results_json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(results_json).write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "| model | layers | k | epochs | s/epoch | ELBO | NLL (samples) | active units | paper NLL | "
        "paper units | gap |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gap = "" if r["paper_nll"] is None else f"{r['nll']['mean'] - r['paper_nll']:+.2f}"
        lines.append(
            f"| {r['preset']} | {r['stochastic_layers']} | {r['iwae_samples']} | {r['epochs']} | "
            f"{r.get('epoch_seconds', '-')} | {r['elbo']['mean']:.2f} | "
            f"{r['nll']['mean']:.2f} +- {r['nll']['standard_error']:.2f} "
            f"({r['nll']['num_samples']}) | {r['active_units']} | "
            f"{r['paper_nll']} | {r['paper_active_units'] or '-'} | {gap} |")
    lines += ["", "Checks (`table_checks`):"] + checks_text(report["checks"])
    (pathlib.Path(output_dir) / "results.md").write_text("\n".join(lines) + "\n")
    if show:
        print("\n".join(lines))


def progress_report(output_dir, names, curve_epochs=(100, 200, 400, 800, 1600, 3280)):
    """Markdown of the rows under `output_dir` that are training or trained: epochs done, training
    time per session, the validation bound along the way and the progress NLLs (`progress.json`)."""
    folder = pathlib.Path(output_dir)
    lines = ["| row | epochs done | sessions (backend: epochs, s/epoch) | validation bound at epoch "
             + ", ".join(str(e) for e in curve_epochs) + " | progress NLL (epoch: nats, k, images) |",
             "|---|---|---|---|---|"]
    for name in names:
        row = folder / name
        if not (row / "history.csv").exists():
            continue
        curve = validation_curve(row / "history.csv")
        done = (json.loads((row / "result.json").read_text())["epochs"]
                if (row / "result.json").exists() else reproduction.resume_epoch(row)[0])
        sessions = reproduction.read_json_list(row / reproduction.SESSIONS)
        progress = reproduction.read_json_list(row / reproduction.PROGRESS)
        total = json.loads((row / "config.json").read_text())["training"]["epochs"]
        bound = "iwae_bound" if "iwae" in name else "elbo"
        points = [f"{curve[e][bound]:.2f}" if e in curve and bound in curve[e] else "-"
                  for e in curve_epochs]
        lines.append(
            f"| {name} | {done} / {total} | "
            + "; ".join(f"{x['backend']}: {x['epochs_run']}, {x['epoch_seconds']}"
                        for x in sessions)
            + f" | {', '.join(points)} | "
            + "; ".join(f"{p['epoch']}: {p['nll']:.2f} +- {p['nll_standard_error']:.2f}, "
                        f"k={p['num_samples']}, {p['num_images']}" for p in progress) + " |")
    finished = [json.loads((folder / name / "result.json").read_text()) for name in names
                if (folder / name / "result.json").exists()]
    if finished:
        lines += ["", "Checks of the finished rows (NLL on all scored images):"]
        lines += checks_text(table_checks(finished))
    return "\n".join(lines)


def main(_):
    if FLAGS.report_progress:
        print(progress_report(FLAGS.output_dir, FLAGS.presets or IWAE_TABLE_ORDER))
        return
    settings = reproduction.resolve_settings(DEFAULTS, SMOKE)
    reproduction.run_rows(
        FLAGS.presets or IWAE_TABLE_ORDER, settings,
        lambda: reproduction.prepare_rows(settings),
        lambda name, folder, prepared: run_preset(
            name, folder, prepared.train_images, prepared.valid_images, settings,
            prepared.overrides),
        lambda results, show: write_tables(FLAGS.output_dir, results, settings,
                                           FLAGS.results_json, show=show))


if __name__ == "__main__":
    app.run(main)
