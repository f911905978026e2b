"""Where the test suite's CPU goes: a pytest plugin that records each test's CPU seconds, and a
summary by file and by test (docs/performance.md, "CI time").

CPU seconds (user + system of the test process and of the subprocesses it has reaped, from
`getrusage`) do not depend on the machine's load, unlike the wall times of `--durations`, so the
profile can run beside other work. With pytest-xdist every worker writes its own JSON file.

    PYTHONPATH=tools/benchmarks PYTEST_ADDOPTS="-p pytest_cpu_profile" \\
        CPU_PROFILE_DIR=cpu_profile pytest -q                       # the TensorFlow leg
    PYTHONPATH=tools/benchmarks PYTEST_ADDOPTS="-p pytest_cpu_profile" \\
        CPU_PROFILE_DIR=cpu_profile_jax KERAS_BACKEND=jax pytest -q -m portable
    python tools/benchmarks/pytest_cpu_profile.py cpu_profile [--top=30]
"""

import argparse
import collections
import glob
import json
import os
import resource
import time

import pytest

OUTPUT_VARIABLE = "CPU_PROFILE_DIR"
_records = []


def cpu_seconds():
    """User + system seconds of this process and of its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu_start, wall_start = cpu_seconds(), time.time()
    yield
    _records.append({"id": item.nodeid, "cpu": round(cpu_seconds() - cpu_start, 3),
                     "wall": round(time.time() - wall_start, 3)})


def pytest_sessionfinish(session):
    folder = os.environ.get(OUTPUT_VARIABLE)
    if folder:
        os.makedirs(folder, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(os.path.join(folder, f"{worker}.json"), "w") as handle:
            json.dump(_records, handle)


def summarize(folder, top=30):
    """The profile in `folder` as lines: totals, per worker, the costliest files and tests."""
    records = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        worker = os.path.splitext(os.path.basename(path))[0]
        with open(path) as handle:
            records += [dict(record, worker=worker) for record in json.load(handle)]
    if not records:
        raise SystemExit(f"no profile in {folder}: run pytest with the plugin first (see --help)")
    lines = [f"{len(records)} tests, {sum(r['cpu'] for r in records):.0f} CPU-seconds"]
    for worker in sorted({r["worker"] for r in records}):
        mine = [r for r in records if r["worker"] == worker]
        lines.append(f"  {worker}: {sum(r['cpu'] for r in mine):.0f} CPU-s, "
                     f"{sum(r['wall'] for r in mine):.0f} s wall")
    by_file = collections.Counter()
    for record in records:
        by_file[record["id"].split("::")[0]] += record["cpu"]
    lines += ["", "| CPU-s | file |", "|---|---|"]
    lines += [f"| {cpu:.1f} | {name} |" for name, cpu in by_file.most_common(top)]
    lines += ["", "| CPU-s | wall s | test |", "|---|---|---|"]
    lines += [f"| {r['cpu']:.1f} | {r['wall']:.1f} | {r['id']} |"
              for r in sorted(records, key=lambda r: -r["cpu"])[:top]]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help=f"the {OUTPUT_VARIABLE} of the profiled run")
    parser.add_argument("--top", type=int, default=30, help="files and tests listed")
    arguments = parser.parse_args()
    print("\n".join(summarize(arguments.folder, arguments.top)))


if __name__ == "__main__":
    main()
