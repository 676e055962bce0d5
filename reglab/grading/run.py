"""Run one merged notebook in an isolated kernel and report what its cells recorded.

``python -m reglab.grading.run --serve`` reads one job per line on stdin (JSON: a nonce, the
notebook, the indices of graded cells, limits, seed, and the flavour of the kernel template:
:func:`reglab.grading.fork.flavour_for` of SOURCE, ``plain`` if absent) and answers each with
one line ``NONCE{json}``, until stdin closes (see :mod:`reglab.grading.workers`). The kernel
is forked from a warm template of that flavour (:mod:`reglab.grading.fork`) into a fresh empty
folder with a minimal environment (nothing that points at SOURCE, the submissions or the output
folder); it never writes to this process's stdout. Of its outputs only recordings of graded
cells and error names are kept: everything else (prints, plots, floods) is counted and dropped.

Limits, enforced here (the kernel's own process cannot be trusted to enforce them):

* *A cell's time.* At the cell limit the kernel is interrupted (SIGINT to its process group).
  If the cell has not finished :data:`GRACE_SECONDS` later (it ignores or swallows
  interrupts, or is stuck in C code), every process of the job is killed (see
  :mod:`reglab.grading.fork` for which processes that is) and the notebook stops there:
  ``stopped: "cell-timeout"`` with ``stopped_cell``. A :class:`Watchdog` thread kills at
  cell limit + grace + :data:`WATCHDOG_SLACK` should the client not. So a worker is free
  again at most cell limit + grace + a second or two of clean-up after a runaway cell
  started: 66 s at the course's 60 s limit, inside the promised 2 x limit + 10 s.
* *Memory.* The watchdog adds up the anonymous memory of the job's processes every
  :data:`POLL_SECONDS` and at the end of every cell, and kills them all past the cap:
  ``stopped: "memory"`` with ``stopped_cell``. Memory a cell takes and frees between two
  polls is not seen. Behind it, each process's RLIMIT_DATA (the cap plus the larger of the cap
  and 2 GiB: :func:`reglab.grading.fork.data_limit`) refuses a larger allocation at once
  (``MemoryError``, or TensorFlow's ``ResourceExhaustedError``, in the cell; the kernel goes
  on), so that no single allocation can fill memory faster than the watchdog looks.
* *The notebook's time*, as a whole: ``stopped: "notebook-timeout"``.

This is not a sandbox: the kernel runs as the grader's user. Run the grader in a container
without the course files and without network for untrusted submissions.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from queue import Empty

import nbformat
from jupyter_client.utils import ensure_async
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from reglab.checks import GRADING_ENV, RECORD_MIME, SEED_ENV
from reglab.grading.fork import (PLAIN, ForkingKernelManager, descendants, kill_job,
                                 memory_in_use, stop_templates)

MAX_RECORDS_PER_CELL = 200
MAX_RECORD_BYTES = 1_000_000
MAX_EVALUE_CHARS = 300
GRACE_SECONDS = 5.0  # from the interrupt at the cell limit to the kill
POLL_SECONDS = 0.2  # how often the watchdog measures the job's memory
WATCHDOG_SLACK = 2.0  # the watchdog kills at cell limit + grace + this, if the client has not


class RecordingClient(NotebookClient):
    """Keeps only recordings from graded cells and error names; counts dropped output.

    Also the cell limit's second step: a cell still running :data:`GRACE_SECONDS` after its
    interrupt gets its job killed (:meth:`_async_handle_timeout`).
    """

    def __init__(self, nb, graded: set[int], memory_bytes: int = 0, **kw):
        super().__init__(nb, **kw)
        self.graded = graded
        self.memory_bytes = memory_bytes
        self.dropped_bytes = 0
        self.timed_out_cells: list[int] = []
        self.kernel_process = None
        self.watchdog: Watchdog | None = None
        self.running: tuple[int, float] | None = None  # (index, monotonic start) of a cell
        self.last_cell: int | None = None
        self._msg_id = None

    def output(self, outs, msg, display_id, cell_index):
        content = msg.get("content", {})
        data = content.get("data", {}) if isinstance(content, dict) else {}
        if msg["msg_type"] == "error":
            outs.append({"output_type": "error", "ename": str(content.get("ename", ""))[:100],
                         "evalue": str(content.get("evalue", ""))[:MAX_EVALUE_CHARS]})
        elif (msg["msg_type"] == "display_data" and RECORD_MIME in data
              and cell_index in self.graded and len(outs) < MAX_RECORDS_PER_CELL
              and len(json.dumps(data[RECORD_MIME])) <= MAX_RECORD_BYTES):
            outs.append({"output_type": "record", "record": data[RECORD_MIME]})
        else:
            self.dropped_bytes += len(json.dumps(content, default=str))
        return None

    @property
    def verdict(self) -> tuple[str, int | None] | None:
        """("cell-timeout" or "memory", the cell's index) once the job has been killed."""
        return self.watchdog.verdict if self.watchdog else None

    async def async_start_new_kernel(self, **kwargs):
        await super().async_start_new_kernel(**kwargs)
        self.kernel_process = self.km.provisioner.process
        self.watchdog = Watchdog(self, self.memory_bytes, self.timeout)

    async def async_execute_cell(self, cell, cell_index, *args, **kwargs):
        if cell.cell_type == "code":
            self.running, self.last_cell = (cell_index, time.monotonic()), cell_index
        try:
            return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
        finally:
            self.running = None
            if self.watchdog is not None and cell.cell_type == "code":
                self.watchdog.look_now(cell_index)

    async def _async_poll_for_reply(self, msg_id, *args, **kwargs):
        self._msg_id = msg_id
        return await super()._async_poll_for_reply(msg_id, *args, **kwargs)

    async def _async_handle_timeout(self, timeout, cell=None):
        """Interrupt; if the cell does not finish within the grace, kill the job."""
        if cell is None or self.running is None:  # not a cell (the start's kernel_info)
            self.timed_out_cells.append(-1)
            return await super()._async_handle_timeout(timeout, cell)
        index = self.running[0]
        self.timed_out_cells.append(index)
        await ensure_async(self.km.interrupt_kernel())
        if await self._reply_within(GRACE_SECONDS):
            self.running = None  # the kernel is idle again: nothing for the watchdog to time
            return {"content": {**self.error_on_timeout, "status": "error"}}
        self.watchdog.stop_job("cell-timeout", index)
        raise DeadKernelError(f"cell {index} was still running {GRACE_SECONDS:g} s after "
                              "its interrupt and was killed")

    async def _async_check_alive(self) -> None:
        if self.verdict:  # killed by the watchdog: no need to ask the kernel manager
            raise DeadKernelError(f"stopped by the watchdog ({self.verdict[0]})")
        await super()._async_check_alive()

    async def _reply_within(self, seconds: float) -> bool:
        """Whether the interrupted cell's execute_reply arrives within ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.verdict:
            try:
                msg = await ensure_async(
                    self.kc.shell_channel.get_msg(timeout=min(left, POLL_SECONDS)))
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") == self._msg_id:
                return True
        return False


class Watchdog:
    """A thread beside the client: the job's memory and a backstop for the cell limit.

    Every :data:`POLL_SECONDS`, and at the end of every cell, it adds up the anonymous memory of
    every process below the job's kernel template (the kernel and all it started; the fast upper
    bound of :func:`reglab.grading.fork.memory_in_use`, the exact sum only when that passes the
    cap) and kills them all past the cap; it also kills a cell that runs past the cell limit +
    grace + :data:`WATCHDOG_SLACK`, should the client not have. The first verdict stands.
    """

    def __init__(self, client: RecordingClient, memory_bytes: int, cell_timeout) -> None:
        self.client, self.memory_bytes, self.cell_timeout = client, memory_bytes, cell_timeout
        self.template = client.kernel_process.template
        self.verdict: tuple[str, int | None] | None = None
        self.peak = 0
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(POLL_SECONDS) and self.verdict is None:
            try:
                self._look()
            except Exception:  # a surprise from /proc must not end the watch
                continue

    def look_now(self, index: int) -> None:
        """Measure at the end of cell ``index``: memory a cell took and kept is caught there
        even when the cell and the rest of the job ran between two polls (a kernel forked with
        TensorFlow imported fills 900 MB and finishes in well under a second)."""
        if self.verdict is None:
            self._look(index)

    def _look(self, ended: int | None = None) -> None:
        pids = descendants(self.template.process.pid)
        used = memory_in_use(pids)
        if self.memory_bytes and used > self.memory_bytes:  # shared pages counted twice?
            used = memory_in_use(pids, exact=True)
        self.peak = max(self.peak, used)
        running = self.client.running
        if self.memory_bytes and used > self.memory_bytes:
            cell = ended if ended is not None else running[0] if running else None
            self.stop_job("memory", self.client.last_cell if cell is None else cell)
        elif running and self.cell_timeout and time.monotonic() - running[1] > (
                self.cell_timeout + GRACE_SECONDS + WATCHDOG_SLACK):
            self.stop_job("cell-timeout", running[0])

    def stop_job(self, kind: str, index: int | None) -> None:
        """Kill every process of the job; wait until the template has seen the kernel end."""
        with self._lock:
            if self.verdict is None:
                self.verdict = (kind, index)
            self.template.kill_job()
        try:
            self.client.kernel_process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass

    def close(self) -> None:
        self._done.set()
        self._thread.join()


def kernel_env(home: str, seed: int) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg", "MPLCONFIGDIR": os.path.join(home, ".matplotlib"),
            "TMPDIR": home, GRADING_ENV: "1", SEED_ENV: str(seed)}


def _end_job(client: RecordingClient) -> int | None:
    """Stop the watchdog, kill the kernel and everything it started; its exit code."""
    if client.watchdog is not None:
        client.watchdog.close()
    kill_job()  # the kernel, and all it started wherever it moved
    process = client.kernel_process
    if process is None:
        return None
    try:
        return process.wait(timeout=5)
    except (subprocess.TimeoutExpired, OSError):
        return process.returncode


async def _execute(client: RecordingClient, notebook_timeout: float, env, cwd) -> str | None:
    start = time.monotonic()
    try:
        await asyncio.wait_for(client.async_execute(env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.DEVNULL),
                               notebook_timeout)
    except asyncio.TimeoutError:
        return "notebook-timeout"
    except DeadKernelError:  # nbclient also reports its own cancellation (our timeout) so
        if client.verdict:
            return client.verdict[0]
        over_time = time.monotonic() - start >= notebook_timeout
        return "notebook-timeout" if over_time else "crashed"
    return client.verdict[0] if client.verdict else None


def run_job(job: dict) -> dict:
    nb = nbformat.from_dict(job["notebook"])
    graded = set(job["graded"])
    home = tempfile.mkdtemp(prefix="grading-")
    km = ForkingKernelManager(kernel_name="python3")
    km.memory_bytes = int(job["memory_mb"]) * 2**20
    km.flavour = job.get("flavour", PLAIN)
    client = RecordingClient(nb, graded, km.memory_bytes, km=km, timeout=job["cell_timeout"],
                             allow_errors=True, interrupt_on_timeout=True,
                             kernel_name="python3",
                             error_on_timeout={"ename": "CellTimeout",
                                               "evalue": "the cell ran too long"})
    start = time.perf_counter()
    try:
        stopped = asyncio.run(_execute(client, job["notebook_timeout"],
                                       kernel_env(home, job["seed"]), home))
    finally:
        exit_code = _end_job(client)
        shutil.rmtree(home, ignore_errors=True)
    cells = {str(i): _cell_report(c) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    for index in client.timed_out_cells:
        if str(index) in cells:
            cells[str(index)]["error"] = {"ename": "CellTimeout", "evalue": "ran too long"}
    verdict = client.verdict
    if verdict and verdict[0] == "memory" and str(verdict[1]) in cells:
        cells[str(verdict[1])]["error"] = {"ename": "MemoryError",
                                           "evalue": f"more than {job['memory_mb']} MB"}
    return {"stopped": stopped, "stopped_cell": verdict[1] if verdict else None,
            "exit_code": exit_code, "seconds": time.perf_counter() - start,
            "timed_out_cells": client.timed_out_cells, "dropped_bytes": client.dropped_bytes,
            "peak_memory_mb": round(client.watchdog.peak / 2**20) if client.watchdog else None,
            "cells": cells}


def _cell_report(cell) -> dict:
    outs = cell.get("outputs", [])
    errors = [o for o in outs if o.get("output_type") == "error"]
    return {"ran": cell.get("execution_count") is not None or bool(outs),
            "records": [o["record"] for o in outs if o.get("output_type") == "record"],
            "error": errors[0] if errors else None,
            "grade_id": _grade_id(cell)}


def _grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
    return str(grade_id)[:100] if grade_id else None


def serve() -> None:
    """One job per line on stdin, one ``NONCE{json}`` answer line per job.

    A failure of the runner itself (not of the student's kernel) is answered as
    ``{"grader_error": ...}`` and the worker goes on with the next job.
    """
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        nonce = job.pop("nonce")
        try:
            result = run_job(job)
        except Exception as err:  # reported to the grader, which retries the submission
            result = {"grader_error": f"{type(err).__name__}: {err}"[:300]}
        sys.stdout.write(nonce + json.dumps(result) + "\n")
        sys.stdout.flush()
    stop_templates()


def _exit_with_parent(parent: int) -> None:
    """A worker whose grader is gone (a Dask worker killed mid-job) exits at once, its job
    abandoned: its kernel template sees its input close and kills the job's kernel."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


if __name__ == "__main__":
    serve()
