"""Grading kernels forked from a warm template process, so each starts in milliseconds.

Starting an IPython kernel and importing NumPy and matplotlib costs about two seconds of CPU,
and a grading run pays it once per submission; importing TensorFlow and Keras about four more.
A *template* process (``python -m reglab.grading.fork FLAVOUR``, at most one per flavour in a
grading worker, started when a job first needs it) pays it once: it imports the kernel and the
course's scientific stack, then waits. For each submission it forks a child that starts a new
session, moves into the job's empty folder, replaces its whole environment with the job's, sets
its memory backstop and only then becomes the kernel. Nothing of one submission's kernel
reaches the next one's: each is a fresh child of the same untouched template. When its worker
goes away (its input closes), the template kills every process it still has below it and
exits, also when the worker went away while the template answered it. A kernel whose template
dies anyway (killed) is killed too (``PR_SET_PDEATHSIG``; ipykernel's own watch of
``JPY_PARENT_PID`` never starts in a forked kernel: it reads the variable when the template
imports ipykernel). Processes the kernel started are then not reached.

*Flavours* (:data:`PRELOADS`). ``plain`` imports :data:`PRELOAD`; ``tensorflow`` also
imports ``tensorflow`` and ``keras``: 264 MB of anonymous memory instead of 55 (600 MB
resident instead of 80, the rest TensorFlow's library files) for as long as its worker lives,
so it is used only for a SOURCE notebook that needs it (:func:`flavour_for`): one of
its code cells has a line that starts with ``import tensorflow``, ``import keras``,
``from tensorflow ...`` or ``from keras ...``, or passes ``keras=True`` (to
``reglab.setup``). The rule reads SOURCE, never a submission: a student who imports
TensorFlow in a numpy-only exercise gets a plain kernel, which imports it itself, as before.
The template's environment (:func:`template_env`) is set before its interpreter starts:
``MPLBACKEND`` and :data:`reglab.startup.ONE_THREAD_ENV` for both, and for ``tensorflow``
exactly what ``reglab.setup`` sets before it imports TensorFlow
(:data:`reglab.startup.QUIET_TF_ENV` and ``ONE_THREAD_ENV``). Keras reads its configuration
(``~/.keras/keras.json``) when imported: the template imports it with ``HOME`` set to an
empty folder of its own, as a fresh kernel does with the job's, and ``KERAS_HOME=.keras``,
relative, so that in a kernel Keras's folder is in the job's folder, not shared.

*The job's processes.* A worker runs one job at a time, so everything below its template is
that job's: the kernel and whatever the kernel started. The template is a child subreaper
(``PR_SET_CHILD_SUBREAPER``), so a process whose parent ends (a daemon that forked twice and
called ``os.setsid()``) is adopted by the template rather than by init and stays below it.
:func:`descendants` finds them all through ``/proc/PID/task/TID/children``; the worker
measures their memory (:func:`memory_in_use`) and kills them (:func:`kill_below`), whatever
process group or session they moved to. Not reached: a process that something outside this
tree starts on the job's behalf (a system service, ``at``, ``systemd-run --user``, ssh to
this machine), and a process that changed its user (a setuid program), which the grader's
user may not signal.

*Memory.* The cap (the job's ``memory_bytes``) is enforced by the worker, which adds up the
anonymous and shared memory of the job's processes (:func:`memory_in_use`) every 0.2 s and at the
end of every cell, and kills them all past it (:mod:`reglab.grading.run`). Each kernel also gets
``RLIMIT_DATA`` (its private writable memory: heap, NumPy and TensorFlow buffers, thread stacks) of
:func:`data_limit`, well above the cap: a single allocation past that fails at once
(``MemoryError``, TensorFlow's ``ResourceExhaustedError``) instead of filling memory faster than the
worker looks. ``RLIMIT_AS`` is not set: TensorFlow reserves address space by the
gigabyte (2.1 to 2.4 GB for the course's exercises on 2 cores, 3.9 GB with 144 threads) while
using 300 MB of anonymous memory, and a kernel training a small Keras model aborted under a
2 GB address-space limit. :func:`descendants` starts at the template's children, so the
template's own memory is never counted as the job's. A kernel forked from the ``tensorflow``
template maps the template's anonymous pages copy-on-write: the fast sum counts them in full,
as much as a kernel that imported TensorFlow itself holds (about 290 MB either way after
``reglab.setup`` and a small fit), and the exact sum counts half of those still shared (190 MB
instead of 280).

*Why forking after ``import tensorflow, keras`` is safe.* A fork copies only the thread that
calls it: it is safe when no other thread holds a lock or is halfway through changing shared
state, and when the child needs no thread that stayed behind. The template forks from its only
thread. With ``OPENBLAS_NUM_THREADS=1`` in its environment before the interpreter starts,
importing all of its modules, TensorFlow and Keras included, starts no thread (checked with
gdb, a breakpoint on ``pthread_create`` through the imports: never hit; until this module set
it only after ``reglab`` had imported NumPy, the plain template had NumPy's OpenBLAS thread).
Without it there are three: the main thread and two OpenBLAS ``blas_thread_server`` threads,
NumPy's copy of OpenBLAS (started when ``import numpy`` loads it) and SciPy's (``import
tensorflow`` loads ``scipy.special`` through Keras's scikit-learn wrappers). Even those are
fork-safe: OpenBLAS registers a ``pthread_atfork`` handler that stops its threads before a
fork, and they start again in either process when next needed; the only ``pthread_atfork``
handlers the imports register are those two (gdb, a breakpoint on ``__register_atfork``).
TensorFlow's own threads (the intra- and inter-op pools, the eager executor) belong to its
runtime, which the first op or tensor of the process creates, not the import: after ``import
tensorflow, keras`` the eager context is not initialised. (Started in the template, the runtime
leaves a forked kernel without its thread pools: a Keras fit there never ends.) So the
conditions are: the template only imports (it creates no tensor, layer or model and calls
nothing in ``tf.config``); nothing it imports starts a thread that is not fork-aware; and the
environment that TensorFlow and Keras read when imported is the one a fresh kernel has after
``reglab.setup``. The kernel then starts TensorFlow's runtime itself, after
``reglab.setup(keras=True)`` has set one intra-op and one inter-op thread.
tests/test_grade_tf_template.py checks that a kernel forked from the ``tensorflow`` template
records exactly what a fresh one does; ``python -m reglab.bench_grade --stress-templates`` does
it for exercises 04 to 08 many times over.

The protocol on the template's stdin/stdout is one JSON object per line: the worker sends
``{"connection_file", "env", "cwd", "memory_bytes"}`` and gets ``{"pid": P}``; when a child
ends (a kernel, or an orphan it adopted) the template reports ``{"exit": P, "code": C}`` (``C``
as ``Popen.returncode``: minus the signal number for a killed child).
"""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from jupyter_client.manager import AsyncKernelManager

