"""The face budget study (issue 26, step 1): which width, batch size and number of epochs gives the
crVAE-GAN the best held-out FID per machine-hour, and does bfloat16 keep sample quality?

Each pilot is a scored face run (`tools/reproduce/face_run.py`, `keras_crvae.jobs.scored_gan`) of
`--preset` with its own settings and the same machine-hours budget (`--budget_hours`, wall x
threads), trained on faces 0..8499 of celeba64_train.npz and scored every `--score_every` epochs
on faces 8500..9499 (the held-out set of every face FID in the docs). Its curve (FID against
machine-hours and epochs) is in `--output_dir/PILOT/scores.json`; `--output` (JSON) and
`--markdown` collect one row per pilot, rewritten after each. A pilot that finished (budget spent
or epochs done) with the same settings is skipped on a rerun; a stopped one (SIGTERM,
`--stop_after_minutes`) resumes, and the study stops after it so the next call carries on.

A pilot is `NAME:KEY=VALUE,...`: `width` full / half / quarter (the preset's base_channels=32,
discriminator_channels=64, or 1/2, 1/4 of both: in channels; the "quarter width" runs of
docs/reproduction.md, 16/32 channels, are "half" here), `batch` (batch size), `precision` float32 /
bfloat16, and any preset override (`epochs`, `lr_decay_every_epochs`, ...: the number of epochs
sets the step decay's place; within the budget the curve shows FID after each scored epoch).

The real study (about 3.5 machine-hours: 7 pilots of 0.5; in the background, after the Table 1
rows; two queue workers may run different `--pilots` of it into the same files at once):

    python tools/studies/face_budget.py --budget_hours=0.5 --score_every=2 --threads=2 \\
        --output=docs/face_budget.json --markdown=docs/face_budget.md --output_dir=runs/face_budget

Smoke check of the whole driver (a couple of minutes; toy numbers, not results):

    python tools/studies/face_budget.py --smoke --output_dir=/tmp/face_budget_smoke \\
        --output=/tmp/face_budget_smoke/study.json --markdown=/tmp/face_budget_smoke/study.md
"""

import fcntl
import json
import os
import pathlib
import sys

from absl import app, flags

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "reproduce"))
import face_run  # noqa: E402  (tools/reproduce/face_run.py: the flags and the scored run)

FLAGS = flags.FLAGS
WIDTHS = {"full": (32, 64), "half": (16, 32), "quarter": (8, 16)}  # base, discriminator channels
DEFAULT_PILOTS = [
    "quarter_b64_f32:width=quarter,batch=64,precision=float32",
    "quarter_b64_bf16:width=quarter,batch=64,precision=bfloat16",
    "half_b64_f32:width=half,batch=64,precision=float32",
    "half_b64_bf16:width=half,batch=64,precision=bfloat16",
    "full_b64_bf16:width=full,batch=64,precision=bfloat16",
    # No full-width float32 pilot: bfloat16 keeps sample quality at quarter and half width
    # (docs/face_budget.md), and half an hour of full-width float32 is ~2 epochs, too few to score.
    "half_b32_bf16:width=half,batch=32,precision=bfloat16",
    "half_b128_bf16:width=half,batch=128,precision=bfloat16",
]
# A pilot is finished (skipped on a rerun) in these states of `train_scored_gan`.
FINISHED = ("budget spent", "trained")
# --smoke: a few faces, quarter width, a budget of seconds; as many samples as held-out faces
# (one batch shape for the Inception network to trace) and eager training steps (tracing the
# crVAE-GAN's step costs more than its 3 steps).
SMOKE = {"num_faces": 60, "num_held_out": 12, "num_samples": 12, "score_every": 1,
         "budget_hours": 0.004, "run_eagerly": True,
         "pilots": ["quarter_f32:width=quarter,batch=16,precision=float32",
                    "quarter_bf16:width=quarter,batch=16,precision=bfloat16"]}


def parse_pilot(text):
    """`NAME:KEY=VALUE,...` -> `(name, {key: value})` with `width`, `batch` and `precision` checked
    (values stay strings; `pilot_overrides` turns them into a run's settings)."""
    name, _, settings = text.partition(":")
    if not name or not settings:
        raise ValueError(f"pilot {text!r}: expected NAME:KEY=VALUE,...")
    spec = {}
    for item in settings.split(","):
        key, _, value = item.partition("=")
        if not key or not value:
            raise ValueError(f"pilot {text!r}: {item!r} is not KEY=VALUE")
        spec[key.strip()] = value.strip()
    if spec.get("width", "full") not in WIDTHS:
        raise ValueError(f"pilot {text!r}: width must be one of {sorted(WIDTHS)}")
    if spec.get("precision", "float32") not in ("float32", "bfloat16"):
        raise ValueError(f"pilot {text!r}: precision must be float32 or bfloat16")
    return name, spec


