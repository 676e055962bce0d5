"""The grader: merging, judging, feedback, resume and Dask (the corpus is test_grade_corpus)."""

from __future__ import annotations

import json

import nbformat
import pytest
from conftest import ROOT, full_points

from reglab.grading import merge
from reglab.grading import workers as grade_workers
from reglab.grading.grade import find_submissions, grade, parse_submission
from reglab.grading.judge import HIDDEN_FAILED, feedback_html, judge_cell

SOURCE = ROOT / "solutions" / "01-overfitting.ipynb"
FULL = full_points(SOURCE)


def rec(name, value, how="allclose"):
    return {"name": name, "how": how, "rtol": 1e-7, "atol": 1e-10, "value": value}


def ran(*records, error=None):
    return {"ran": True, "records": list(records), "error": error}


def test_strip_expected_drops_the_argument_and_its_computation():
    code = ("def _ref(x):\n    return x * 2\n"
            "for i in range(3):\n    x = i + 1\n    expected = _ref(x)\n"
            "    check(f'c{i}', f(x), expected, rtol=1e-9)\n"
            "check('v', f(2), expected=[4])\n")
    out = merge.strip_expected(code)
    assert "_ref" not in out and "expected =" not in out and "[4]" not in out
    assert "expected=None" in out
    assert "f(x)" in out and "x = i + 1" in out


def test_strip_expected_keeps_an_accumulator_that_is_only_added_to():
    # the reference answer is summed up in a loop; once `expected` is stripped, `total` is
    # only read by its own `+=`, which must still find it bound
    code = ("total = 0.0\nfor i in range(3):\n    total += i\n"
            "expected = total\ncheck('t', f(1), expected)\n")
    out = merge.strip_expected(code)
    assert "expected = total" not in out
    exec(out, {"f": lambda x: x, "check": lambda *args, **kwargs: None})  # no NameError


def test_merged_notebook_holds_no_reference_value_and_only_student_answers():
    source = merge.read_source(SOURCE)
    nb = merge.merged_notebook(source, {"task1-design-matrix": "design_matrix = None"})
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    # (the last: the expected value of the visible mse check, on its own line)
    for secret in ("np.vander", "np.polyfit(x, y, degree)", "_reference_diagnose", "\n      1.25,"):
        assert secret not in code
    assert "design_matrix = None" in code
    assert 'raise NotImplementedError("not implemented yet")' in code  # missing answers: stub
    assert [c.cell_type for c in nb.cells] == [c.cell_type for c in source.cells]


def test_student_answers_by_grade_id_first_of_duplicates_and_notes():
    nb = nbformat.v4.new_notebook()
    for source in ("a = 1", "a = 2"):
        nb.cells.append(nbformat.v4.new_code_cell(
            source, metadata={"nbgrader": {"grade_id": "a", "solution": True}}))
    answers, notes = merge.student_answers(nb, ["a", "b"])
    assert answers == {"a": "a = 1"}
    assert "2 times" in notes["a"] and "no answer cell" in notes["b"]


def test_judge_uses_the_reference_comparator_not_the_students():
    ref = ran(rec("v", 1.0))
    got = ran({**rec("v", 1.5), "how": "exact", "rtol": 1.0, "atol": 1.0})
    assert judge_cell(ref, got, 2, set(), "")[0] == 0
    assert judge_cell(ref, ran(rec("v", 1.0 + 1e-12)), 2, set(), "") == (2, "correct")


@pytest.mark.parametrize("got, reason_part", [
    (None, "did not run"),
    (ran(error={"ename": "NameError", "evalue": "x"}), "NameError"),
    (ran(error={"ename": "Leak: secret source", "evalue": "x"}), "an error"),
    (ran(), "did not run"),
    (ran(rec("v", 1.0), rec("v", 1.0)), "more than once"),
    (ran(rec("v", 1.0), rec("junk", 1.0)), "no check asked for"),
    (ran({**rec("v", None), "error": "cannot check"}), "not a number"),
])
def test_judge_fails_with_a_plain_reason(got, reason_part):
    points, reason = judge_cell(ran(rec("v", 1.0)), got, 2, set(), "")
    assert points == 0 and reason_part in reason


