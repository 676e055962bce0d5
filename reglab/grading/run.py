"""Run one merged notebook in an isolated kernel and report what its cells recorded.

``python -m reglab.grading.run --serve`` reads one job per line on stdin (JSON: a nonce, the
notebook, the indices of graded cells, limits, seed) and answers each with one line
``NONCE{json}``, until stdin closes (see :mod:`reglab.grading.workers`). The
kernel is forked from a warm template (:mod:`reglab.grading.fork`) into a fresh empty folder
with a minimal environment (nothing that points at SOURCE, the submissions or the output
folder) under an address-space limit; it never writes to this process's stdout. Of its outputs only recordings of graded cells and error names are kept:
everything else (prints, plots, floods) is counted and dropped.

This is not a sandbox: the kernel runs as the grader's user. Run the grader in a container
without the course files and without network for untrusted submissions.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from reglab.checks import GRADING_ENV, RECORD_MIME, SEED_ENV
from reglab.grading.fork import ForkingKernelManager, stop_template

MAX_RECORDS_PER_CELL = 200
MAX_RECORD_BYTES = 1_000_000
MAX_EVALUE_CHARS = 300
class RecordingClient(NotebookClient):
    """Keeps only recordings from graded cells and error names; counts dropped output."""

    def __init__(self, nb, graded: set[int], **kw):
        super().__init__(nb, **kw)
        self.graded = graded
        self.dropped_bytes = 0
        self.timed_out_cells: list[int] = []
        self.kernel_process = None

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

    async def async_start_new_kernel(self, **kwargs):
        await super().async_start_new_kernel(**kwargs)
        self.kernel_process = self.km.provisioner.process

    async def _async_handle_timeout(self, timeout, cell=None):
        self.timed_out_cells.append(self.nb.cells.index(cell) if cell is not None else -1)
        return await super()._async_handle_timeout(timeout, cell)


def kernel_env(home: str, seed: int) -> dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg", "MPLCONFIGDIR": os.path.join(home, ".matplotlib"),
            "TMPDIR": home, GRADING_ENV: "1", SEED_ENV: str(seed)}


def _kill_group(process) -> int | None:
    """Kill the kernel and whatever it started in its session; return its exit code."""
    if process is None:
        return None
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
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
        over_time = time.monotonic() - start >= notebook_timeout
        return "notebook-timeout" if over_time else "crashed"
    return None


def run_job(job: dict) -> dict:
    nb = nbformat.from_dict(job["notebook"])
    graded = set(job["graded"])
    home = tempfile.mkdtemp(prefix="grading-")
    km = ForkingKernelManager(kernel_name="python3")
    km.memory_bytes = int(job["memory_mb"]) * 2**20
    client = RecordingClient(nb, graded, km=km, timeout=job["cell_timeout"], allow_errors=True,
                             interrupt_on_timeout=True, kernel_name="python3",
                             error_on_timeout={"ename": "CellTimeout",
                                               "evalue": "the cell ran too long"})
    start = time.perf_counter()
    try:
        stopped = asyncio.run(_execute(client, job["notebook_timeout"],
                                       kernel_env(home, job["seed"]), home))
        exit_code = _kill_group(client.kernel_process)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    cells = {str(i): _cell_report(c) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    for index in client.timed_out_cells:
        if str(index) in cells:
            cells[str(index)]["error"] = {"ename": "CellTimeout", "evalue": "ran too long"}
    return {"stopped": stopped, "exit_code": exit_code, "seconds": time.perf_counter() - start,
            "timed_out_cells": client.timed_out_cells, "dropped_bytes": client.dropped_bytes,
            "cells": cells}


def _cell_report(cell) -> dict:
    outs = cell.get("outputs", [])
    errors = [o for o in outs if o.get("output_type") == "error"]
    return {"ran": cell.get("execution_count") is not None or bool(outs),
            "records": [o["record"] for o in outs if o.get("output_type") == "record"],
            "error": errors[0] if errors else None}


def serve() -> None:
    """One job per line on stdin, one ``NONCE{json}`` answer line per job.

    A failure of the runner itself (not of the student's kernel) is answered as
    ``{"grader_error": ...}`` and the worker goes on with the next job.
    """
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
    stop_template()


if __name__ == "__main__":
    serve()
