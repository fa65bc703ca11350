"""Bad input for every ``shapegen`` command: one ``error:`` line, exit status 2, nothing left behind.

The case matrix (every command x empty, truncated, random, non-finite, out-of-range, tiny or
huge inputs, a folder for a file, a missing path, bad config values, a read-only folder and a
full disk) lives in :mod:`shapegen.testing.fuzz`, shared with ``scripts/fuzz_cli.py``, which runs
a larger version of it. Cases run in-process for speed; a few run the real console command.
"""

from __future__ import annotations

import pytest

from shapegen.cli import main
from shapegen.commands import COMMANDS
from shapegen.testing import fuzz

CASES = fuzz.plan()
SUBPROCESS_CASES = (
    "info / non-UTF-8 file name",  # the name is printed on a real, encoding stderr
    "fuse / wrong-typed config value",  # argparse's own error, as the console prints it
    "convert / full disk",
    "msdf encode / full disk",  # reaches warp (signed distance), whose native code writes to descriptor 2
    "texture / full disk",  # reaches warp through the rasteriser, and Lightning
    "sketch-to-3d / 10000x10000 image",  # Pillow's decompression-bomb warning would reach the console
)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Valid samples and the tmpfs mounts, shared by every case; unmounted at the end."""
    ws = fuzz.Workspace(tmp_path_factory.mktemp("fuzz"))
    yield ws
    ws.close()


def _prepare(workspace: fuzz.Workspace, case: fuzz.Case) -> fuzz.Prepared:
    try:
        return workspace.prepare(case)
    except fuzz.Unsupported as exc:
        pytest.skip(str(exc))


def test_every_command_has_a_row():
    fuzz.check_table()
    assert {c.verb.command for c in CASES} == set(COMMANDS)
    for verb in fuzz.VERBS:  # the config cases reach every command, with or without a file input
        assert {c.bad for c in CASES if c.verb is verb} >= set(fuzz.CONFIG_CASES)


def test_a_new_command_without_a_row_fails_the_table():
    with pytest.raises(AssertionError, match="new-verb"):
        fuzz.check_table([*COMMANDS, "new-verb"])


def test_visible_lines_render_carriage_returns_like_a_terminal():
    bar_then_error = "\rwork:   0%|   | 0/4\r                   \rerror: disk full\n"
    assert fuzz.visible_lines(bar_then_error) == ["error: disk full"]
    assert fuzz.visible_lines("\rwork: 100%|###| 4/4\nerror: x\n") == ["work: 100%|###| 4/4", "error: x"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_error_line(case, workspace, capsys):
    prepared = _prepare(workspace, case)
    before = fuzz.listing(prepared.watch)
    try:
        code = main(prepared.argv)  # an exception escaping main fails the test as it is
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    _, err = capsys.readouterr()
    after = fuzz.listing(prepared.watch)
    assert fuzz.problems(case, code, err, before, after) == [], repr(prepared.argv)  # repr: file names may not be UTF-8


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_input_on_the_real_console(case_id, workspace):
    (case,) = [c for c in CASES if c.id == case_id]
    prepared = _prepare(workspace, case)
    before = fuzz.listing(prepared.watch)
    code, _, err = fuzz.run_subprocess(prepared.argv)
    after = fuzz.listing(prepared.watch)
    assert fuzz.problems(case, code, err, before, after) == [], err
