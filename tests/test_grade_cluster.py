"""``reglab grade --dask`` on a real cluster started from the command line, a worker killed.

As an instructor would: ``dask scheduler`` and two ``dask worker ADDRESS --nworkers 1
--nthreads 1`` processes, each in its own process group, then ``reglab grade SOURCE SUBS
--out OUT --dask ADDRESS``. Once a result is in results.jsonl, a Dask worker that has already
delivered a written result and is running a student's kernel is killed (SIGKILL to its process
group). The command must still finish with every submission graded exactly as a local run
grades it, appended to results.jsonl once (the lost task is re-run elsewhere, not written
twice; a result already written is not re-run), and no process of the cluster may outlive it:
the Dask processes, the grading workers and kernel templates they start (in sessions of their
own, so not in the killed group) and the kernels.

Processes are followed by scanning the process table: the cluster is started with a token in
its environment, which every process it starts inherits, and a kernel is the child of a
template. Other grading runs on the same machine are never counted.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from reglab import cli
from reglab.bench_grade import SOURCE, generate_class
from reglab.grading import grade as grade_module
from reglab.grading import workers as grade_workers

distributed = pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")  # a dependency of distributed

pytestmark = [pytest.mark.cluster, pytest.mark.notebooks]

DASK = str(Path(sys.executable).with_name("dask"))
TOKEN = "REGLAB_CLUSTER_TEST"
KINDS = 4  # generate_class writes right, wrong, blank and unreadable in turn
STUDENTS = 8
SEED = 7
GRACE = 30.0  # seconds for a killed or stopped process's children to notice and exit


# ---------------------------------------------------------------- the cluster's processes

class Tracker(threading.Thread):
    """Every process of the cluster, found by scanning the process table every 0.2 s.

    Ours: a process whose environment holds the token (inherited by the Dask processes and
    the grading workers and templates they start) or whose parent is ours (a kernel, forked
    from its template). Each is kept as (pid, create time), so a reused pid is not ours.
    """

    def __init__(self, token: str) -> None:
        super().__init__(daemon=True)
        self.token = token
        self.seen: dict[tuple[int, float], dict] = {}
        self.not_ours: set[tuple[int, float]] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            self.scan()

    def scan(self) -> None:
        live = {}
        for p in psutil.process_iter(["ppid", "create_time", "status"]):
            if p.info["status"] != psutil.STATUS_ZOMBIE:
                live[(p.pid, p.info["create_time"])] = (p, p.info["ppid"])
        with self.lock:
            ours = {pid for pid, start in self.seen if (pid, start) in live}
            for ident in self.seen.keys() & live.keys():  # CPU seconds so far, for the log
                try:
                    times = live[ident][0].cpu_times()
                    self.seen[ident]["cpu"] = times.user + times.system
                except (psutil.Error, OSError):
                    pass
            changed = True
            while changed:  # a child may be listed before its parent
                changed = False
                for ident, (p, ppid) in live.items():
                    if ident in self.seen or ident in self.not_ours:
                        continue
                    if ppid in ours or self._has_token(p):
                        self.seen[ident] = {"ppid": ppid, "cmd": _cmd(p)}
                        ours.add(ident[0])
                        changed = True
                    elif ppid not in ours:
                        self.not_ours.add(ident)  # decided once: its environment is fixed

    def _has_token(self, p) -> bool:
        try:
            return p.environ().get(TOKEN) == self.token
        except (psutil.Error, OSError):
            return False

    def alive(self) -> dict[tuple[int, float], dict]:
        self.scan()
        with self.lock:
            items = list(self.seen.items())
        return {ident: info for ident, info in items if _running(*ident)}

    def descendants(self, pid: int) -> set[tuple[int, float]]:
        """pid's process and everything started under it (by the parents first seen)."""
        with self.lock:
            items = list(self.seen.items())
        found = {ident for ident, _ in items if ident[0] == pid}
        pids = {pid}
        changed = True
        while changed:
            changed = False
            for ident, info in items:
                if ident not in found and info["ppid"] in pids:
                    found.add(ident)
                    pids.add(ident[0])
                    changed = True
        return found

    def running_kernel(self, pid: int) -> bool:
        """Whether a student's kernel (a live child of a kernel template) runs under pid."""
        tree = self.descendants(pid)
        with self.lock:
            templates = {i[0] for i in tree if "reglab.grading.fork" in self.seen[i]["cmd"]}
            return any(_running(*i) for i in tree if self.seen[i]["ppid"] in templates)


def _cmd(p) -> str:
    try:
        return " ".join(p.cmdline())[:160]
    except (psutil.Error, OSError):
        return "?"


def _running(pid: int, start: float) -> bool:
    try:
        p = psutil.Process(pid)
        return p.create_time() == start and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


