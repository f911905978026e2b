"""The comparison run's curves (issue 26): sample FID, held-out reconstruction FID and MSE against
training machine-hours, every run on one axis, from the runs' `scores.json`
(`keras_crvae.jobs.scored_gan.plot_score_curves`), and a markdown table of the points, headed by
the late-scores table: each run's sample FID over its last `--late_hours` machine-hours (median,
range) and the difference of medians from the first run with a bootstrap interval.

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
    flags.DEFINE_float("late_hours", 1.0, "The window of the late-scores table: each run's "
                       "checkpoints in its last N machine-hours.")
    app.run(main)
