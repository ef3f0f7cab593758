#!/usr/bin/env python3
"""Checks that transform outputs agree on every line, streaming them in parallel.

    python3 benches/compare/check_agree.py A.ndjson B.ndjson [C.ndjson ...]

For each line number, every file must have a line; on it the ten indicator keys must
have the same presence and the same values (integers 0/1, compared with their JSON
type, so 1 and true differ), and `timestamp` must be the same integer. Prints the number
of lines compared; exits 1 at the first disagreement, naming the line, the field and
the values in both files.
"""
import json
import sys

INDICATORS = (
    "K_country", "UNK_country", "K_action", "B_action", "O_httpstatus",
    "B_httpstatus", "common_method", "uncommon_method", "K_source", "UNK_source",
)
MISSING = "<absent>"


def typed(v):
    """A value with its JSON type, so 1, 1.0, true and "1" are all different."""
    if v is MISSING:
        return MISSING
    return (type(v).__name__, v)


def show(v):
    return MISSING if v is MISSING else json.dumps(v)


def fields(rec):
    ts = rec.get("timestamp", MISSING)
    out = {"timestamp": typed(ts)}
    for k in INDICATORS:
        out[k] = typed(rec.get(k, MISSING))
    return out, ts


def fail(msg):
    print(f"check_agree: DISAGREE: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    paths = sys.argv[1:]
    if len(paths) < 2:
        sys.exit("usage: check_agree.py A.ndjson B.ndjson [C.ndjson ...]")
    files = [open(p, "rb") for p in paths]
    base_path = paths[0]
    n = 0
    while True:
        lines = [f.readline() for f in files]
        ended = [not line for line in lines]
        if all(ended):
            break
        n += 1
        if any(ended):
            have = [p for p, e in zip(paths, ended) if not e]
            gone = [p for p, e in zip(paths, ended) if e]
            fail(f"line {n}: {', '.join(gone)} ended but {', '.join(have)} did not")
        base_line = lines[0]
        try:
            base, base_ts = fields(json.loads(base_line))
        except (ValueError, AttributeError) as e:
            fail(f"line {n}: {base_path}: not a JSON object: {e}")
        if not (isinstance(base_ts, int) and not isinstance(base_ts, bool)):
            fail(f"line {n}: {base_path}: timestamp {show(base_ts)} is not an integer")
        for path, line in zip(paths[1:], lines[1:]):
            if line == base_line:  # byte-identical: nothing to compare
                continue
            try:
                other, _ = fields(json.loads(line))
            except (ValueError, AttributeError) as e:
                fail(f"line {n}: {path}: not a JSON object: {e}")
            if other != base:
                for k in base:
                    if other[k] != base[k]:
                        a = base[k] if base[k] is MISSING else base[k][1]
                        b = other[k] if other[k] is MISSING else other[k][1]
                        fail(f"line {n}: field {k}: {base_path} has {show(a)}, "
                             f"{path} has {show(b)}")
    print(n)


if __name__ == "__main__":
    main()