def group_pilot_items(items):
    """`--pilots` as absl splits it (at every comma) -> one `NAME:KEY=VALUE,...` text per pilot: an
    item with a `:` starts a pilot, the items after it are its further settings."""
    texts = []
    for item in items:
        if ":" in item or not texts:
            texts.append(item)
        else:
            texts[-1] += "," + item
    return texts


def pilot_settings(spec):
    """A pilot's spec as `train_scored_gan` arguments: the preset overrides with `batch_size` and
    `epochs` (None: the preset's)."""
    from keras_crvae import presets

    spec = dict(spec)
    base, discriminator = WIDTHS[spec.pop("width", "full")]
    sizes = {"batch_size": spec.pop("batch", None), "epochs": spec.pop("epochs", None)}
    overrides = presets.parse_overrides([f"{k}={v}" for k, v in spec.items()])
    return {"base_channels": base, "discriminator_channels": discriminator, **overrides,
            **{key: None if value is None else int(value) for key, value in sizes.items()}}


def summarize(spec, result):
    """A pilot's row: its spec, status, epochs, machine-hours and the scores of its curve (the last
    and the best sample FID, with the machine-hours it was reached at)."""
    curve = result["scores"]
    row = {"spec": spec, "status": result["status"], "epochs_done": result["epochs_done"],
           "machine_hours": round(result["machine_hours"], 4), "curve_points": len(curve)}
    if curve:
        last, best = curve[-1], min(curve, key=lambda e: e["sample_fid"])
        row.update(last_sample_fid=last["sample_fid"], last_reconstruction_fid=last[
            "reconstruction_fid"], last_reconstruction_mse=last["reconstruction_mse"],
            best_sample_fid=best["sample_fid"], best_at_machine_hours=best["machine_hours"],
            best_at_epoch=best["epoch"])
    return row


def read_pilots(path):
    """The pilot rows of a study JSON (`{}` when there is none yet)."""
    if not os.path.exists(path):
        return {}
    return json.loads(pathlib.Path(path).read_text()).get("pilots", {})


def merged_pilots(on_disk, own, ran):
    """The rows to write: those on disk (another call's, possibly newer than this call's copy)
    with the rows of the pilots this call `ran` on top, in the order of DEFAULT_PILOTS (then any
    other names alphabetically)."""
    rows = {**on_disk, **{name: own[name] for name in ran if name in own}}
    rows.update({name: row for name, row in own.items() if name not in rows})
    order = [text.partition(":")[0] for text in DEFAULT_PILOTS]
    return dict(sorted(rows.items(), key=lambda item: (
        order.index(item[0]) if item[0] in order else len(order), item[0])))


def run_pilots(pilots, results, run_pilot, save):
    """Runs each pilot `(name, spec)` not finished in `results["pilots"]` with the same spec:
    `run_pilot(name, spec)` -> a `train_scored_gan` result; after each, its row (`summarize`) goes
    into `results` and `save(results, ran)` is called with the names run so far. Stops after a
    pilot that was stopped (SIGTERM or the call's time budget): the next call resumes it. Returns
    the names run."""
    ran = []
    for name, spec in pilots:
        done = results["pilots"].get(name)
        if done and done["spec"] == spec and done["status"] in FINISHED:
            print(f"{name}: finished ({done['status']}), skipped", flush=True)
            continue
        result = run_pilot(name, spec)
        results["pilots"][name] = summarize(spec, result)
        ran.append(name)
        save(results, ran)
        if result["status"] not in FINISHED:
            print(f"{name}: stopped ({result['status']}); run the same command to resume",
                  flush=True)
            break
    return ran