from reglab.startup import ONE_THREAD_ENV, QUIET_TF_ENV

PLAIN, TENSORFLOW = "plain", "tensorflow"
PRELOAD = ("numpy", "matplotlib", "matplotlib.pyplot", "ipykernel.kernelapp", "reglab",
           "reglab.checks", "reglab.data")
PRELOADS = {PLAIN: PRELOAD, TENSORFLOW: PRELOAD + ("tensorflow", "keras")}
TEMPLATE_ENV = {"MPLBACKEND": "Agg", **ONE_THREAD_ENV}
FLAVOUR_ENV = {PLAIN: {}, TENSORFLOW: {**QUIET_TF_ENV, **ONE_THREAD_ENV}}
NEEDS_TENSORFLOW = re.compile(r"^\s*(import|from)\s+(tensorflow|keras)\b|\bkeras\s*=\s*True",
                              re.M)
DATA_HEADROOM = 2 * 2**30  # RLIMIT_DATA is the cap plus the larger of the cap and this
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36


# ---------------------------------------------------------------- flavours

def flavour_for(notebook) -> str:
    """The template a SOURCE notebook's kernels fork from: :data:`TENSORFLOW` if one of its
    code cells has a line that imports ``tensorflow`` or ``keras`` (``import tensorflow as
    tf``, ``from keras import layers``) or passes ``keras=True``, else :data:`PLAIN`."""
    for cell in notebook.get("cells", []):
        source = cell.get("source") or ""
        text = "".join(source) if isinstance(source, list) else str(source)
        if cell.get("cell_type") == "code" and NEEDS_TENSORFLOW.search(text):
            return TENSORFLOW
    return PLAIN


