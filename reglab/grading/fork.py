"""Grading kernels forked from a warm template process, so each starts in milliseconds.

Starting an IPython kernel and importing NumPy and matplotlib costs about two seconds of CPU,
and a grading run pays it once per submission. A *template* process
(``python -m reglab.grading.fork``, one per grading worker) pays it once: it imports the kernel
and the course's plain scientific stack (never TensorFlow, which is not safe to fork), then
waits. For each submission it forks a child that starts a new session, moves into the job's
empty folder, replaces its whole environment with the job's, sets the memory limit and only
then becomes the kernel. Nothing of one submission's kernel reaches the next one's: each is
a fresh child of the same untouched template. When its worker goes away (its input closes),
the template kills the kernels it still has and exits; a kernel whose template dies exits
too (ipykernel watches ``JPY_PARENT_PID``).

The protocol on the template's stdin/stdout is one JSON object per line: the worker sends
``{"connection_file", "env", "cwd", "memory_bytes"}`` and gets ``{"pid": P}``; when a child
ends the template reports ``{"exit": P, "code": C}`` (``C`` as ``Popen.returncode``: minus the
signal number for a killed child).
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading

from jupyter_client.manager import AsyncKernelManager

PRELOAD = ("numpy", "matplotlib", "matplotlib.pyplot", "ipykernel.kernelapp", "reglab",
           "reglab.checks", "reglab.data")
TEMPLATE_ENV = {"MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}


# ---------------------------------------------------------------- the template process

def template_main() -> None:
    os.environ.update(TEMPLATE_ENV)
    os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="reglab-template-")
    for name in PRELOAD:
        importlib.import_module(name)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    pending, children = b"", set()
    while True:
        ready, _, _ = select.select([0, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
            children -= _reap()
        if 0 in ready:
            data = os.read(0, 1 << 16)
            if not data:
                break  # the worker is gone: so are the kernels it was using
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    pid = _spawn(json.loads(line), (wake_r, wake_w))
                    children.add(pid)
                    _say({"pid": pid})
    for pid in children:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in children:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass


def _say(message: dict) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _reap() -> set[int]:
    """Collect every child that has ended, report it, and return their pids."""
    ended = set()
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended.add(pid)
        _say({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _spawn(request: dict, private_fds) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: become the kernel, never return into the template's loop
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        for fd in (null, *private_fds):
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["JPY_PARENT_PID"] = str(os.getppid())  # ipykernel exits if we go
        _limit_memory(int(request["memory_bytes"]))
        sys.argv = ["reglab-grading-kernel", "-f", request["connection_file"]]
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=sys.argv[1:])
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0
    finally:
        os._exit(code)


def _limit_memory(limit: int) -> None:
    import resource

    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# ---------------------------------------------------------------- the worker's side

class Template:
    """The worker's handle on its template process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reglab.grading.fork"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
            cwd=tempfile.gettempdir())
        self.changed = threading.Condition()
        self.spawned: list[int] = []
        self.exits: dict[int, int] = {}
        self.gone = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            message = json.loads(line)
            with self.changed:
                if "pid" in message:
                    self.exits.pop(message["pid"], None)  # a reused pid starts afresh
                    self.spawned.append(message["pid"])
                else:
                    self.exits[message["exit"]] = message["code"]
                self.changed.notify_all()
        with self.changed:
            self.gone = True
            self.changed.notify_all()

    def spawn(self, connection_file: str, env: dict, cwd: str, memory_bytes: int):
        request = {"connection_file": connection_file, "env": env, "cwd": cwd,
                   "memory_bytes": memory_bytes}
        with self.changed:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
            if not self.changed.wait_for(lambda: self.spawned or self.gone, timeout=60):
                raise RuntimeError("the kernel template did not answer")
            if not self.spawned:
                raise RuntimeError("the kernel template has stopped")
            return ForkedKernel(self, self.spawned.pop(0))

    def exit_code(self, pid: int, timeout: float | None) -> int | None:
        with self.changed:
            self.changed.wait_for(lambda: pid in self.exits or self.gone, timeout=timeout)
            if pid in self.exits:
                return self.exits[pid]
            return -signal.SIGKILL if self.gone else None

    def stop(self) -> None:
        """End of input: the template reaps its children and exits (killed if it lingers)."""
        try:
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            self.process.wait()


class ForkedKernel:
    """Stands in for ``subprocess.Popen`` where jupyter-client expects the kernel process."""

    stdin = stdout = stderr = None

    def __init__(self, template: Template, pid: int) -> None:
        self.template, self.pid, self.returncode = template, pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self.template.exit_code(self.pid, timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self.template.exit_code(self.pid, timeout=timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                os.killpg(self.pid, signum)
            except (ProcessLookupError, PermissionError):
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


_template: Template | None = None


def template() -> Template:
    """This process's template, started on first use and restarted if it has died."""
    global _template
    if _template is None or _template.gone or _template.process.poll() is not None:
        _template = Template()
    return _template


def stop_template() -> None:
    global _template
    if _template is not None:
        _template.stop()
        _template = None


class ForkingKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels are forked from the template, under a memory limit."""

    memory_bytes = 0

    async def _async_launch_kernel(self, kernel_cmd, **kw) -> None:
        env = kw.get("env") or {}
        cwd = str(kw.get("cwd") or tempfile.gettempdir())
        kernel = template().spawn(self.connection_file, dict(env), cwd, self.memory_bytes)
        provisioner = self.provisioner
        provisioner.process, provisioner.pid, provisioner.pgid = kernel, kernel.pid, kernel.pid
        provisioner.cwd = cwd
        self._reconcile_connection_info(provisioner.connection_info)


if __name__ == "__main__":
    template_main()
