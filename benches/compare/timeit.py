#!/usr/bin/env python3
"""Runs one command and reports its wall time and CPU time (user, sys) in seconds.

    python3 benches/compare/timeit.py [--stdout FILE] [--stderr FILE] -- CMD [ARG ...]

Prints `wall user sys` on one line of stdout. The command is started directly (no
shell; its stdout goes to FILE, or is discarded); the timer (time.perf_counter) starts just before the fork and stops after the
wait, and CPU time is the child's rusage. Exits with the command's exit status.
"""
import resource
import subprocess
import sys
import time


def main():
    args = sys.argv[1:]
    out = err = None
    while args and args[0] != "--":
        if args[0] == "--stdout" and len(args) > 1:
            out, args = args[1], args[2:]
        elif args[0] == "--stderr" and len(args) > 1:
            err, args = args[1], args[2:]
        else:
            sys.exit(f"timeit.py: unexpected argument {args[0]!r}")
    cmd = args[1:]
    if not cmd:
        sys.exit("usage: timeit.py [--stdout FILE] [--stderr FILE] -- CMD [ARG ...]")
    fout = open(out, "wb") if out else subprocess.DEVNULL
    ferr = open(err, "wb") if err else None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=fout, stderr=ferr)
    code = proc.wait()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user = after.ru_utime - before.ru_utime
    sys_ = after.ru_stime - before.ru_stime
    print(f"{wall:.6f} {user:.6f} {sys_:.6f}")
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