def template_env(flavour: str) -> dict[str, str]:
    """What a template's interpreter starts with, on top of its worker's environment."""
    return {**TEMPLATE_ENV, **FLAVOUR_ENV[flavour]}


# ---------------------------------------------------------------- the template process

def template_main(flavour: str) -> None:
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    folder = tempfile.mkdtemp(prefix="reglab-template-")
    os.chdir(folder)  # where Keras, imported, reads and writes .keras/keras.json
    # the Template passes template_env at start, before `-m reglab.grading.fork` imports
    # NumPy; set here too for a template started otherwise (then NumPy's OpenBLAS has started
    # a thread, which it stops at each fork: see the module's doc)
    os.environ.update(template_env(flavour), HOME=folder, MPLCONFIGDIR=folder,
                      KERAS_HOME=".keras")
    for name in PRELOADS[flavour]:
        importlib.import_module(name)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    try:
        _serve((wake_r, wake_w))
    except BrokenPipeError:  # the worker went away while we answered it
        pass
    finally:  # whatever ended the loop, the kernels it was using end with it
        kill_below(os.getpid())
        while True:  # collect every child, adopted ones too
            try:
                os.waitpid(-1, 0)
            except ChildProcessError:
                break
        shutil.rmtree(folder, ignore_errors=True)


def _serve(wake_fds) -> None:
    pending = b""
    while True:
        ready, _, _ = select.select([0, wake_fds[0]], [], [])
        if wake_fds[0] in ready:
            os.read(wake_fds[0], 4096)
            _reap()
        if 0 in ready:
            data = os.read(0, 1 << 16)
            if not data:
                return  # the worker is gone
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    _say({"pid": _spawn(json.loads(line), wake_fds)})


def _prctl(option: int, value: int) -> bool:
    """Linux's prctl(2) (unprivileged options only); False where it is not available."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _say(message: dict) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _reap() -> None:
    """Collect every child that has ended (adopted orphans too) and report it."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _say({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _spawn(request: dict, private_fds) -> int:
    template_pid = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: become the kernel, never return into the template's loop
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # killed if the template dies
        if os.getppid() != template_pid:  # it died before that was set
            os._exit(1)
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
        os.environ["JPY_PARENT_PID"] = str(template_pid)
        _limit_memory(int(request["memory_bytes"]))
        sys.argv = ["reglab-grading-kernel", "-f", request["connection_file"]]
        from ipykernel.kernelapp import IPKernelApp

        IPKernelApp.launch_instance(argv=sys.argv[1:])
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0
    finally:
        os._exit(code)


def data_limit(memory_bytes: int) -> int:
    """The kernel's RLIMIT_DATA for a cap: the backstop behind the worker's measurement."""
    return memory_bytes + max(memory_bytes, DATA_HEADROOM)


def _limit_memory(memory_bytes: int) -> None:
    import resource

    if memory_bytes > 0:
        limit = data_limit(memory_bytes)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


# ---------------------------------------------------------------- the job's processes