def test_hidden_failures_never_show_expected_values_or_student_text():
    ref = ran(rec("hidden 1", 3.25))
    assert judge_cell(ref, ran(rec("hidden 1", 2.0)), 1, {"hidden 1"}, "") == (0, HIDDEN_FAILED)
    ref = ran(rec("visible", "overfit", "exact"))
    _, reason = judge_cell(ref, ran(rec("visible", "SECRET SOURCE", "exact")), 1, set(), "")
    assert "SECRET" not in reason


def test_feedback_escapes_everything():
    row = {"student": "<script>x</script>", "total": 0, "max": 1, "status": "graded",
           "reason": "<u>"}
    page = feedback_html(row, [{"grade_id": "<i>", "points": 0, "max": 1, "message": "<img>"}])
    assert "<script>x" not in page and "<img>" not in page and "<u>" not in page


def test_parse_submission_rejects_large_empty_and_broken_files():
    assert "limit" in parse_submission(b"x" * (2 * 2**20), 1.0)[1]
    assert "empty" in parse_submission(b"  ", 1.0)[1]
    assert parse_submission(b"{", 1.0)[1]
    assert parse_submission(SOURCE.read_bytes(), 20.0)[1] is None


def test_find_submissions_flat_and_per_student(tmp_path):
    (tmp_path / "ann.ipynb").write_text("{}")
    (tmp_path / "bob").mkdir()
    (tmp_path / "bob" / "work.ipynb").write_text("{}")
    (tmp_path / "cid").mkdir()
    (tmp_path / ".hidden.ipynb").write_text("{}")
    found = find_submissions(tmp_path)
    assert sorted(found) == ["ann", "bob", "cid"] and found["cid"] is None


def small_class(folder):
    folder.mkdir()
    (folder / "right.ipynb").write_bytes(SOURCE.read_bytes())
    wrong = merge.read_source(SOURCE)
    for c in wrong.cells:
        if c.metadata.get("nbgrader", {}).get("grade_id") == "q1-regularization":
            c.source = 'q1 = "a"'
    nbformat.write(wrong, folder / "wrong.ipynb")
    (folder / "broken.ipynb").write_text("not json")
    return folder


def plain(entries):
    return [(e["student"], e["status"], e["total"], [q["points"] for q in e["questions"]])
            for e in entries]


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    subs = small_class(root / "subs")
    entries = grade(SOURCE, subs, root / "out", workers=2, seed=99, progress=False)
    return root, subs, entries


@pytest.mark.notebooks
def test_small_class_grades(graded_class):
    _, _, entries = graded_class
    assert [(s, st, t) for s, st, t, _ in plain(entries)] == [
        ("broken", "unreadable", 0), ("right", "graded", FULL), ("wrong", "graded", FULL - 1)]


@pytest.mark.notebooks
def test_rerun_skips_graded_and_resumes_after_a_kill(graded_class):
    root, subs, entries = graded_class
    out = root / "out"
    results = out / "results.jsonl"
    lines = results.read_text().splitlines()
    # a run killed after one submission, mid-way through writing the next line
    results.write_text(lines[0] + "\n" + lines[1][:20])
    again = grade(SOURCE, subs, out, workers=2, seed=99, progress=False)
    assert plain(again) == plain(entries)
    after = results.read_text().splitlines()
    assert len(after) == 3 and len({json.loads(x)["student"] for x in after}) == 3
    assert json.loads(after[0]) == json.loads(lines[0])  # not regraded: same timing too
    grades = (out / "grades.csv").read_text().splitlines()
    assert len(grades) == 4


