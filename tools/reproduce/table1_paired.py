"""Table 1's crVAE-vs-VAE difference, paired per image (issue 25, item 5).

Both rows score the same validation images with the same noise seeds, part by part
(`score_nll_in_parts` in reproduction.py keeps each part in `ROW/score_parts.json`). The difference
of the two NLLs image by image is far tighter than two independent standard errors. This reads both
rows' kept parts (label `nll`), pairs the images that both rows have scored with the same settings
(k, part size, seed, batch sizes) and the same backend (which draws the noise), and prints the mean
per-image difference (first row minus second) with its standard error, beside the paper's
(80.84 - 82.04 = -1.20 nats). On a partial scoring it says how many images it pairs: an interim
figure until both rows have all their parts.

    python tools/reproduce/table1_paired.py --rows=reproductions/table1 --output=paired.json
    python tools/reproduce/table1_paired.py --rows=reproductions/table1 --only=mnist_vae

`--only=ROW` prints one row's NLL over its kept parts (mean and the standard error between its
images): the interim score of a row whose parts are not all done, before the other row has any.

Exit status 2, with one line naming the flag, when a row has no kept parts or the two rows' parts
were scored with other settings.
"""

import argparse
import json
import math
import pathlib
import sys

SCORE_PARTS = "score_parts.json"  # reproduction.SCORE_PARTS (this tool imports no TensorFlow)
PAPER = {"mnist_crvae": 80.84, "mnist_vae": 82.04}
PAIRED_SETTINGS = ("num_samples", "part_images", "seed", "eval_batch_size", "max_decoder_batch")


class UsageError(Exception):
    """A command-line error: exit status 2, one line."""


def kept_parts(rows, name, label="nll"):
    path = pathlib.Path(rows) / name / SCORE_PARTS
    if not path.is_file():
        raise UsageError(f"--rows={rows}: no {name}/{SCORE_PARTS}; expected a row whose final "
                         "score has begun (tools/reproduce/reproduce_table1.py)")
    entry = json.loads(path.read_text()).get(label)
    if not entry or not entry.get("parts"):
        raise UsageError(f"--rows={rows}: {name}/{SCORE_PARTS} holds no part of '{label}' yet")
    return entry


def paired_difference(first, second):
    """The paired per-image NLL difference of two rows' kept parts (`kept_parts` entries).

    Returns a dict: `num_images`, `parts` (the part indices paired), `first_nll` and `second_nll`
    (means over the paired images), `difference_mean` (first minus second), and
    `difference_standard_error` (the standard deviation of the per-image differences over the
    square root of their number). Raises UsageError when the settings differ."""
    settings = {key: (first["settings"].get(key), second["settings"].get(key))
                for key in PAIRED_SETTINGS}
    different = {key: pair for key, pair in settings.items() if pair[0] != pair[1]}
    if different:
        raise UsageError("--rows: the two rows' parts were scored with other settings "
                         f"({different}); they do not pair")
    parts, first_values, second_values = [], [], []
    for index in sorted(set(first["parts"]) & set(second["parts"]), key=int):
        a, b = first["parts"][index], second["parts"][index]
        if len(a["nll"]) != len(b["nll"]) or a.get("backend") != b.get("backend"):
            continue  # a part cut differently, or its noise from another backend
        parts.append(int(index))
        first_values += a["nll"]
        second_values += b["nll"]
    count = len(first_values)
    differences = [x - y for x, y in zip(first_values, second_values)]
    mean = sum(differences) / count if count else float("nan")
    spread = (math.sqrt(sum((d - mean) ** 2 for d in differences) / (count - 1) / count)
              if count > 1 else float("nan"))
    return {"num_images": count, "parts": parts,
            "first_nll": sum(first_values) / count if count else float("nan"),
            "second_nll": sum(second_values) / count if count else float("nan"),
            "difference_mean": mean, "difference_standard_error": spread}


def row_interim(entry):
    """One row's NLL over its kept parts (a `kept_parts` entry): a dict with `num_images`,
    `parts` (the part indices), `nll` (the mean over those images) and `nll_standard_error` (the
    standard deviation between images over the square root of their number)."""
    parts = sorted(entry["parts"], key=int)
    values = [value for index in parts for value in entry["parts"][index]["nll"]]
    count = len(values)
    mean = sum(values) / count if count else float("nan")
    spread = (math.sqrt(sum((v - mean) ** 2 for v in values) / (count - 1) / count)
              if count > 1 else float("nan"))
    return {"num_images": count, "parts": [int(index) for index in parts], "nll": mean,
            "nll_standard_error": spread}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="reproductions/table1",
                        help="The folder of the Table 1 rows.")
    parser.add_argument("--first", default="mnist_crvae")
    parser.add_argument("--second", default="mnist_vae")
    parser.add_argument("--output", default=None, help="Also write the result here (JSON).")
    parser.add_argument("--only", default=None,
                        help="One row's interim NLL over its kept parts instead of the pair.")
    args = parser.parse_args(argv)
    if args.only is not None:
        try:
            result = row_interim(kept_parts(args.rows, args.only))
        except UsageError as error:
            print(f"table1_paired: error: {error}", file=sys.stderr)
            return 2
        result.update(row=args.only, paper_nll=PAPER.get(args.only))
        print(f"{args.only}: NLL {result['nll']:.2f} +- {result['nll_standard_error']:.2f} nats "
              f"on {result['num_images']} images (parts {result['parts']}; the standard error is "
              "between images)" + (f"; paper {PAPER[args.only]:.2f} on the test set"
                                   if args.only in PAPER else ""))
        if args.output:
            pathlib.Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
        return 0
    try:
        result = paired_difference(kept_parts(args.rows, args.first),
                                   kept_parts(args.rows, args.second))
    except UsageError as error:
        print(f"table1_paired: error: {error}", file=sys.stderr)
        return 2
    if not result["num_images"]:
        print(f"table1_paired: error: --rows={args.rows}: no part scored by both rows yet",
              file=sys.stderr)
        return 2
    paper = (PAPER[args.first] - PAPER[args.second]
             if args.first in PAPER and args.second in PAPER else None)
    result.update(first=args.first, second=args.second, paper_difference=paper)
    print(f"{args.first} minus {args.second}, paired on {result['num_images']} images "
          f"(parts {result['parts']}): {result['difference_mean']:+.3f} +- "
          f"{result['difference_standard_error']:.3f} nats ({args.first} "
          f"{result['first_nll']:.2f}, {args.second} {result['second_nll']:.2f} on these images)"
          + (f"; paper {paper:+.2f}" if paper is not None else ""))
    if args.output:
        pathlib.Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