class Cluster:
    """A scheduler and two workers started with the ``dask`` command, each in its own group."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True)
        self.token = uuid.uuid4().hex
        self.env = {**os.environ, TOKEN: self.token, "DASK_TEMPORARY_DIRECTORY": str(folder),
                    "PYTHONUNBUFFERED": "1"}
        self.tracker = Tracker(self.token)
        self.processes: dict[str, subprocess.Popen] = {}
        self.address = None
        self.monitor = None
        self.workers: dict[str, str] = {}

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "w")
        self.processes[name] = subprocess.Popen(
            [DASK, *args], cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        return self.processes[name]

    def start(self) -> None:
        self.tracker.start()
        scheduler_file = self.folder / "scheduler.json"
        scheduler = self._start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0",
                                "--dashboard-address", "127.0.0.1:0",
                                "--scheduler-file", str(scheduler_file))
        deadline = time.monotonic() + 120
        while not scheduler_file.exists():
            if scheduler.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the scheduler did not start:\n{self.logs()}")
            time.sleep(0.1)
        self.address = json.loads(scheduler_file.read_text())["address"]
        for name in ("worker-a", "worker-b"):
            self._start(name, "worker", self.address, "--nworkers", "1", "--nthreads", "1",
                        "--host", "127.0.0.1", "--no-dashboard", "--death-timeout", "60",
                        "--local-directory", str(self.folder / name))

    def connect(self) -> None:
        """The test's own client: which worker runs what, and the scheduler's events."""
        self.monitor = distributed.Client(self.address, timeout=60)
        self.monitor.wait_for_workers(2, timeout=180)
        self.monitor.get_task_stream()  # installs the scheduler's record of finished tasks
        # {worker address: name of its ``dask worker`` command} (the nanny's child's parent)
        by_pid = {p.pid: name for name, p in self.processes.items()}
        self.workers = {address: by_pid[psutil.Process(pid).ppid()]
                        for address, pid in self.monitor.run(os.getpid).items()}

    def kill(self, name: str) -> None:
        process = self.processes[name]
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=30)

    def stop(self) -> None:
        """Kill every group started; idempotent, and run whatever happened."""
        if self.monitor is not None:
            self.monitor.close(timeout=10)
            self.monitor = None
        for name in list(self.processes):
            self.kill(name)

    def kill_leftovers(self) -> None:
        for pid, start in self.tracker.alive():
            try:
                p = psutil.Process(pid)
                if p.create_time() == start:
                    p.kill()
            except psutil.Error:
                pass

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.folder.glob("*.log")))


@pytest.fixture
def cluster(tmp_path):
    started = Cluster(tmp_path / "cluster")
    try:
        started.start()
        yield started
    finally:
        started.stop()
        started.kill_leftovers()  # only if the test failed before its own check
        started.tracker.stopping.set()


# ---------------------------------------------------------------- the test

def written_students(results: Path) -> set[str]:
    """Students in results.jsonl so far (a line being written is skipped)."""
    found = set()
    for line in results.read_text().splitlines() if results.exists() else []:
        try:
            found.add(json.loads(line)["student"])
        except (ValueError, KeyError, TypeError):
            pass
    return found


def plain(entry: dict) -> tuple:
    return (entry["status"], entry["total"], entry["max"], entry["reason"],
            [(q["grade_id"], q["points"]) for q in entry["questions"]])


def test_a_cluster_from_the_cli_grades_once_each_when_a_worker_is_killed(
        cluster, tmp_path, monkeypatch):
    t0 = time.perf_counter()
    timings = {}
    # expected: a local grading (no Dask) of one submission of each kind, while the
    # cluster starts; the class's student i is byte for byte that of kind i % KINDS
    kinds = generate_class(tmp_path / "kinds", KINDS)
    local = grade_module.grade(SOURCE, kinds, tmp_path / "local", workers=2, seed=SEED,
                               progress=False)
    grade_workers.shutdown()
    assert [e["status"] for e in local] == ["graded", "graded", "graded", "unreadable"]
    assert local[0]["total"] == local[0]["max"] > local[1]["total"] > local[2]["total"] == 0
    subs = generate_class(tmp_path / "subs", STUDENTS)
    expected = {f"student{i:03d}": plain(local[i % KINDS]) for i in range(STUDENTS)}
    out = tmp_path / "out"
    out.mkdir()
    for reference in (tmp_path / "local").glob(".reference-*.json"):  # same SOURCE and seed
        (out / reference.name).write_bytes(reference.read_bytes())
    timings["local"] = time.perf_counter() - t0
    cluster.connect()
    timings["cluster up"] = time.perf_counter() - t0

    # which task is whose (the keys the grader's client.map makes), and every append
    student_of: dict[str, str] = {}
    appended: list[str] = []
    real_map, real_append = distributed.Client.map, grade_module.append_result

    def recording_map(self, func, tasks, *args, **kwargs):
        futures = real_map(self, func, tasks, *args, **kwargs)
        student_of.update({f.key: t["student"] for f, t in zip(futures, tasks)})
        return futures

    def recording_append(path, entry):
        appended.append(entry["student"])
        real_append(path, entry)

    monkeypatch.setattr(distributed.Client, "map", recording_map)
    monkeypatch.setattr(grade_module, "append_result", recording_append)

    killed: dict = {}

    def kill_a_busy_worker():
        """Once a result is written: kill a worker that is running a kernel now (its task
        is mid-run) and whose every earlier result is already written (it held only results
        the grader had used)."""
        results = out / "results.jsonl"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed:
            written = written_students(results)
            busy = {address: name for address, name in cluster.workers.items()
                    if cluster.tracker.running_kernel(cluster.processes[name].pid)}
            if written and busy:
                ran_on = {t["key"]: t["worker"] for t in cluster.monitor.get_task_stream()}
                for address, name in busy.items():
                    delivered = sorted(s for k, s in student_of.items()
                                       if ran_on.get(k) == address)
                    if delivered and set(delivered) <= written:  # each result already used
                        tree = cluster.tracker.descendants(cluster.processes[name].pid)
                        cluster.kill(name)
                        killed.update(address=address, name=name, tree=tree,
                                      delivered=delivered, at=time.perf_counter() - t0)
                        until = time.monotonic() + 600
                        while any(_running(*i) for i in tree) and time.monotonic() < until:
                            time.sleep(0.1)  # its orphans' lifetime, for the log
                        killed["orphans gone"] = time.perf_counter() - t0
                        return
            time.sleep(0.2)

    def killer_main():
        try:
            kill_a_busy_worker()
        except BaseException as err:  # reported below, in the test's thread
            killed["error"] = err

    killer = threading.Thread(target=killer_main, daemon=True)
    killer.start()
    outcome: dict = {}

    def run():
        try:
            outcome["rc"] = cli.main(["grade", str(SOURCE), str(subs), "--out", str(out),
                                      "--dask", cluster.address, "--seed", str(SEED),
                                      "--quiet"])
        except BaseException as err:  # reported below, in the test's thread
            outcome["error"] = err

    grading = threading.Thread(target=run, daemon=True)
    grading.start()
    grading.join(timeout=600)
    killer.join(timeout=GRACE)
    timings["graded"] = time.perf_counter() - t0
    assert not grading.is_alive(), f"grading did not finish\n{cluster.logs()}"
    assert "error" not in outcome, f"grading raised {outcome.get('error')!r}"
    assert outcome["rc"] == 0, cluster.logs()
    assert "error" not in killed, f"the killer failed: {killed.get('error')!r}"
    assert killed, f"no worker was seen running a kernel after a result:\n{cluster.logs()}"

    # the scheduler's account of the lost worker: what it was running, what it held
    [lost] = [e for _, e in cluster.monitor.get_events("all")
              if e.get("action") == "remove-worker" and e.get("worker") == killed["address"]]
    rerun = sorted(student_of[k] for k in lost["processing-tasks"])
    recomputed = sorted(student_of.get(k, k) for k in lost["lost-computed-tasks"])
    assert not lost["expected"] and rerun, lost  # it was lost mid-task: that task re-ran
    assert not recomputed, (f"results already written ({recomputed}) were graded again on "
                            "another worker after the worker that held them was lost")

    # each submission once, graded as locally, in grades.csv, results.jsonl and the appends
    assert sorted(appended) == sorted(expected), f"appends: {sorted(appended)}"
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [e["student"] for e in lines] == sorted(expected)
    assert {e["student"]: plain(e) for e in lines} == expected
    with open(out / "grades.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["student"] for r in rows] == sorted(expected)
    assert {r["student"]: (r["status"], float(r["total"])) for r in rows} == {
        s: (e[0], e[1]) for s, e in expected.items()}

    # no process of the cluster outlives it: the killed group's grading worker, template and
    # kernel (in sessions of their own) included
    cluster.stop()
    timings["stopped"] = time.perf_counter() - t0
    deadline = time.monotonic() + GRACE
    while (left := cluster.tracker.alive()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, "still running after the cluster was stopped:\n" + "\n".join(
        f"{pid} {info['cmd']}" for (pid, _), info in left.items())
    assert any("reglab.grading.run" in cluster.tracker.seen[i]["cmd"] for i in killed["tree"])
    timings["all gone"] = time.perf_counter() - t0
    own = os.times()
    cpu = sum(info.get("cpu", 0.0) for info in cluster.tracker.seen.values())
    print(f"CPU seconds: the cluster's processes {cpu:.1f}, pytest itself "
          f"{own.user + own.system:.1f}, its children (local grading and the dask "
          f"commands, counted twice) {own.children_user + own.children_system:.1f}")
    print(f"killed {killed['name']} at {killed['at']:.1f} s (it had delivered "
          f"{killed['delivered']}, re-run elsewhere: {rerun}; its processes all gone at "
          f"{killed.get('orphans gone', float('nan')):.1f} s); "
          + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
