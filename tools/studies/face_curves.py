"""The comparison run's curves (issue 26): sample FID, held-out reconstruction FID and MSE against
training machine-hours, every run on one axis, from the runs' `scores.json`
(`keras_crvae.jobs.scored_gan.plot_score_curves`), and a markdown table of the points, headed by
the late-scores table: each run's sample FID over its last `--late_hours` machine-hours (median,
range) and the difference of medians from the first run with a bootstrap interval. With
`--grid_dir=docs/images/faces`, a selection of each run's grids (every `--grids_every_hours` and
the last) and a progress strip of every checkpoint go there, listed in the markdown.

    python tools/studies/face_curves.py \\
        --runs=crVAE-GAN=reproductions/faces/celeba_crvae_gan,VAE-GAN=reproductions/faces/celeba_vae_gan \\
        --figure_dir=docs/images/faces --markdown=docs/faces_curves.md

The figures need matplotlib (`pip install keras_crvae[plots]`); without it only the table is
written. Runs still training can be plotted: the curves end at their last scored epoch.
"""

import os
import pathlib

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS


def curve_table(folders):
    """Markdown: one line per scored epoch of each run."""
    from keras_crvae.jobs import scored_gan

    lines = ["| run | epoch | machine-hours | sample FID | reconstruction FID | "
             "reconstruction MSE |", "|---|---|---|---|---|---|"]
    curves = {metric: scored_gan.score_curves(folders, metric)
              for metric in scored_gan.CURVE_METRICS}
    for name in folders:
        hours, _, epochs = curves["sample_fid"][name]
        for i, epoch in enumerate(epochs):
            sample, reconstruction, mse = (curves[m][name][1][i] for m in scored_gan.CURVE_METRICS)
            lines.append(f"| {name} | {epoch} | {hours[i]:.3f} | {sample:.1f} | "
                         f"{reconstruction:.1f} | {mse:.4f} |")
    return "\n".join(lines) + "\n"


def late_table(folders, last_hours, metric="sample_fid"):
    """Markdown: each run's `metric` over its last `last_hours` machine-hours (checkpoints, median,
    range) and, for every run after the first, the difference of medians from the first with its
    bootstrap interval (`scored_gan.median_difference`)."""
    from keras_crvae.jobs import scored_gan

    late = scored_gan.late_scores(folders, metric, last_hours)
    names = list(folders)
    label = metric.replace("_", " ").replace("fid", "FID").replace("mse", "MSE")
    lines = [f"{label} over each run's last {last_hours:g} machine-hours of scores:", "",
             f"| run | checkpoints | median | min | max | median - {names[0]}'s (95% bootstrap "
             "interval over checkpoints) |", "|---|---|---|---|---|---|"]
    for name in names:
        values = late[name]
        if not len(values):
            lines.append(f"| {name} | 0 | - | - | - | - |")
            continue
        versus = "-"
        if name != names[0] and len(late[names[0]]):
            d = scored_gan.median_difference(late[names[0]], values)
            versus = f"{d['difference']:+.1f} ({d['low']:+.1f} to {d['high']:+.1f})"
        lines.append(f"| {name} | {len(values)} | {np.median(values):.1f} | {values.min():.1f} | "
                     f"{values.max():.1f} | {versus} |")
    return "\n".join(lines) + "\n"


def selected_checkpoints(hours, every_hours):
    """Indices of the checkpoints whose grids go into the docs: for every multiple of
    `every_hours`, the first checkpoint at or past it, and the last one (`hours` ascending)."""
    if not len(hours):
        return []
    chosen = {len(hours) - 1}
    mark = every_hours
    while mark <= hours[-1]:
        chosen.add(next(i for i, h in enumerate(hours) if h >= mark))
        mark += every_hours
    return sorted(chosen)


