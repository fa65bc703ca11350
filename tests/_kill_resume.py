"""Shared helper of the kill-and-resume tests: start a ``shapegen`` command as a subprocess,
SIGKILL it once a file shows it is part-way, run the same command again, compare with an
uninterrupted run.

Every command runs as ``python -c WRAPPER ARGV...`` with one torch thread. The wrapper can
replace ``torch.save`` (or ``numpy.savez``/``numpy.savez_compressed``/``shapegen.io.write_npz``) by one that writes
half of the bytes of its N-th call and then SIGKILLs its own process: a kill in the middle
of writing a checkpoint or an output, with no test hook in the package.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent

WRAPPER = r"""
import io, os, signal, sys

# A shell starts background jobs with SIGINT ignored, and Python then never raises
# KeyboardInterrupt; a user's Ctrl-C reaches a foreground process, so restore the default.
signal.signal(signal.SIGINT, signal.default_int_handler)

torn = os.environ.get("SHAPEGEN_TEST_TORN")  # "module.function:N": the N-th call writes half and dies
if torn:
    import importlib
    target, n = torn.rsplit(":", 1)
    module_name, func_name = target.rsplit(".", 1)
    module = importlib.import_module(module_name)
    real, calls = getattr(module, func_name), [0]

    def torn_write(obj, *args, **kwargs):
        calls[0] += 1
        if calls[0] < int(n):
            return real(obj, *args, **kwargs)
        buf = io.BytesIO()
        if func_name == "save":  # torch.save(obj, f)
            dest, rest = args[0], args[1:]
            real(obj, buf, *rest, **kwargs)
        elif func_name == "write_npz":  # shapegen.io.write_npz(path, compressed=..., **arrays)
            import numpy
            from shapegen.io import atomic_path
            compressed = kwargs.pop("compressed", False)
            (numpy.savez_compressed if compressed else numpy.savez)(buf, **kwargs)
            data = buf.getvalue()
            # Die half-way through writing the bytes, where the real writer writes them.
            with atomic_path(obj) as tmp, open(tmp, "wb") as fh:
                fh.write(data[: len(data) // 2])
                fh.flush()
                os.fsync(fh.fileno())
                os.kill(os.getpid(), signal.SIGKILL)
        else:  # numpy.savez(file, **arrays)
            dest = obj
            real(buf, *args, **kwargs)
        data = buf.getvalue()
        fh = dest if hasattr(dest, "write") else open(dest, "wb")
        fh.write(data[: len(data) // 2])
        fh.flush()
        os.fsync(fh.fileno())
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(module, func_name, torn_write)

from shapegen.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               TQDM_DISABLE="1", SHAPEGEN_TEST_TORN="")
    env.update(extra or {})
    return env


def start(argv: list[str], torn: str | None = None) -> subprocess.Popen:
    """``shapegen ARGV`` as a subprocess (stdout and stderr piped, text mode)."""
    return subprocess.Popen([sys.executable, "-c", WRAPPER, *argv], cwd=REPO, env=_env({"SHAPEGEN_TEST_TORN": torn or ""}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(argv: list[str], torn: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``shapegen ARGV`` to the end; returns the completed process (not checked)."""
    p = start(argv, torn)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def run_ok(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    done = run(argv, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def reference(argv: list[str]) -> str:
    """The uninterrupted run, in this process (saves a Python start-up per test; the command
    seeds everything it draws). It runs on one torch thread like the subprocesses: with more
    threads the reductions add in another order and the weights differ in the last bits.
    Returns its stdout."""
    import contextlib
    import io

    from shapegen.cli import main

    buf, threads = io.StringIO(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(buf):
            code = main(argv)
    finally:
        torch.set_num_threads(threads)
    assert code == 0, buf.getvalue()[-3000:]
    return buf.getvalue()


def kill_when(argv: list[str], ready: Callable[[], bool], timeout: float = 300) -> None:
    """Start ``shapegen ARGV``, SIGKILL it as soon as ``ready()`` holds, and check that it was
    indeed killed part-way (not finished before the kill)."""
    p = start(argv)
    deadline = time.monotonic() + timeout
    while not ready():
        if p.poll() is not None:
            raise AssertionError(f"the command ended (status {p.returncode}) before it could be killed:\n{p.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            p.kill()
            raise AssertionError("timed out waiting for the command's first checkpoint or output")
        time.sleep(0.01)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    assert p.returncode == -signal.SIGKILL, f"status {p.returncode}: the command finished before the kill; give it more work"


def torn_kill(argv: list[str], torn: str) -> subprocess.CompletedProcess:
    """Run ``shapegen ARGV`` with a torn write (see :data:`WRAPPER`); check it died by SIGKILL."""
    done = run(argv, torn=torn)
    assert done.returncode == -signal.SIGKILL, f"status {done.returncode}: the torn write never happened\n{done.stderr[-3000:]}"
    return done


def interrupt_when(argv: list[str], ready: Callable[[], bool], timeout: float = 300) -> subprocess.CompletedProcess:
    """Start ``shapegen ARGV``, send SIGINT (Ctrl-C) once ``ready()`` holds, wait for the end."""
    p = start(argv)
    deadline = time.monotonic() + timeout
    while not ready():
        assert p.poll() is None, f"the command ended (status {p.returncode}) before the SIGINT:\n{p.stderr.read()[-3000:]}"
        assert time.monotonic() < deadline, "timed out waiting for the command to get going"
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    try:
        out, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()  # never leave a runaway run behind
        p.communicate()
        raise
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def step_of(path: Path) -> int:
    """``global_step`` of a Lightning checkpoint (-1 while the file does not exist)."""
    from shapegen.checkpoints import load_checkpoint

    return int(load_checkpoint(path)["global_step"]) if path.is_file() else -1


def kill_after_step_and_resume(argv: list[str], last: Path, min_step: int, max_step: int,
                               rerun: list[str] | None = None) -> int:
    """SIGKILL ``shapegen ARGV`` once checkpoint ``last`` holds step ``min_step`` or later, run the
    same command again (or ``rerun``), check it said it resumed from the killed step, and return
    that step (asserted to lie in ``[min_step, max_step)``, i.e. part-way)."""
    kill_when(argv, lambda: step_of(last) >= min_step)
    killed_at = step_of(last)
    assert min_step <= killed_at < max_step, killed_at
    again = run_ok(rerun or argv)
    assert f"resuming from {last} (step {killed_at};" in again.stdout, again.stdout[-2000:]
    return killed_at


def exists(path: Path) -> Callable[[], bool]:
    return path.is_file


def count_at_least(folder: Path, pattern: str, n: int) -> Callable[[], bool]:
    """True once ``folder`` holds ``n`` files matching ``pattern`` (hidden temporary files excluded)."""
    return lambda: sum(not p.name.startswith(".") for p in folder.glob(pattern)) >= n


def assert_same_tree(a, b, where: str = "") -> None:
    """Bit-identical nested checkpoint contents: tensors with ``torch.equal``, the rest with ``==``."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, where
        assert torch.equal(a, b), f"{where}: tensors differ (max |diff| {(a.double() - b.double()).abs().max():.3g})"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), f"{where}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        for k in a:
            assert_same_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_checkpoint(a: Path, b: Path, keys=("state_dict", "optimizer_states", "lr_schedulers", "global_step", "epoch")) -> None:
    """Weights, optimiser moments, schedules and step counters equal (not Lightning's ``loops``
    bookkeeping, whose "ready" counters count a restarted epoch twice)."""
    from shapegen.checkpoints import load_checkpoint

    ca, cb = load_checkpoint(a), load_checkpoint(b)
    for key in keys:
        assert (key in ca) == (key in cb), key
        if key in ca:
            assert_same_tree(ca[key], cb[key], key)


def visible_files(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``folder`` except hidden ones (``.NAME.XXXX``:
    the temporary files of atomic writes, which a SIGKILL may leave behind and shapegen never reads)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}
