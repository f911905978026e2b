"""Moves a file too large for one transfer (a row's light state, ~30 MB in float16 for mnist_crvae)
between machines whose transfers cap single files (the lent device returns files of at most 16 MiB):
split it into numbered parts with a manifest holding each part's and the whole file's SHA-256, and
join them on the other side, checking every digest.

    python tools/reproduce/weight_parts.py split reproductions/table1/mnist_crvae/resume_weights.npz \
        --parts_dir=$OUT/parts                      # parts of at most --part_mib (default 15)
    python tools/reproduce/weight_parts.py join parts/resume_weights.npz.manifest.json \
        --joined=reproductions/table1/mnist_crvae/resume_weights.npz

A join writes to a temporary file and renames it only when the whole file's digest matches, so a
missing or damaged part never leaves a half-written state where a row would resume from it.
"""

import hashlib
import json
import os
import pathlib
import sys

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("parts_dir", None, "split: folder of the parts and manifest (default: the "
                    "file's folder).")
flags.DEFINE_string("joined", None, "join: the reassembled file (default: the name in the "
                    "manifest, beside it).")
flags.DEFINE_float("part_mib", 15.0, "split: largest part, MiB.")

MANIFEST_SUFFIX = ".manifest.json"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def split_file(path, output_dir, part_bytes):
    """Writes `NAME.partNNN` files of at most `part_bytes` and `NAME.manifest.json` into
    `output_dir`; returns the manifest's path."""
    path, output_dir = pathlib.Path(path), pathlib.Path(output_dir)
    data = path.read_bytes()
    output_dir.mkdir(parents=True, exist_ok=True)
    parts = []
    for index, start in enumerate(range(0, max(len(data), 1), part_bytes)):
        chunk = data[start:start + part_bytes]
        name = f"{path.name}.part{index:03d}"
        (output_dir / name).write_bytes(chunk)
        parts.append({"name": name, "bytes": len(chunk), "sha256": sha256(chunk)})
    manifest = output_dir / (path.name + MANIFEST_SUFFIX)
    manifest.write_text(json.dumps({"name": path.name, "bytes": len(data), "sha256": sha256(data),
                                    "parts": parts}, indent=2) + "\n")
    return manifest


def join_parts(manifest_path, output=None):
    """Reassembles the file a manifest describes (parts beside the manifest), checks each part's
    and the whole file's digest, and writes it atomically; returns the written path.

    Raises:
        ValueError: a part is missing, has another size or digest, or the whole does not match.
    """
    manifest_path = pathlib.Path(manifest_path)
    manifest = json.loads(manifest_path.read_text())
    output = pathlib.Path(output) if output else manifest_path.parent / manifest["name"]
    chunks = []
    for part in manifest["parts"]:
        part_path = manifest_path.parent / part["name"]
        if not part_path.exists():
            raise ValueError(f"{part_path}: missing part of {manifest['name']}")
        chunk = part_path.read_bytes()
        if len(chunk) != part["bytes"] or sha256(chunk) != part["sha256"]:
            raise ValueError(f"{part_path}: damaged part (size or SHA-256 differs from the manifest)")
        chunks.append(chunk)
    data = b"".join(chunks)
    if sha256(data) != manifest["sha256"]:
        raise ValueError(f"{manifest_path}: the joined parts do not give the file's SHA-256")
    temporary = output.with_name(output.name + ".joining")
    temporary.write_bytes(data)
    os.replace(temporary, output)
    return output


def main(argv):
    usage = "usage: weight_parts.py split FILE [--parts_dir=D] | join MANIFEST [--joined=F]"
    if len(argv) != 3 or argv[1] not in ("split", "join"):
        print(usage, file=sys.stderr)
        return 2
    command, path = argv[1], pathlib.Path(argv[2])
    if not path.is_file():
        print(f"weight_parts.py {command}: {path}: no such file", file=sys.stderr)
        return 2
    if FLAGS.part_mib <= 0:
        print(f"weight_parts.py: --part_mib={FLAGS.part_mib}: expected a positive number of MiB",
              file=sys.stderr)
        return 2
    if command == "split":
        manifest = split_file(path, FLAGS.parts_dir or path.parent, int(FLAGS.part_mib * 2**20))
        print(f"wrote {manifest} and {len(json.loads(manifest.read_text())['parts'])} part(s)")
        return 0
    try:
        written = join_parts(path, FLAGS.joined)
    except ValueError as error:
        print(f"weight_parts.py join: {error}", file=sys.stderr)
        return 1
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    app.run(main)