@pytest.mark.notebooks
def test_dask_local_cluster_gives_identical_grades(graded_class):
    distributed = pytest.importorskip("distributed")
    root, subs, entries = graded_class
    # Dask's workers as threads of this process: the grading path through Dask (tasks,
    # futures, results in order) without starting and importing four processes;
    # tests/test_grade_cluster.py grades on a real cluster of separate processes
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        on_dask = grade(SOURCE, subs, root / "dask-out", seed=99, progress=False,
                        dask_address=cluster.scheduler_address)
    assert plain(on_dask) == plain(entries)


def tiny_job(code: str, notebook_timeout: float = 60.0) -> dict:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    return {"notebook": nb, "graded": [0], "seed": 1, "cell_timeout": 30,
            "memory_mb": 2048, "notebook_timeout": notebook_timeout}


def test_a_worker_serves_many_jobs_each_in_a_fresh_kernel():
    worker = grade_workers.Worker()
    try:
        pids = []
        for _ in range(2):
            report = worker.run(tiny_job("import os\nassert 'leftover' not in globals()\n"
                                         "leftover = os.getpid()\nraise ValueError(leftover)"),
                                deadline=60)
            pids.append(report["cells"]["0"]["error"]["evalue"])
        assert worker.alive()
        assert pids[0] != pids[1]  # a new kernel per job: nothing carries over
    finally:
        worker.kill()


def test_a_hung_worker_is_killed_with_its_kernel_and_the_pool_replaces_it(tmp_path):
    import os
    import time

    pid_file = tmp_path / "kernel.pid"
    code = (f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
            "time.sleep(60)")
    worker = grade_workers.Worker()
    # the deadline leaves a busy machine time to start the kernel and write its pid
    report = worker.run(tiny_job(code, notebook_timeout=60), deadline=20)
    assert report["stopped"] == "notebook-timeout" and not worker.alive()
    kernel = int(pid_file.read_text())
    for _ in range(100):  # the template sees its worker gone and kills the kernel
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the kernel {kernel} of a killed worker is still running")
    report = grade_workers.run_job(tiny_job("x = 1"), deadline=60)
    assert report["stopped"] is None and report["cells"]["0"]["error"] is None


def test_the_pool_forgets_a_worker_it_had_to_kill():
    report = grade_workers.run_job(tiny_job("import time\ntime.sleep(60)"), deadline=5)
    assert report["stopped"] == "notebook-timeout"
    assert all(worker.alive() for worker in grade_workers._all)


def test_a_forked_kernel_gets_only_the_jobs_environment_folder_and_memory_limit():
    code = ("import os, resource\n"
            "allowed = {'PATH', 'HOME', 'LANG', 'MPLBACKEND', 'MPLCONFIGDIR', 'TMPDIR',\n"
            "           'REGLAB_GRADING', 'REGLAB_SEED',  # the job's, then ipykernel's own:\n"
            "           'CLICOLOR', 'CLICOLOR_FORCE', 'FORCE_COLOR', 'GIT_PAGER', 'PAGER', 'TERM',\n"
            "           'PYDEVD_USE_FRAME_EVAL'}\n"
            "extra = sorted(k for k in os.environ if k not in allowed and not k.startswith('JPY_'))\n"
            "raise ValueError(repr((extra, os.getcwd() == os.environ['HOME'],\n"
            "                       os.environ['REGLAB_SEED'], os.getsid(0) == os.getpid(),\n"
            "                       resource.getrlimit(resource.RLIMIT_DATA)[0] >> 20)))")
    report = grade_workers.run_job(tiny_job(code), deadline=60)
    # the job's cap is 2048 MB; each process's data limit is a backstop above it:
    # cap + max(cap, 2 GiB) (the cap itself is watched over the kernel and its children)
    assert report["cells"]["0"]["error"]["evalue"] == "([], True, '1', True, 4096)"


def test_the_kernel_template_holds_no_thread_when_it_forks():
    import subprocess
    import sys

    probe = ("import importlib, threading\nfrom reglab.grading.fork import PRELOAD\n"
             "[importlib.import_module(m) for m in PRELOAD]\nprint(threading.active_count())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"})
    assert out.stdout.strip() == "1"
