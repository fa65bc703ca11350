"""Fuzz every ``shapegen`` command with bad input; writes the ``cli-fuzz`` section of docs/benchmarks.md.

The matrix is :func:`shapegen.testing.fuzz.plan` with ``large=True`` (the one ``tests/commands/test_fuzz_cli.py``
runs, plus every mesh suffix the loaders accept, three truncation points per file, random bytes
and text under every suffix, bad meshes inside input folders, more sketch and scene defects).
Each case runs in-process through ``shapegen.cli.main``; the first ``--console`` cases of every
command and every output case also run as a real ``python -m shapegen.cli`` process. A case passes when the command
exits with status 2, prints exactly one ``error: ...`` line on stderr and no traceback, and leaves
its output folder as it was. The output cases mount tmpfs file systems, so run as root.

Run: ``python scripts/fuzz_cli.py [--console 2] [--verbs info,convert] [--no-write]``; exits 1 on
any failure.
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from shapegen.testing import bench as bl
from shapegen.testing import fuzz


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--console", type=int, default=2, help="cases per command also run as a real console process")
    ap.add_argument("--verbs", help="comma-separated command names to fuzz (default: all)")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing docs/benchmarks.md")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    # A kill (timeout, Ctrl-C) must still unmount the tmpfs file systems: leave through the with-blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    fuzz.check_table()
    cases = fuzz.plan(large=True)
    if args.verbs:
        keep = {v.strip() for v in args.verbs.split(",")}
        cases = [c for c in cases if c.verb.name in keep or c.verb.command in keep]
    tried: collections.Counter[str] = collections.Counter()
    console: collections.Counter[str] = collections.Counter()
    failed: list[tuple[str, str, str]] = []
    skipped: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, fuzz.Workspace(Path(tmp)) as ws:
        for case in cases:
            try:
                prepared = ws.prepare(case)
            except fuzz.Unsupported as exc:
                skipped.append((case.id, str(exc)))
                continue
            runs = [("in-process", fuzz.run_in_process)]
            # The output cases run deepest (up to the first write), so they all run on the console too.
            if console[case.verb.name] < args.console or case.bad in fuzz.OUTPUT_CASES:
                console[case.verb.name] += 1
                runs.append(("console", lambda a: (*fuzz.run_subprocess(a), None)))
            for how, run in runs:
                before = fuzz.listing(prepared.watch)
                code, _, err, error = run(prepared.argv)
                after = fuzz.listing(prepared.watch)
                found = fuzz.problems(case, code, err, before, after, error)
                tried[case.verb.name] += 1
                status = "FAIL" if found else "ok"
                print(f"{status:4s} {case.id} ({how}): {'; '.join(found) or fuzz.visible_lines(err)[0][:150]}", flush=True)
                if found:
                    failed.append((case.id, how, "; ".join(found)))
    seconds = time.perf_counter() - t0

    per_verb = collections.Counter(c.verb.name for c in cases)
    fails = collections.Counter(f[0].split(" / ")[0] for f in failed)
    rows = [[name, per_verb[name], console[name], tried[name], fails[name]] for name in per_verb]
    body = (
        f"1-min load average {load:.1f} at the start; {seconds:.0f} s in all. Every command of `shapegen` (sub-commands "
        "separately) against bad input: empty, truncated (at 5%, 50% and 95%) and random files under every suffix its "
        "loader accepts, non-UTF-8 file names, folders for files and files for folders, missing paths, meshes with NaN or "
        "infinite vertices, no faces or face indices out of range, 1x1 and 10000x10000 sketches, broken scenes, a "
        "wrongly typed and an unknown config value, a read-only output folder and a full disk (tmpfs mounts). A run "
        "passes when it exits with status 2, prints exactly one `error: ...` line on stderr (as a terminal shows it) "
        "and no traceback, and leaves its output folder unchanged. Each case runs in-process; the first "
        f"{args.console} cases of each command and every output case also run as a console process.\n\n"
        + bl.table(["command", "bad inputs", "of them also on the console", "runs", "failures"], rows)
        + f"\n\n{len(cases)} cases, {sum(tried.values())} runs, {len(failed)} failures"
        + (f", {len(skipped)} skipped ({skipped[0][1]})" if skipped else "")
        + "."
    )
    if failed:
        body += "\n\nFailures:\n\n" + "\n".join(f"- {cid} ({how}): {why}" for cid, how, why in failed)
    bl.write_section("cli-fuzz", "Bad input for every command (CLI fuzzing)", body, dry_run=args.no_write)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
