"""Execute a notebook in a fresh kernel of the current environment (bench and tests)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path, *, timeout: int = 300, allow_errors: bool = False,
            env: dict[str, str] | None = None):
    """Run ``path`` top to bottom in its own folder; return (executed notebook, seconds)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
        resources={"metadata": {"path": str(Path(path).parent)}},
    )
    old_env = {key: os.environ.get(key) for key in (env or {})}
    os.environ.update(env or {})
    try:
        start = time.perf_counter()
        client.execute()
        return nb, time.perf_counter() - start
    finally:
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def error_outputs(cell) -> list[dict]:
    return [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
