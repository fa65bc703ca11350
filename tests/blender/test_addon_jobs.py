"""The add-on's job queue without Blender: progress lines, exits, one-line errors, queueing and
cancellation (the process is gone afterwards), on small Python child processes."""

from __future__ import annotations

import os
import sys
import textwrap
import time

import pytest
from _addon_modules import load

jobs = load("jobs")


def _script(tmp_path, body: str) -> list[str]:
    path = tmp_path / f"child_{time.monotonic_ns()}.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def _job(tmp_path, body: str, **kw):
    return jobs.Job(argv=_script(tmp_path, body), out_dir=tmp_path / "out", name="x", kind="text", **kw)


def _poll_until(queue, cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, [(j.state, j.phase) for j in queue.jobs]
        queue.poll()
        time.sleep(0.01)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_progress_lines_and_success_run_on_done(tmp_path):
    seen = []
    queue = jobs.JobQueue()
    job = queue.submit(
        _job(
            tmp_path,
            """
        import sys, time
        print('{"phase": "sampling", "done": 3, "total": 4}', file=sys.stderr, flush=True)
        print("wrote shape.glb")
        time.sleep(0.5)
    """,
            on_done=lambda j: seen.append(j.phase),
        )
    )
    assert job.state == jobs.QUEUED and job.fraction == 0.0
    _poll_until(queue, lambda: job.phase == "sampling")
    assert (job.done, job.total, job.fraction, job.status_text) == (3, 4, 0.75, "sampling 3/4")
    _poll_until(queue, lambda: job.state in jobs.ENDED)
    assert job.state == jobs.DONE and seen == ["sampling"] and job.fraction == 1.0
    log = (tmp_path / "out" / "shapegen.log").read_text()
    assert "stdout: wrote shape.glb" in log and "sampling" not in log  # progress lines are not logged


def test_failure_keeps_shapegens_one_line_error(tmp_path):
    called = []
    queue = jobs.JobQueue()
    job = queue.submit(
        _job(
            tmp_path,
            """
        import sys
        print("warning: something", file=sys.stderr)
        print("error: the prompt 'zzz' names no class this model knows", file=sys.stderr)
        sys.exit(2)
    """,
            on_done=called.append,
        )
    )
    _poll_until(queue, lambda: job.state in jobs.ENDED)
    assert job.state == jobs.FAILED and job.message == "the prompt 'zzz' names no class this model knows"
    assert called == [] and job.status_text.startswith("failed: the prompt")


def test_on_done_exception_fails_the_job(tmp_path):
    def broken(job):
        raise RuntimeError("the glTF importer could not read shape.glb")

    queue = jobs.JobQueue()
    job = queue.submit(_job(tmp_path, "pass", on_done=broken))
    _poll_until(queue, lambda: job.state in jobs.ENDED)
    assert job.state == jobs.FAILED and job.message == "RuntimeError: the glTF importer could not read shape.glb"


def test_missing_executable_is_a_failed_job(tmp_path):
    queue = jobs.JobQueue()
    job = queue.submit(jobs.Job(argv=[str(tmp_path / "no-shapegen")], out_dir=tmp_path / "out", name="x", kind="text"))
    ended = queue.poll()
    assert ended == [job] and job.state == jobs.FAILED and "cannot run" in job.message and "preferences" in job.message


def test_one_at_a_time_and_cancel_of_a_queued_job(tmp_path):
    queue = jobs.JobQueue(max_running=1)
    first = queue.submit(_job(tmp_path, "import time; time.sleep(0.5)"))
    second = queue.submit(_job(tmp_path, "pass"))
    third = queue.submit(_job(tmp_path, "pass"))
    queue.poll()
    assert (first.state, second.state, third.state) == (jobs.RUNNING, jobs.QUEUED, jobs.QUEUED)
    assert queue.cancel(third.id) and third.state == jobs.CANCELLED and third.proc is None
    _poll_until(queue, lambda: second.state in jobs.ENDED)
    assert first.state == jobs.DONE and second.state == jobs.DONE and first.ended <= second.started
    assert not queue.cancel(first.id)  # an ended job cannot be cancelled


@pytest.mark.parametrize("ignores_sigterm", [False, True])
def test_cancel_ends_the_process_group(tmp_path, monkeypatch, ignores_sigterm):
    monkeypatch.setattr(jobs, "KILL_AFTER_S", 0.3)
    queue = jobs.JobQueue()
    # The job starts a grandchild, as a command with workers would: cancelling must reach it too.
    job = queue.submit(
        _job(
            tmp_path,
            f"""
        import signal, subprocess, sys, time
        if {ignores_sigterm}:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        print(child.pid, flush=True)
        print('{{"phase": "sampling", "done": 0, "total": 1}}', file=sys.stderr, flush=True)
        time.sleep(60)
    """,
        )
    )
    log = tmp_path / "out" / "shapegen.log"
    # stdout and stderr have separate readers: the progress line can arrive before the pid line is logged.
    _poll_until(queue, lambda: job.phase == "sampling" and log.is_file() and "stdout: " in log.read_text())
    grandchild = int(log.read_text().split("stdout: ")[1].split()[0])
    start = time.monotonic()
    assert queue.cancel(job.id) and job.phase == "cancelling"
    _poll_until(queue, lambda: job.state in jobs.ENDED)
    assert job.state == jobs.CANCELLED and job.proc.poll() is not None and _gone(job.proc.pid)
    if ignores_sigterm:
        assert time.monotonic() - start >= 0.3  # it took the SIGKILL
    deadline = time.monotonic() + 10
    while not _gone(grandchild) and time.monotonic() < deadline:  # reaped by init once killed
        time.sleep(0.05)
    assert _gone(grandchild)


def test_shutdown_cancels_everything(tmp_path):
    queue = jobs.JobQueue(max_running=2)
    running = [queue.submit(_job(tmp_path, "import time; time.sleep(60)")) for _ in range(2)]
    waiting = queue.submit(_job(tmp_path, "pass"))
    queue.poll()
    queue.shutdown()
    assert [j.state for j in [*running, waiting]] == [jobs.CANCELLED] * 3
    assert all(_gone(j.proc.pid) for j in running) and queue.active == []


def test_error_line_fallbacks():
    assert jobs.error_line(['{"phase": "x"}', "Traceback ...", "ValueError: boom"], 1) == "ValueError: boom"
    assert jobs.error_line([], -9) == "shapegen was stopped by signal 9"
    assert jobs.error_line([], 3) == "shapegen exited with status 3"


def test_error_line_written_just_before_exit_is_read(tmp_path, monkeypatch):
    # Readers that lag behind the process: when its exit is noticed, its last line is still in
    # the pipe; the job must read it before naming the error.
    reader = jobs._reader

    def slow_reader(*args):
        time.sleep(0.5)
        reader(*args)

    monkeypatch.setattr(jobs, "_reader", slow_reader)
    queue = jobs.JobQueue()
    job = queue.submit(
        _job(
            tmp_path,
            """
        import sys
        print("error: the last line", file=sys.stderr)
        sys.exit(2)
    """,
        )
    )
    queue.poll()
    job.proc.wait()  # the test may block; the add-on never does
    queue.poll()
    assert job.state == jobs.FAILED and job.message == "the last line"
