"""Reading TensorFlow profiler traces by network part (tools/benchmarks/profile_step.py).

No flags here, so tests and other tools can import it beside scripts that define theirs.
"""

import collections
import glob
import os

PARTS = ("conv", "lstm/recurrence", "batchnorm", "activation", "optimizer", "cast", "other")


def part_of(op_name, op_type):
    """The network part (PARTS) an op belongs to, from its name scope and type."""
    name = op_name.lower()
    kind = op_type.lower()
    if kind.startswith("resourceapply") or "optimizer" in name or "adam" in name or (
            "assign" in kind and "gradient" not in name):
        return "optimizer"
    if "/lstm" in name or "recurrence" in name:
        return "lstm/recurrence"
    if "/bn_" in name or "batch_norm" in name or "batchnorm" in name or "moments" in name:
        return "batchnorm"
    if "lrelu" in name or "leaky" in name or "crelu" in name:
        return "activation"
    if "conv" in kind or "conv" in name:
        return "conv"
    if op_type == "Cast":
        return "cast"
    return "other"


def op_times(logdir):
    """{(op_name, op_type): picoseconds} over the TensorFlow compute threads of a profile."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))
    if not files:
        raise RuntimeError(f"The profiler wrote no trace under {logdir}.")
    space = xplane_pb2.XSpace()
    with open(files[-1], "rb") as handle:
        space.ParseFromString(handle.read())
    totals = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or name.startswith("ExecutorState"):
                    continue
                op_name, op_type = name.rsplit(":", 1)
                totals[(op_name, op_type)] += event.duration_ps
    return totals