def markdown_table(results):
    """The study's table (one line per pilot), as markdown."""
    lines = [f"Budget per pilot: {results['budget_hours']} machine-hours (wall x threads); "
             f"sample FID: {results['num_samples']} samples vs {results['num_held_out']} "
             f"held-out faces; {results['features']}.", "",
             "| pilot | width (base/discriminator channels) | batch | precision | status | "
             "epochs | machine-hours | sample FID (last) | best sample FID (at h) | "
             "reconstruction FID | reconstruction MSE |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in results["pilots"].items():
        spec = row["spec"]
        width, scored = spec.get("width", "full"), "last_sample_fid" in row
        lines.append(
            f"| {name} | {width} ({'/'.join(map(str, WIDTHS[width]))}) | "
            f"{spec.get('batch', 'preset')} | "
            f"{spec.get('precision', 'float32')} | {row['status']} | {row['epochs_done']} | "
            f"{row['machine_hours']:.3f} | "
            + (f"{row['last_sample_fid']:.1f} | {row['best_sample_fid']:.1f} "
               f"({row['best_at_machine_hours']:.3f}) | {row['last_reconstruction_fid']:.1f} | "
               f"{row['last_reconstruction_mse']:.4f} |" if scored else "- | - | - | - |"))
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    from keras_crvae.io import write_json
    from keras_crvae.jobs import longrun

    longrun.limit_threads(FLAGS.threads)  # before anything computes
    if FLAGS.smoke:
        for key in ("num_faces", "num_held_out", "num_samples", "score_every"):
            setattr(FLAGS, key, SMOKE[key])
    try:
        texts = group_pilot_items(FLAGS.pilots or []) or (
            SMOKE["pilots"] if FLAGS.smoke else DEFAULT_PILOTS)
        pilots = [parse_pilot(text) for text in texts]
    except ValueError as error:
        raise app.UsageError(f"--pilots: {error}")
    budget_hours = SMOKE["budget_hours"] if FLAGS.smoke else FLAGS.budget_hours
    faces = face_run.load_faces()
    results = {"preset": FLAGS.preset, "budget_hours": budget_hours, "pilots": {}}
    results["pilots"] = read_pilots(FLAGS.output)
    results.update(faces=f"{face_run.checkout_paths.in_checkout(FLAGS.faces)}: first "
                         f"{len(faces) - FLAGS.num_held_out} trained on, "
                         f"last {FLAGS.num_held_out} held out", num_held_out=FLAGS.num_held_out,
                   num_samples=FLAGS.num_samples, threads=FLAGS.threads,
                   features=f"Inception pool3 ({FLAGS.fid_precision})", seed=FLAGS.seed)

    extractor = []  # built once, on the first pilot that trains (finished ones need none)

    def run_pilot(name, spec):
        print(f"{name}: {spec}", flush=True)
        if not extractor:
            from keras_crvae import evaluation

            extractor.append(evaluation.FIDInceptionV3(
                weights=FLAGS.fid_weights, input_range=(-1, 1), precision=FLAGS.fid_precision))
        return face_run.scored_run(FLAGS.preset, os.path.join(FLAGS.output_dir, name), faces,
                                   budget_hours, pilot_settings(spec),
                                   feature_extractor=extractor[0],
                                   run_eagerly=SMOKE["run_eagerly"] if FLAGS.smoke else False)

    def save(results, ran):
        # Two queue workers may run different pilots of one study into the same files: under a
        # lock, re-read the rows the other wrote since and keep them beside this call's.
        with open(FLAGS.output + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            results["pilots"] = merged_pilots(read_pilots(FLAGS.output), results["pilots"], ran)
            write_json(results, FLAGS.output)
            pathlib.Path(FLAGS.markdown).write_text(markdown_table(results))

    run_pilots(pilots, results, run_pilot, save)
    print(markdown_table(results))


if __name__ == "__main__":
    face_run.define_flags()
    flags.DEFINE_enum("preset", "celeba_crvae_gan", ["celeba_crvae_gan", "celeba_vae_gan"],
                      "The preset every pilot trains.")
    flags.DEFINE_list("pilots", None, "NAME:KEY=VALUE,... pilots (default: the 7 of the study).")
    flags.DEFINE_float("budget_hours", 0.5, "Machine-hours of training per pilot.")
    flags.DEFINE_string("output_dir", "runs/face_budget", "Run folders, one per pilot.")
    flags.DEFINE_string("output", "face_budget.json", "JSON results (rewritten after each pilot).")
    flags.DEFINE_string("markdown", "face_budget.md", "The markdown table.")
    flags.DEFINE_bool("smoke", False, f"A tiny check of the driver: {SMOKE}.")
    app.run(main)