def children(pid: int) -> list[int]:
    """The children of a process (of each of its threads), from /proc."""
    found = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found += [int(p) for p in handle.read().split()]
        except OSError:  # the thread or the process has just ended
            continue
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), zombies included."""
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


_RSS_FIELDS = re.compile(r"^(RssAnon|RssShmem):\s+(\d+) kB", re.M)
_PSS_FIELDS = re.compile(r"^(Pss_Anon|Pss_Shmem|Pss):\s+(\d+) kB", re.M)


def memory_in_use(pids, exact: bool = False) -> int:
    """Bytes of anonymous and shared memory these processes hold.

    Anonymous and shared (tmpfs) pages are what cannot be given back: the machine has no
    swap. File pages are left out (TensorFlow's libraries are about 330 MB of a TensorFlow
    kernel's 600 MB RSS): the page cache shares them and can drop them.

    Fast (the default): ``RssAnon + RssShmem`` from /proc/PID/status, 0.01 ms a process. A
    page shared among them (after a fork, copy-on-write) counts in each, so this is an upper
    bound. ``exact``: the proportional share, ``Pss_Anon + Pss_Shmem`` from
    /proc/PID/smaps_rollup, each shared page counted once; it walks every mapping (30 to
    100 ms for a TensorFlow kernel with 130 threads), so it is asked for only when the fast
    sum passes the cap.
    """
    name, fields = ("smaps_rollup", _PSS_FIELDS) if exact else ("status", _RSS_FIELDS)
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/{name}") as handle:
                found = {k: int(v) for k, v in fields.findall(handle.read())}
        except OSError:  # ended, or no smaps_rollup (before Linux 4.14): not counted
            continue
        if exact and "Pss_Anon" not in found:  # before Linux 5.8: all of PSS, file pages too
            found = {"Pss": found.get("Pss", 0)}
        else:
            found.pop("Pss", None)
        total += sum(found.values()) * 1024
    return total


def kill_below(pid: int, rounds: int = 100) -> None:
    """SIGKILL every process below ``pid`` until none is left running.

    A process that forks while this runs has its child found on the next round: the child of
    a killed parent is adopted by the subreaper, still below ``pid``.
    """
    for _ in range(rounds):
        alive = [p for p in descendants(pid) if running(p)]
        if not alive:
            return
        for p in alive:
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)


# ---------------------------------------------------------------- the worker's side

class Template:
    """The worker's handle on one of its template processes."""

    def __init__(self, flavour: str = PLAIN) -> None:
        if flavour not in PRELOADS:
            raise ValueError(f"no kernel template flavour {flavour!r}")
        self.flavour = flavour
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reglab.grading.fork", flavour], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
            cwd=tempfile.gettempdir(), env={**os.environ, **template_env(flavour)})
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

    def kill_job(self) -> None:
        """Kill every process below the template: the job's kernel and all it started."""
        kill_below(self.process.pid)

    def stop(self) -> None:
        """End of input: the template reaps its children and exits (killed if it lingers)."""
        try:
            self.process.stdin.close()
            self.process.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            kill_below(self.process.pid)
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


_templates: dict[str, Template] = {}  # this process's, one per flavour


def template(flavour: str = PLAIN) -> Template:
    """This process's template of a flavour, started on first use and restarted if it has
    died."""
    found = _templates.get(flavour)
    if found is None or found.gone or found.process.poll() is not None:
        found = _templates[flavour] = Template(flavour)
    return found


def kill_job() -> None:
    """Kill every process below this process's templates (see Template): a worker runs one
    job at a time, so that is the job's kernel and all it started."""
    for found in _templates.values():
        if not found.gone:
            found.kill_job()


def stop_templates() -> None:
    """Stop every template of this process."""
    while _templates:
        _templates.popitem()[1].stop()


class ForkingKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels are forked from a template of the flavour, under a
    memory limit."""

    memory_bytes = 0
    flavour = PLAIN

    async def _async_launch_kernel(self, kernel_cmd, **kw) -> None:
        env = kw.get("env") or {}
        cwd = str(kw.get("cwd") or tempfile.gettempdir())
        kernel = template(self.flavour).spawn(self.connection_file, dict(env), cwd,
                                              self.memory_bytes)
        provisioner = self.provisioner
        provisioner.process, provisioner.pid, provisioner.pgid = kernel, kernel.pid, kernel.pid
        provisioner.cwd = cwd
        self._reconcile_connection_info(provisioner.connection_info)


if __name__ == "__main__":
    template_main(sys.argv[1] if len(sys.argv) > 1 else PLAIN)
