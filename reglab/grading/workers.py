"""Long-lived grading worker processes, reused from one submission to the next.

Each worker is ``python -m reglab.grading.run --serve``: it reads one job per line on stdin and
answers one line ``NONCE{json}`` per job. Student code never runs inside a worker: every job
starts a fresh kernel (its own process, folder, environment and limits) and kills it at the
end, so reusing the worker only saves its interpreter start and imports (about a second per
submission on a 2-core machine) and keeps its warm kernel templates, one per flavour it has
needed (:mod:`reglab.grading.fork`: with TensorFlow imported or not). A worker that dies, hangs
past its deadline or answers garbage is killed and replaced; the job it held gets the status
the old one-shot runner gave.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import secrets
import signal
import subprocess
import sys
import tempfile
import threading


class WorkerFailed(Exception):
    """The worker process broke in a way that is the grader's fault, not the student's."""


class Worker:
    """One ``reglab.grading.run --serve`` process and a thread that reads its answers."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reglab.grading.run", "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, start_new_session=True, cwd=tempfile.gettempdir(), bufsize=1)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)  # end of file: the worker is gone

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, job: dict, deadline: float) -> dict:
        """Send one job; return its report, or a ``stopped`` report if the worker is lost."""
        nonce = secrets.token_hex(16)
        try:
            self.process.stdin.write(json.dumps({**job, "nonce": nonce}) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            self.kill()
            return _lost(self.process.returncode)
        while True:
            try:
                line = self.lines.get(timeout=deadline)
            except queue.Empty:
                self.kill()
                return {"stopped": "notebook-timeout", "cells": {}, "timed_out_cells": []}
            if line is None:
                self.kill()
                return _lost(self.process.returncode)
            if line.startswith(nonce):
                report = json.loads(line[len(nonce):])
                if "grader_error" in report:
                    raise WorkerFailed(report["grader_error"])
                return report

    def stop(self) -> None:
        """Close its input: it stops its kernel template and exits (killed if it lingers)."""
        try:
            self.process.stdin.close()
            self.process.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _lost(exit_code) -> dict:
    return {"stopped": "worker-died", "exit_code": exit_code, "cells": {},
            "timed_out_cells": []}


_idle: queue.LifoQueue = queue.LifoQueue()
_all: list[Worker] = []
_lock = threading.Lock()


def run_job(job: dict, deadline: float) -> dict:
    """Run one job on an idle worker (starting one if none is idle) and give it back."""
    worker = _take()
    try:
        return worker.run(job, deadline)
    finally:
        if worker.alive():
            _idle.put(worker)
        else:  # killed or dead (a replacement starts on the next job)
            _forget(worker)


def _take() -> Worker:
    while True:
        try:
            worker = _idle.get_nowait()
        except queue.Empty:
            worker = Worker()
            with _lock:
                _all.append(worker)
            return worker
        if worker.alive():
            return worker
        _forget(worker)  # died while idle


def _forget(worker: Worker) -> None:
    """Drop a dead worker from the pool's list, so that shutdown does not wait on it."""
    with _lock:
        if worker in _all:
            _all.remove(worker)


@atexit.register
def shutdown() -> None:
    """Stop every worker this process started (a pool that is idle holds no kernel)."""
    with _lock:
        workers, _all[:] = list(_all), []
    for worker in workers:
        worker.stop()
    while not _idle.empty():
        _idle.get_nowait()