def copy_grids(folders, grid_dir, every_hours):
    """Copies each run's sample and reconstruction grids of `selected_checkpoints` into
    `grid_dir/RUN/` (the run folders keep every checkpoint's grids on the machine, uncommitted)
    and writes `grid_dir/RUN/progress.png` (`progress_strip`); returns the markdown listing them."""
    import shutil

    from keras_crvae.jobs import scored_gan

    lines = [f"Grids every {every_hours:g} machine-hours and at the last checkpoint (samples: the "
             "same latents every time; reconstructions: held-out faces, each row of 8 above its "
             "reconstructions); `progress.png`: the first 8 samples of every checkpoint, one row "
             "each, top to bottom.", "", "| run | epoch | machine-hours | sample FID | samples | "
             "reconstructions |", "|---|---|---|---|---|---|"]
    for name, folder in folders.items():
        entries = scored_gan.score_entries(folder)
        target = os.path.join(grid_dir, _slug(name))
        os.makedirs(target, exist_ok=True)
        for index in selected_checkpoints([e["machine_hours"] for e in entries], every_hours):
            entry, links = entries[index], []
            for key in ("samples_png", "reconstructions_png"):
                source = os.path.join(folder, entry[key])
                if os.path.exists(source):
                    shutil.copyfile(source, os.path.join(target, os.path.basename(source)))
                    links.append(f"[{key.split('_')[0]}]({_slug(name)}/"
                                 f"{os.path.basename(source)})")
                else:
                    links.append("(not on this machine)")
            lines.append(f"| {name} | {entry['epoch']} | {entry['machine_hours']:.2f} | "
                         f"{entry['sample_fid']:.1f} | {links[0]} | {links[1]} |")
        progress_strip(folder, entries, os.path.join(target, "progress.png"))
    return "\n".join(lines) + "\n"


def progress_strip(folder, entries, path, tile=64, padding=2):
    """The first row (8 samples of fixed latents) of every checkpoint's sample grid, at the
    images' own size, stacked top to bottom in epoch order: one PNG of the whole run (the grids
    are `keras_crvae.io.save_image_grid` PNGs, upscaled twice). Returns the rows drawn."""
    from PIL import Image

    rows = []
    for entry in entries:
        source = os.path.join(folder, entry["samples_png"])
        if not os.path.exists(source):
            continue
        grid = np.asarray(Image.open(source).convert("RGB"))
        scale = max(1, round(grid.shape[1] / (8 * (tile + padding) + padding)))
        rows.append(grid[::scale, ::scale][padding:padding + tile + padding])
    if rows:
        from keras_crvae.io import atomic_path

        with atomic_path(path) as temporary:
            Image.fromarray(np.concatenate(rows)).save(temporary, format="PNG")
    return len(rows)


def _slug(name):
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def main(argv):
    del argv
    from keras_crvae.evaluation.two_stage_diagnostics import matplotlib_available
    from keras_crvae.jobs import scored_gan

    folders = {}
    for item in FLAGS.runs:
        name, _, path = item.partition("=")
        if not name or not path or not os.path.isdir(path):
            raise app.UsageError(f"--runs={item}: expected NAME=RUN_DIR with an existing RUN_DIR")
        folders[name] = path
    table = late_table(folders, FLAGS.late_hours) + "\n" + curve_table(folders)
    if FLAGS.grid_dir:
        table += "\n" + copy_grids(folders, FLAGS.grid_dir, FLAGS.grids_every_hours)
    if FLAGS.markdown:
        pathlib.Path(FLAGS.markdown).write_text(table)
    else:
        print(table)
    if FLAGS.figure_dir and not matplotlib_available():
        print("matplotlib is not installed (pip install keras_crvae[plots]): no figures")
    elif FLAGS.figure_dir:
        for metric in scored_gan.CURVE_METRICS:
            path = os.path.join(FLAGS.figure_dir, f"{metric}_vs_machine_hours.png")
            scored_gan.plot_score_curves(folders, path, metric,
                                         floor=FLAGS.floor if "fid" in metric else None)
            print(f"wrote {path}")


if __name__ == "__main__":
    # Defined here, not on import: the tests import this module beside other tools' flags.
    flags.DEFINE_list("runs", None, "NAME=RUN_DIR pairs (RUN_DIR holds scores.json).",
                      required=True)
    flags.DEFINE_string("figure_dir", None, "Where {metric}_vs_machine_hours.png go (none "
                        "without).")
    flags.DEFINE_string("markdown", None, "The table of every scored point (printed without).")
    flags.DEFINE_float("floor", None, "A real-vs-real FID drawn as a line on the FID figures.")
    flags.DEFINE_string("grid_dir", None, "Where a selection of each run's grids is copied "
                        "(GRID_DIR/RUN/; none without): every --grids_every_hours and the last, "
                        "plus progress.png (8 samples of every checkpoint).")
    flags.DEFINE_float("grids_every_hours", 1.0, "Machine-hours between the grids copied.")
    flags.DEFINE_float("late_hours", 1.0, "The window of the late-scores table: each run's "
                       "checkpoints in its last N machine-hours.")
    app.run(main)
