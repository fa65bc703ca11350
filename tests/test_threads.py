"""Sharing the cores between running shapegen jobs (:mod:`shapegen.threads`)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import shapegen.threads as threads
from shapegen.cli import main


@pytest.fixture
def restore_threads(monkeypatch):
    n = torch.get_num_threads()
    monkeypatch.setattr(threads, "_REGISTERED", None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("SHAPEGEN_THREADS", raising=False)
    yield
    torch.set_num_threads(n)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_running_jobs_counts_live_processes_and_forgets_ended_ones(tmp_path):
    for pid in (os.getpid(), os.getppid(), _dead_pid()):
        (tmp_path / str(pid)).touch()
    (tmp_path / "notes.txt").touch()
    assert threads.running_jobs(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([str(os.getpid()), str(os.getppid()), "notes.txt"])


def test_registered_jobs_share_the_cores(tmp_path, restore_threads):
    cores = len(os.sched_getaffinity(0))
    assert threads.share_cores(tmp_path) is None  # not registered: torch's threads are left alone
    threads.register_job(tmp_path)
    assert (tmp_path / str(os.getpid())).is_file()
    assert threads.share_cores(tmp_path) == cores and torch.get_num_threads() == cores
    (tmp_path / str(os.getppid())).touch()  # a second job starts
    assert threads.share_cores(tmp_path) == max(1, cores // 2) and torch.get_num_threads() == max(1, cores // 2)
    (tmp_path / str(os.getppid())).unlink()  # and ends: the cores come back
    assert threads.share_cores(tmp_path) == cores
    threads._unregister()
    assert not (tmp_path / str(os.getpid())).exists()


@pytest.mark.parametrize(("env", "chose"), [({}, False), ({"SHAPEGEN_THREADS": "auto"}, False),
                                             ({"OMP_NUM_THREADS": "1"}, True), ({"SHAPEGEN_THREADS": "3"}, True)])
def test_a_thread_count_the_user_chose_is_kept(tmp_path, restore_threads, monkeypatch, env, chose):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert threads.user_chose_threads() == chose
    threads.register_job(tmp_path)
    assert (tmp_path / str(os.getpid())).exists() == (not chose)
    threads._unregister()


def test_shapegen_threads_sets_the_count(restore_threads, monkeypatch):
    monkeypatch.setenv("SHAPEGEN_THREADS", "1")
    threads.apply_thread_policy()
    assert torch.get_num_threads() == 1 and threads._REGISTERED is None


def test_main_called_from_python_leaves_the_threads_alone(restore_threads, tmp_path):
    torch.set_num_threads(1)
    assert main(["room", "synth", "-o", str(tmp_path / "room"), "--set", "num_views=1", "--set", "width=4",
                 "--set", "height=4", "--set", "max_steps=8"]) == 0
    assert torch.get_num_threads() == 1 and threads._REGISTERED is None


def test_the_program_registers_while_it_runs(tmp_path):
    code = ("import os, sys, shapegen.threads as t; from shapegen.cli import main; "
            "jobs = __import__('pathlib').Path(sys.argv[1]); t.jobs_folder = lambda: jobs; "
            "sys.argv = ['shapegen', 'room', 'synth', '-o', sys.argv[2], '--set', 'num_views=1', '--set', 'width=4', "
            "'--set', 'height=4', '--set', 'max_steps=8']; "
            "orig = t.share_cores; t.share_cores = lambda folder=None: print('jobs', t.running_jobs()) or orig(); main()")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SHAPEGEN_THREADS")}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "jobs"), str(tmp_path / "room")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "jobs 1" in out.stdout
    assert not any((tmp_path / "jobs").iterdir())  # removed at exit
