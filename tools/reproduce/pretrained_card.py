"""The model card of a shipped reproduction row (`tools/reproduce/ship_pretrained.py`): its
`README.md` from the facts of `metrics.json`, and the pieces of those facts that are text (the
training stretches, the schedule in words, the row's `--rescore` command).
"""

import pathlib

import reproduction  # a script beside this one (its folder is on sys.path when run)

ROOT = reproduction.ROOT
# The reproduction script of a row folder's parent, for the card's rescore command.
RESCORE_SCRIPTS = {"iwae_table": "tools/reproduce/reproduce_iwae_table.py",
                   "table1": "tools/reproduce/reproduce_table1.py"}


def relative_to_root(path):
    """`path` relative to the repository root where it is inside it (for the card and
    metrics.json), else absolute."""
    path = pathlib.Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def sessions_summary(sessions, epochs):
    """Training time of the recorded stretches (`sessions.json`)."""
    recorded = sum(int(s["epochs_run"]) for s in sessions)
    first = min((int(s["first_epoch"]) for s in sessions), default=epochs)
    loads = [x for s in sessions for x in (s.get("load_average_at_end") or [])]
    return {"training_stretches": len(sessions),
            "train_seconds": round(sum(float(s["train_seconds"]) for s in sessions), 1),
            "epochs_recorded": recorded,
            # Epochs trained before the first record (e.g. before sessions.json existed).
            "epochs_before_first_record": first,
            "backends": sorted({s.get("backend", "?") for s in sessions}),
            "threads": sorted({int(s.get("threads", 0)) for s in sessions}),
            "load_average_range": [min(loads), max(loads)] if loads else None,
            "ended": [s.get("ended") for s in sessions]}


def set_text(value):
    """`value` as the text of a `--set KEY=TEXT` flag (`presets.parse_overrides`), or None where
    there is none (a nested list)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        if any(isinstance(item, (list, tuple, dict)) for item in value):
            return None
        # A trailing comma keeps a one-element list a list.
        return ",".join(str(item) for item in value) + ("," if len(value) == 1 else "")
    return "none" if value is None else str(value)


def default_rescore_command(row, config, result, overrides):
    """The reproduction script's `--rescore` command of the row ("" for a folder of no known script
    or overrides that `--set` cannot express)."""
    script = RESCORE_SCRIPTS.get(row.resolve().parent.name)
    texts = {key: set_text(value) for key, value in overrides.items() if key != "epochs"}
    if script is None or None in texts.values():
        return ""
    sets = " ".join(f"--set={key}={text}" for key, text in texts.items())
    # The backend that scored the row: the same noise, so the same number to every digit.
    backend = result.get("backend")
    prefix = f"KERAS_BACKEND={backend} " if backend and backend != "tensorflow" else ""
    return (f"{prefix}python {script} --rescore --presets={row.resolve().name} "
            f"--epochs={result['epochs']} --num_samples={result['nll']['num_samples']} "
            f"--num_valid={result['nll']['num_images']} {sets}".rstrip()
            + f" --output_dir={relative_to_root(row.resolve().parent)}")


def schedule_text(training, network):
    """The optimizer and learning-rate schedule of a preset's training table, in words."""
    text = (f"Adam (beta 0.9 / 0.999, epsilon {training['adam_epsilon']:g}), batch "
            f"{training['batch_size']}, ")
    if training["lr_schedule"] == "iwae":
        text += (f"Burda et al.'s schedule over the {training['epochs']} epochs: 8 stages, stage i "
                 f"lasting 3**i / 3280 of them at LR {training['learning_rate']:g} x 10**(-i/7) "
                 "(1e-3, 7.2e-4, ..., 1e-4)")
    elif training["lr_decay_every_epochs"]:
        text += (f"LR {training['learning_rate']:g}, x{training['lr_decay_rate']:g} every "
                 f"{training['lr_decay_every_epochs']} epochs")
    else:
        text += f"constant LR {training['learning_rate']:g}"
    if "recurrent" in (network.get("encoder_latent"), network.get("decoder_latent")):
        text += (f"; the recurrent parts at LR x{training['recurrent_lr_multiplier']:g}"
                 + (f", gradients clipped at {training['recurrent_gradient_clip']:g}"
                    if training["recurrent_gradient_clip"] else ""))
    return text + f"; training precision {training['precision']}"


