"""tools/benchmarks/pytest_cpu_profile.py: the plugin records every test's CPU seconds (a busy test
costs more than an idle one, a subprocess's CPU counts) and the summary ranks them."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "benchmarks"
sys.path.insert(0, str(TOOLS))
import pytest_cpu_profile  # noqa: E402

SAMPLE = '''
import subprocess, sys, time

def test_busy():
    end = time.process_time() + 0.5
    while time.process_time() < end:
        pass

def test_child():
    subprocess.run([sys.executable, "-c",
                    "import time\\nend = time.process_time() + 0.5\\nwhile time.process_time() < end: pass"],
                   check=True)

def test_idle():
    time.sleep(0.3)
'''


def test_records_cpu_per_test_and_summarizes(tmp_path):
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    environment = dict(os.environ, PYTHONPATH=str(TOOLS),
                       CPU_PROFILE_DIR=str(tmp_path / "profile"))
    for name in [name for name in environment if name.startswith("PYTEST_")]:
        environment.pop(name)  # e.g. PYTEST_XDIST_WORKER, which would name the profile's file
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "pytest_cpu_profile",
                             "-p", "no:cacheprovider", "test_sample.py"], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    records = {r["id"].split("::")[1]: r for r in
               json.loads((tmp_path / "profile" / "main.json").read_text())}
    assert set(records) == {"test_busy", "test_child", "test_idle"}
    assert records["test_busy"]["cpu"] >= 0.45 and records["test_child"]["cpu"] >= 0.45
    assert records["test_idle"]["cpu"] < 0.2 and records["test_idle"]["wall"] >= 0.3
    lines = pytest_cpu_profile.summarize(str(tmp_path / "profile"), top=2)
    assert lines[0].startswith("3 tests, ")
    tests = lines[lines.index("| CPU-s | wall s | test |") + 2:]
    assert len(tests) == 2 and not any("test_idle" in line for line in tests)
