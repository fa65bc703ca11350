# SPDX-License-Identifier: GPL-3.0-or-later
"""Background ``shapegen`` jobs: subprocesses polled without ever blocking Blender's UI.

No ``bpy`` here, so the queue can be driven by a ``bpy.app.timers`` callback in the UI, by a
plain polling loop in background mode (``wait=True``), or by tests without Blender.

A job is one ``shapegen --progress json COMMAND ...`` process. Two reader threads move its
stdout and stderr lines into a queue; :meth:`JobQueue.poll` drains the queues without waiting,
parses the JSON progress lines (``{"phase": ..., "done": ..., "total": ...}``), notices the exit
and starts queued jobs. Cancelling sends SIGTERM to the job's process group, then SIGKILL after
a grace period, and counts the job as ended only once the process is reaped (no zombie left).
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
ENDED = (DONE, FAILED, CANCELLED)

KILL_AFTER_S = 3.0
"""Seconds between SIGTERM and SIGKILL when a job is cancelled."""

_ids = itertools.count(1)


def next_id() -> int:
    """A job id not used before in this session (ids name the job's output folder before it exists)."""
    return next(_ids)


@dataclass
class Job:
    """One ``shapegen`` run and what the panel shows of it.

    Attributes:
        argv: the full command line (executable first).
        out_dir: the job's own output folder (its results, preview and ``shapegen.log``).
        name: what the imported objects are named after (prompt, class, sketch).
        kind: ``text``, ``class``, ``sketch`` or ``rig``.
        on_done: called once in the polling thread when the process exits with status 0; its
            exceptions turn the job into a failure with their message.
    """

    argv: list[str]
    out_dir: Path
    name: str
    kind: str
    on_done: Callable[[Job], None] | None = None
    id: int = field(default_factory=next_id)
    state: str = QUEUED
    phase: str = "queued"
    done: int | None = None
    total: int | None = None
    message: str = ""
    """The one-line error of a failed job (shapegen's ``error: ...`` without the prefix)."""
    preview: Path | None = None
    objects: list[str] = field(default_factory=list)
    """Names of the objects imported for this job."""
    started: float | None = None
    ended: float | None = None
    proc: subprocess.Popen | None = None
    lines: queue.Queue = field(default_factory=queue.Queue)
    stderr_tail: list[str] = field(default_factory=list)
    cancel_at: float | None = None
    readers: list[threading.Thread] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Progress of the current phase in [0, 1] (1 once the job has ended)."""
        if self.state in ENDED:
            return 1.0
        if self.done is None or not self.total:
            return 0.0
        return min(max(self.done / self.total, 0.0), 1.0)

    @property
    def status_text(self) -> str:
        """``"sampling 3/20"``, ``"queued"``, ``"failed: ..."``."""
        if self.state == FAILED:
            return f"failed: {self.message}"
        if self.state in (DONE, CANCELLED):
            return self.state
        if self.done is not None and self.total:
            return f"{self.phase} {self.done}/{self.total}"
        return self.phase


def _reader(stream, tag: str, sink: queue.Queue) -> None:
    """Move ``stream``'s lines into ``sink`` as ``(tag, line)`` until EOF (runs in a thread)."""
    try:
        for line in iter(stream.readline, ""):
            sink.put((tag, line.rstrip("\n")))
    finally:
        stream.close()


def error_line(stderr_lines: list[str], returncode: int) -> str:
    """shapegen's one-line error from a failed run's stderr, else its last line, else the exit status."""
    for line in reversed(stderr_lines):
        if line.startswith("error: "):
            return line[len("error: ") :]
    text = [line for line in stderr_lines if line.strip() and not line.startswith("{")]
    if text:
        return text[-1].strip()
    if returncode < 0:
        return f"shapegen was stopped by signal {-returncode}"
    return f"shapegen exited with status {returncode}"


class JobQueue:
    """Jobs in submission order; at most ``max_running`` run at once, the others wait.

    Args:
        max_running: how many shapegen processes may run at the same time. One is the default:
            each job uses every core torch gives it, so two at once finish no sooner in total.
        env: extra environment variables for the processes.
    """

    def __init__(self, max_running: int = 1, env: dict[str, str] | None = None) -> None:
        self.jobs: list[Job] = []
        self.max_running = max_running
        self.env = dict(env or {})

    def submit(self, job: Job) -> Job:
        """Queue ``job``; it starts at the next :meth:`poll` that has a free slot."""
        self.jobs.append(job)
        return job

    def get(self, job_id: int) -> Job | None:
        return next((j for j in self.jobs if j.id == job_id), None)

    @property
    def active(self) -> list[Job]:
        """Jobs queued or running."""
        return [j for j in self.jobs if j.state not in ENDED]

    def _start(self, job: Job) -> None:
        job.out_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        try:
            # A session of its own, so that cancelling reaches any child process it starts.
            job.proc = subprocess.Popen(
                job.argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=env,
                cwd=job.out_dir,
                start_new_session=os.name == "posix",
            )
        except OSError as exc:
            self._end(job, FAILED, f"cannot run '{job.argv[0]}' ({exc.strerror or exc}); set the shapegen executable in the add-on's preferences")
            return
        job.state, job.phase, job.started = RUNNING, "starting", time.monotonic()
        for tag, stream in (("out", job.proc.stdout), ("err", job.proc.stderr)):
            job.readers.append(threading.Thread(target=_reader, args=(stream, tag, job.lines), daemon=True))
            job.readers[-1].start()

    def _end(self, job: Job, state: str, message: str = "") -> None:
        job.state, job.message, job.ended = state, message, time.monotonic()
        job.phase = state

    def _drain(self, job: Job) -> None:
        """Read what the job has written so far, without waiting."""
        while True:
            try:
                tag, line = job.lines.get_nowait()
            except queue.Empty:
                return
            if tag == "err" and line.startswith("{"):
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    event = None
                if isinstance(event, dict) and "phase" in event:
                    job.phase, job.done, job.total = str(event["phase"]), event.get("done"), event.get("total")
                    continue
            if tag == "err":
                job.stderr_tail = [*job.stderr_tail[-49:], line]
            _log(job, tag, line)

    def cancel(self, job_id: int) -> bool:
        """Ask job ``job_id`` to stop: a queued job is dropped, a running one gets SIGTERM now and
        SIGKILL after :data:`KILL_AFTER_S` (sent by :meth:`poll`). Returns False for an unknown or
        ended job."""
        job = self.get(job_id)
        if job is None or job.state in ENDED:
            return False
        if job.state == QUEUED:
            self._end(job, CANCELLED)
            return True
        if job.cancel_at is None:
            job.cancel_at = time.monotonic()
            job.phase = "cancelling"
            _signal(job.proc, kill=False)
        return True

    def poll(self) -> list[Job]:
        """One non-blocking round: read output, notice exits (running ``on_done``), send SIGKILL to
        jobs past their grace period, start queued jobs. Returns the jobs that ended in this round."""
        ended = []
        for job in self.jobs:
            if job.state != RUNNING:
                continue
            self._drain(job)
            code = job.proc.poll()
            if code is None:
                if job.cancel_at is not None and time.monotonic() - job.cancel_at > KILL_AFTER_S:
                    _signal(job.proc, kill=True)
                continue
            # The readers reach EOF as soon as the process is gone; wait for them (briefly: a
            # grandchild could hold the pipes open) so the lines written just before the exit,
            # the error line among them, are read.
            for reader in job.readers:
                reader.join(timeout=1.0)
            self._drain(job)
            if job.cancel_at is not None:
                self._end(job, CANCELLED)
            elif code != 0:
                self._end(job, FAILED, error_line(job.stderr_tail, code))
            else:
                try:
                    if job.on_done is not None:
                        job.on_done(job)
                except Exception as exc:  # an import that failed: shown like a shapegen error
                    self._end(job, FAILED, f"{type(exc).__name__}: {exc}".splitlines()[0])
                else:
                    self._end(job, DONE)
            ended.append(job)
        running = sum(j.state == RUNNING for j in self.jobs)
        for job in self.jobs:
            if running >= self.max_running:
                break
            if job.state == QUEUED:
                self._start(job)
                running += job.state == RUNNING
                if job.state == FAILED:
                    ended.append(job)
        return ended

    def wait(self, job: Job, timeout: float | None = None, interval: float = 0.05) -> Job:
        """Poll until ``job`` has ended (for scripts and background mode, where no timer runs);
        cancels it on ``timeout`` seconds."""
        start = time.monotonic()
        while job.state not in ENDED:
            self.poll()
            if timeout is not None and time.monotonic() - start > timeout and job.cancel_at is None:
                self.cancel(job.id)
            time.sleep(interval)
        return job

    def shutdown(self) -> None:
        """Cancel every job and reap the processes (unregistering the add-on)."""
        for job in self.active:
            self.cancel(job.id)
        deadline = time.monotonic() + KILL_AFTER_S + 2.0
        while any(j.state == RUNNING for j in self.jobs) and time.monotonic() < deadline:
            self.poll()
            time.sleep(0.02)


def _signal(proc: subprocess.Popen, kill: bool) -> None:
    """SIGTERM (SIGKILL if ``kill``) to the process group of ``proc`` (its own session on POSIX);
    terminate/kill on Windows."""
    if proc.poll() is not None:
        return
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        elif kill:
            proc.kill()
        else:
            proc.terminate()
    except (ProcessLookupError, PermissionError):
        pass


def _log(job: Job, tag: str, line: str) -> None:
    """Keep the job's output in ``out_dir/shapegen.log`` for the user to read after a failure."""
    try:
        with open(job.out_dir / "shapegen.log", "a", encoding="utf-8") as fh:
            fh.write(f"{'stderr' if tag == 'err' else 'stdout'}: {line}\n")
    except OSError:
        pass