def model_card(metrics):
    """The card `README.md` from `metrics.json`'s content."""
    nll, elbo, train = metrics["nll"], metrics["elbo"], metrics["training"]
    name, weights = metrics["name"], metrics["weights"]
    lines = [f"# {name} — model card", "",
             f"{metrics['description']} Preset `{metrics['preset']}`"
             + (f" with overrides `{metrics['overrides']}`" if metrics["overrides"] else "")
             + f"; {metrics['num_parameters']:,} parameters; class "
             f"`keras_crvae.models.{metrics['model_class']}`. Shipped from the reproduction row "
             f"`{metrics['row']}/` by `tools/reproduce/ship_pretrained.py`.", "",
             "```python", "import keras_crvae",
             f'model = keras_crvae.load_pretrained("{name}")   # uncompiled, computes in float32',
             "images = model.sample(16, seed=0)                 # (16, 28, 28, 1) pixel "
             "probabilities", "```", "",
             "From the command line: `crvae sample --model=saved_models/" + name
             + " --output=samples.png`, `crvae evaluate --model=saved_models/" + name
             + " ...`, `crvae export --model=saved_models/" + name + " ...`.", "",
             "## Result", "",
             "| metric | value (nats; mean +- standard error over images) |", "|---|---|",
             f"| importance-sampled NLL, k = {nll['num_samples']:,}, {nll['num_images']:,} "
             f"images | **{nll['mean']:.2f} +- {nll['standard_error']:.2f}** |",
             f"| ELBO (k = 1) | {elbo['mean']:.2f} +- {elbo['standard_error']:.2f} |",
             f"| active units (Cov_x E_q[z_i] > 0.01, per stochastic layer) | "
             f"{metrics['active_units']} of {metrics['num_latents']} |"]
    if metrics.get("paper_nll") is not None:
        # From the unrounded mean (`gap_to_paper` is rounded to 3 places: rounding it again to 2
        # can differ by 0.01 from the NLL printed above minus the paper's).
        lines.append(f"| paper NLL (test split) | {metrics['paper_nll']} (this row "
                     f"{nll['mean'] - metrics['paper_nll']:+.2f}) |")
    lines += ["", f"Split: {metrics['split']}. The numbers are the row's committed "
              f"`result.json` (scored on the {metrics['scoring_backend']} backend at the end of "
              "training); the shipped weights are the row's committed "
              f"`{reproduction.FINAL_WEIGHTS}` (sha256 `{weights['source_sha256'][:16]}...`)"
              + (", rounded to 16 bits" if weights["dtype"] == "float16" else "") + "."]
    if metrics.get("rescored"):
        rescored = metrics["rescored"]["nll"]
        lines += ["", f"Rescored from a clean checkout (`{metrics['row']}/rescore.json`): NLL "
                  f"{rescored['mean']:.5f} (k = {rescored['num_samples']:,}, "
                  f"{rescored['num_images']:,} images)."]
    lines += ["", "## Protocol", "",
              f"- Data: {metrics['num_train_images']:,} MNIST training images (`mnist.npz:x_train` "
              "less the grey sources of the binarized-MNIST validation images, held out so the "
              "validation split is unseen), **dynamically binarized** (a fresh Bernoulli draw each "
              "epoch).",
              f"- Epochs: {metrics['epochs']:,}.",
              f"- Optimizer: {metrics['schedule']}.",
              f"- Training time: {train['train_seconds']:,.0f} s "
              f"({train['train_seconds'] / 3600:.1f} h) over {train['training_stretches']} "
              "recorded stretches (`sessions.json`: "
              f"{train['epochs_recorded']:,} epochs, backend {', '.join(train['backends'])}, "
              f"threads {', '.join(str(t) for t in train['threads'])}"
              + (f", load average at their ends {train['load_average_range'][0]}-"
                 f"{train['load_average_range'][1]}" if train["load_average_range"] else "")
              + ")"
              + (f"; the first {train['epochs_before_first_record']} epochs ran before the "
                 "records began and are not counted" if train["epochs_before_first_record"]
                 else "") + ".",
              f"- Machine: {metrics['machine'] or 'not recorded in the row'}."]
    if metrics.get("deviations"):
        deviations = metrics["deviations"].rstrip()
        lines.append(f"- Deviations from the protocol: {deviations}"
                     + ("" if deviations.endswith(".") else "."))
    if metrics.get("float32_check"):
        check = metrics["float32_check"]
        lines.append(f"- Scored in {metrics['training_precision']}; on the first "
                     f"{check.get('num_images')} images a float32 copy scored "
                     f"{check.get('nll_float32')} against {check.get('nll')} (`float32_check`).")
    stored = ("stored as float16 (widened to float32 on loading)" if weights["dtype"] == "float16"
              else "in float32")
    lines += ["", "## Files", "", "| file | what |", "|---|---|"]
    if weights.get("format") == "npz":
        sizes = weights["files"]
        lines += [f"| `model.json` | the model's Keras config and its variables' paths and shapes "
                  "(the npz form: `keras_crvae.io.save_npz_form`) |",
                  f"| `weights.npz` ({sizes['weights.npz'] / 1e6:.1f} MB) | the weights, {stored}, "
                  f"no optimizer state: the row's `{reproduction.FINAL_WEIGHTS}` byte for byte "
                  "(the repository stores them once) |"]
    else:
        lines.append(f"| `model.keras` ({weights['model_keras_bytes'] / 1e6:.1f} MB) | the model, "
                     f"weights {stored}, no optimizer state |")
    lines.append("| `metrics.json` | the numbers of this card, the checks and the row's config |")
    if metrics.get("samples_png"):
        lines.append(f"| `samples.png` | {metrics['samples_png']} prior samples (pixel "
                     f"probabilities), `model.sample({metrics['samples_png']}, "
                     f"seed={metrics['seed']})` |")
    lines += ["", "## Checks", ""]
    reload = metrics["reload_check"]
    lines.append(f"- Reload: `keras_crvae.load_pretrained(\"{name}\")` gives back the written "
                 f"weights bit for bit and the same NLL (k = {reload['num_samples']}, first "
                 f"{reload['num_images']} validation images, same noise: largest per-image "
                 f"difference {reload['max_abs_difference_per_image']:.1e} nats).")
    if metrics.get("float16_check"):
        check = metrics["float16_check"]
        lines.append(f"- 16-bit weights: NLL {check['nll_float16']:.4f} against "
                     f"{check['nll_float32']:.4f} for the float32 weights (k = "
                     f"{check['num_samples']}, first {check['num_images']} validation images, "
                     f"paired): difference {check['difference_mean']:+.5f} +- "
                     f"{check['difference_standard_error']:.5f} nats, below the "
                     f"{check['max_nll_difference']} allowed.")
    if not metrics.get("rescore_command"):
        lines += ["", "## Rescore", "", "No rescore command: the row's folder has no known "
                  "reproduction script, or its overrides have no `--set` form (pass "
                  "`--rescore_command` to `tools/reproduce/ship_pretrained.py`)."]
    else:
        lines += ["", "## Rescore", "",
                  "Scores the committed weights again with the row's settings, seed and "
                  "backend (the same number), into the row's `rescore.json`; it trains nothing:",
                  "", "```bash",
                  metrics["rescore_command"], "```"]
    if metrics.get("samples_png"):
        lines += ["", "## Samples", "", "![prior samples](samples.png)"]
    return "\n".join(lines) + "\n"
