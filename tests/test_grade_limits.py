"""The grader's limits on one submission: a runaway cell and a memory hog.

A cell that outlives the cell limit is interrupted, and killed with every process it started
if it has not finished a short grace later (:data:`reglab.grading.run.GRACE_SECONDS`); a
kernel whose processes use more than the memory cap is killed (:mod:`reglab.grading.run`).
Either way the submission is recorded with the cell that was stopped and the worker goes on
with the next job. The cell limit here is 3 s and the cap 600 MB, so that the tests are quick
and never fill more than about 1 GB.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from reglab.grading.fork import PLAIN, TENSORFLOW
from reglab.grading import workers as grade_workers
from reglab.grading.grade import Settings, run_status

CELL_LIMIT = 3.0
BOUND = 2 * CELL_LIMIT + 10  # a worker is free again this long after a runaway cell starts
SLOW_CELL_LIMIT = 60.0  # for the memory tests: importing TensorFlow takes seconds
MEMORY_MB = 600
OVER_CAP = 900 * 2**20  # bytes a hog fills: past the cap, far below the machine's memory
REFUSED = 4 * 2**30  # one allocation the kernel's own limit refuses outright (never filled)


def cell(code: str, grade_id: str, graded: bool = False):
    meta = {"nbgrader": {"grade_id": grade_id, "grade": graded, "solution": not graded,
                         "points": 1 if graded else 0, "schema_version": 3}}
    return nbformat.v4.new_code_cell(code, metadata=meta)


def job(cells, memory_mb: int = 2048, cell_timeout: float = CELL_LIMIT,
        flavour: str = PLAIN) -> dict:
    nb = nbformat.v4.new_notebook(cells=cells)
    return {"notebook": nb, "seed": 1, "cell_timeout": cell_timeout, "memory_mb": memory_mb,
            "notebook_timeout": 10 * cell_timeout, "flavour": flavour,
            "graded": [i for i, c in enumerate(cells) if c.metadata["nbgrader"]["grade"]]}


def status(report: dict, memory_mb: int = 2048, cell_timeout: float = CELL_LIMIT):
    return run_status(report, Settings(seed=1, cell_timeout=cell_timeout, memory_mb=memory_mb,
                                       notebook_timeout=10 * cell_timeout))


_shared: list = []


@pytest.fixture
def worker():
    """One worker for the whole module (each test checks it is healthy afterwards); a new
    one if a test left it dead."""
    if not _shared or not _shared[0].alive():
        _shared[:] = [grade_workers.Worker()]
    yield _shared[0]


@pytest.fixture(scope="module", autouse=True)
def _stop_the_shared_worker():
    yield
    for worker in _shared:
        worker.kill()


def _writes(name: str, when: str = "time.time()") -> str:
    """Code that writes this process's pid and a time to PIDS/name (PIDS: the test's folder,
    filled in by :func:`with_pids`; the code needs ``os`` and ``time``)."""
    return f"open(PIDS + '/{name}', 'w').write(f'{{os.getpid()}} {{{when}}}')"


def with_pids(code: str, folder: Path) -> str:
    return code.replace("PIDS", repr(str(folder)))


def read_pids(folder: Path) -> dict[str, tuple[int, float]]:
    found = {}
    for path in folder.iterdir():
        pid, when = path.read_text().split()
        found[path.name] = (int(pid), float(when))
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed child waiting for its parent to collect it)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def survivors(pids, wait: float = 2.0) -> list[int]:
    deadline = time.monotonic() + wait
    while True:
        alive = [pid for pid in pids if running(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def kill_leftovers(folder: Path) -> None:
    """Clean up after a failing run: only the processes this test's cells started."""
    for pid, _ in read_pids(folder).values() if folder.exists() else []:
        if running(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


CHECK_NEXT = "from reglab.checks import check\ncheck('next', 2 + 2, None)"


def next_job_is_graded(worker) -> list[str]:
    report = worker.run(job([cell(CHECK_NEXT, "next-test", graded=True)]), deadline=60)
    problems = []
    if not worker.alive():
        problems.append("the worker died")
    graded = report.get("cells", {}).get("0") or {}
    if report.get("stopped") or graded.get("error") or not graded.get("records"):
        problems.append(f"the next job was not graded: {report}")
    return problems


def after_a_runaway(worker, tmp_path: Path, runaway: str, family: list[str]) -> list[str]:
    """Run [setup, runaway answer, its test, three more]; return what went wrong."""
    pids = tmp_path / "pids"
    pids.mkdir()
    cells = [cell("x = 1", "setup"), cell(with_pids(runaway, pids), "q1-loop"),
             cell("from reglab.checks import check\ncheck('q1', x, None)", "q1-loop-test",
                  graded=True)]
    cells += [cell(f"y{i} = {i}", f"later-{i}") for i in range(3)]
    problems = []
    try:
        report = worker.run(job(cells), deadline=60)
        finished = time.time()
        got = status(report)
        if got[0] != "timeout" or "cell 2 (question q1-loop)" not in got[1] \
                or "questions after it got no points" not in got[1]:
            problems.append(f"status and reason {got}")
        found = read_pids(pids)
        if sorted(found) != sorted(family):
            problems.append(f"the cell did not start its processes: {sorted(found)}")
        elapsed = finished - found["kernel"][1] if "kernel" in found else float("inf")
        if elapsed > BOUND:
            problems.append(f"the worker was free {elapsed:.1f} s after the cell started, "
                            f"more than {BOUND:g} s")
        alive = survivors([pid for pid, _ in found.values()])
        if alive:
            names = sorted(name for name, (pid, _) in found.items() if pid in alive)
            problems.append(f"still running after the job: {names}")
        problems += next_job_is_graded(worker)
    finally:
        kill_leftovers(pids)
    return problems


IGNORES_INTERRUPTS = f"""import os, signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
{_writes("kernel")}
while True:
    pass
"""


def test_a_cell_that_ignores_interrupts_is_killed_and_the_worker_goes_on(worker, tmp_path):
    problems = after_a_runaway(worker, tmp_path, IGNORES_INTERRUPTS, ["kernel"])
    assert not problems, problems


FAMILY = f"""import os, signal, subprocess, time
start = time.time()
signal.signal(signal.SIGINT, signal.SIG_IGN)   # inherited by everything started below
sleeper = subprocess.Popen(["sleep", "1000"])
open(PIDS + '/sleeper', 'w').write(f'{{sleeper.pid}} {{time.time()}}')
if os.fork() == 0:  # a child in the kernel's process group
    try:
        {_writes("child")}
        if os.fork() == 0:  # leaves the group and session; its parent stays
            os.setsid()
            {_writes("own-session")}
            time.sleep(1000)
        elif os.fork() == 0:  # a daemon: own session, its parent gone (an orphan)
            os.setsid()
            if os.fork() == 0:
                {_writes("orphan")}
                time.sleep(1000)
        else:
            time.sleep(1000)
    finally:
        os._exit(0)
while len(os.listdir(PIDS)) < 4:
    time.sleep(0.05)
{_writes("kernel", "start")}
while True:
    time.sleep(0.1)
"""


def test_a_cell_whose_children_fork_and_ignore_interrupts_leaves_no_process(worker, tmp_path):
    problems = after_a_runaway(worker, tmp_path, FAMILY,
                               ["child", "kernel", "orphan", "own-session", "sleeper"])
    assert not problems, problems


def in_folder(folder: Path) -> list[int]:
    """Processes whose working folder is ``folder`` (a kernel runs in its job's folder)."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.readlink(f"/proc/{entry}/cwd") == str(folder):
                found.append(int(entry))
        except OSError:
            continue
    return found


def start_template():
    return subprocess.Popen([sys.executable, "-m", "reglab.grading.fork"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def spawn_request(tmp_path: Path) -> tuple[Path, bytes]:
    home = tmp_path / "home"
    home.mkdir()
    request = {"connection_file": str(tmp_path / "kernel.json"), "cwd": str(home),
               "env": {"PATH": "/usr/bin:/bin", "HOME": str(home)}, "memory_bytes": 2**30}
    return home, (json.dumps(request) + "\n").encode()


def test_no_kernel_outlives_a_template_whose_worker_went_away(tmp_path):
    # the worker asked for a kernel and died before the template, still starting, answered
    home, request = spawn_request(tmp_path)
    template = start_template()
    template.stdout.close()
    template.stdin.write(request)
    template.stdin.close()
    try:
        template.wait(timeout=60)
        assert not survivors(in_folder(home)), "a kernel outlived its template"
    finally:
        for pid in in_folder(home):
            os.kill(pid, signal.SIGKILL)


def test_no_kernel_outlives_a_template_that_is_killed(tmp_path):
    home, request = spawn_request(tmp_path)
    template = start_template()
    try:
        template.stdin.write(request)
        template.stdin.flush()
        kernel = json.loads(template.stdout.readline())["pid"]
        os.kill(template.pid, signal.SIGKILL)
        template.wait()
        assert not survivors([kernel]), "a kernel outlived its template"
    finally:
        for pid in in_folder(home):
            os.kill(pid, signal.SIGKILL)


PARENT = """
import json, sys
from reglab.grading.workers import Worker
worker = Worker()
print(worker.process.pid, flush=True)
worker.run(json.loads(sys.stdin.readline()), deadline=600)
"""


def test_a_worker_whose_grader_is_killed_mid_job_leaves_no_process(tmp_path):
    # a Dask worker (here: a plain parent process) killed while its grading worker runs a
    # job: the worker must not grade on for up to the notebook limit, nor leave its kernel
    pids = tmp_path / "pids"
    pids.mkdir()
    sleeper = with_pids(f"import os, time\n{_writes('kernel')}\ntime.sleep(300)", pids)
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        worker_pid = int(parent.stdout.readline())
        long_job = job([cell(sleeper, "sleeps")], cell_timeout=300)
        parent.stdin.write(json.dumps(long_job) + "\n")
        parent.stdin.flush()
        deadline = time.monotonic() + 60
        while not (pids / "kernel").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        kernel_pid = read_pids(pids)["kernel"][0]
        os.killpg(parent.pid, signal.SIGKILL)  # the worker runs in a session of its own
        parent.wait()
        assert not survivors([worker_pid, kernel_pid], wait=5.0), (
            "the grading worker or its kernel outlived the grader that started it")
    finally:
        kill_leftovers(pids)


# ---------------------------------------------------------------- memory

def hog_notebook(tmp_path: Path, setup: str, refused: str, hog: str):
    """[setup, an allocation refused at once, a test after it, the hog, a test after it]."""
    pids = tmp_path / "pids"
    pids.mkdir()
    return pids, [
        cell(with_pids(f"import os, time\n{setup}\n{_writes('kernel')}", pids), "setup"),
        cell(refused, "q1-refused"),
        cell("from reglab.checks import check\ncheck('alive', 1, None)", "q1-refused-test",
             graded=True),
        cell(hog, "q2-hog"),
        cell("check('after', 1, None)", "q2-hog-test", graded=True)]


def memory_problems(worker, pids: Path, cells, refused_error: str,
                    flavour: str = PLAIN) -> list[str]:
    report = worker.run(job(cells, MEMORY_MB, SLOW_CELL_LIMIT, flavour), deadline=120)
    problems = []
    got = status(report, MEMORY_MB, SLOW_CELL_LIMIT)
    if got[0] != "memory" or "cell 4 (question q2-hog) ran out of memory (limit 600 MB)" \
            not in got[1]:
        problems.append(f"status and reason {got} (stopped: {report.get('stopped')}, "
                        f"exit code {report.get('exit_code')})")
    cells_run = report.get("cells", {})
    refused = (cells_run.get("1") or {}).get("error") or {}
    if refused.get("ename") != refused_error:
        problems.append(f"the refused allocation gave {refused}")
    if not (cells_run.get("2") or {}).get("records"):
        problems.append("the kernel did not go on after the refused allocation")
    if (cells_run.get("4") or {}).get("records"):
        problems.append("the test after the hog was run")
    if pids.exists() and survivors([pid for pid, _ in read_pids(pids).values()]):
        problems.append("the kernel is still running")
    return problems + next_job_is_graded(worker)


def test_numpy_past_the_cap_is_recorded_as_memory(worker, tmp_path):
    pids, cells = hog_notebook(tmp_path, "import numpy as np",
                               f"a = np.ones({REFUSED // 8})",
                               f"a = np.ones({OVER_CAP // 8})\nprint(a.sum())")
    try:
        problems = memory_problems(worker, pids, cells, "MemoryError")
    finally:
        kill_leftovers(pids)
    assert not problems, problems


def test_tensorflow_past_the_cap_is_recorded_as_memory(worker, tmp_path):
    """In a kernel forked with TensorFlow imported, as the TensorFlow exercises' are: the hog
    and the rest of the job take well under a second, between two of the watchdog's polls."""
    pytest.importorskip("tensorflow")
    pids, cells = hog_notebook(tmp_path, "import tensorflow as tf",
                               f"t = tf.zeros(({REFUSED // 4},))",
                               f"t = tf.zeros(({OVER_CAP // 4},))\nprint(float(t[-1]))")
    try:
        problems = memory_problems(worker, pids, cells, "ResourceExhaustedError", TENSORFLOW)
    finally:
        kill_leftovers(pids)
    assert not problems, problems


def test_a_hog_in_the_last_cell_is_caught_every_time(worker):
    """Memory taken and kept by the last cell, in a TensorFlow-forked kernel, the job ending
    a fraction of a second later: without the measurement at each cell's end, the 0.2 s poll
    missed it in about half of the runs (the verdict then depended on timing)."""
    pytest.importorskip("tensorflow")
    cells = [cell("import tensorflow as tf", "setup"),
             cell(f"x = tf.zeros(({OVER_CAP // 4},))", "q1-hog")]
    verdicts = [worker.run(job(cells, MEMORY_MB, SLOW_CELL_LIMIT, TENSORFLOW),
                           deadline=120).get("stopped") for _ in range(4)]
    assert verdicts == ["memory"] * 4, verdicts


HALF = 400 * 2**20  # under the cap alone, past it with a second one
SPLIT = f"""import os, subprocess, sys, time
import numpy as np
a = np.ones({HALF // 8})
child = subprocess.Popen([sys.executable, "-c", "import numpy as np, time; "
                          "a = np.ones({HALF // 8}); time.sleep(1000)"])
open(PIDS + '/child', 'w').write(f'{{child.pid}} {{time.time()}}')
child.wait()
"""


def test_the_cap_counts_the_kernel_and_its_children_together(worker, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    cells = [cell(with_pids(f"import os, time\n{_writes('kernel')}", pids), "setup"),
             cell(with_pids(SPLIT, pids), "q1-split")]
    try:
        report = worker.run(job(cells, MEMORY_MB, SLOW_CELL_LIMIT), deadline=120)
        assert status(report, MEMORY_MB, SLOW_CELL_LIMIT) == (
            "memory", "cell 2 (question q1-split) ran out of memory (limit 600 MB) and was "
                      "stopped; questions after it got no points"), report
        assert not survivors([pid for pid, _ in read_pids(pids).values()])
        assert not next_job_is_graded(worker)
    finally:
        kill_leftovers(pids)


TRAIN = """import numpy as np, keras
from reglab.checks import check
keras.utils.set_random_seed(0)
x = np.random.default_rng(0).random((512, 8)).astype("float32")
y = (x.sum(axis=1) > 4).astype("float32")
model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
                          keras.layers.Dropout(0.2), keras.layers.Dense(1, activation="sigmoid")])
model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
history = model.fit(x, y, epochs=5, batch_size=32, validation_split=0.25, verbose=0)
check("trained", bool(np.isfinite(history.history["loss"][-1])), None, how="exact")
"""


def test_tensorflow_trains_under_the_cap(worker):
    pytest.importorskip("tensorflow")
    report = worker.run(job([cell("import tensorflow as tf", "setup"),
                             cell(TRAIN, "train-test", graded=True)], MEMORY_MB,
                            SLOW_CELL_LIMIT, TENSORFLOW), deadline=120)
    assert status(report, MEMORY_MB, SLOW_CELL_LIMIT) == ("graded", ""), report
    assert report["cells"]["1"]["records"][0]["value"] is True
    assert not next_job_is_graded(worker)


# ---------------------------------------------------------------- the reasons students read

def test_reasons_name_the_cell_and_its_question():
    cells = {"0": {"ran": True, "records": [], "error": None, "grade_id": "setup"},
             "3": {"ran": True, "records": [], "grade_id": "q2-fit",
                   "error": {"ename": "ResourceExhaustedError", "evalue": "OOM"}}}
    assert status({"stopped": None, "cells": cells, "timed_out_cells": []}, MEMORY_MB) == (
        "memory", "cell 4 (question q2-fit) ran out of memory (limit 600 MB)")
    stopped = {"stopped": "cell-timeout", "stopped_cell": 3, "cells": cells,
               "timed_out_cells": [3], "exit_code": -9}
    assert status(stopped) == ("timeout", "cell 4 (question q2-fit) ran longer than 3 s and "
                                          "was stopped; questions after it got no points")
    interrupted = {"stopped": None, "cells": cells, "timed_out_cells": [3]}
    assert status(interrupted)[1] == ("cell 4 (question q2-fit) ran longer than 3 s and was "
                                      "interrupted")
