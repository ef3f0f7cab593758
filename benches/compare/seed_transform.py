#!/usr/bin/env python3
"""What the seed system's Firehose transform Lambda does to each record, as a plain
file-to-file program: json.loads, compute the ten 0/1 indicators, json.dumps, one line
out per line in. Standard library only; used by benches/compare.sh as the baseline.

    python3 benches/compare/seed_transform.py [--orjson] IN.ndjson OUT.ndjson

With --orjson the same transform parses and writes with orjson (PyPI), the fastest
JSON library for Python: the peer a Python team would reach for first.

Vocabularies are the seed defaults; the rules match `waflog transform` (see
waflog-core/src/features.rs).
"""
import json
import sys

KNOWN_COUNTRIES = {"US", "UK", "IN"}
KNOWN_ACTIONS = {"ALLOW", "CAPTCHA", "CHALLENGE", "COUNT"}
BAD_ACTIONS = {"BLOCK"}
COMMON_METHODS = {"GET", "HEAD", "POST"}  # case-sensitive
KNOWN_SOURCES = {"ALB", "APIGW", "APPSYNC", "CF"}


def upper(v):
    return v.upper() if isinstance(v, str) else ""


def status_flags(rec):
    """(O_httpstatus, B_httpstatus), or None when the record has no status."""
    code = rec.get("httpStatus")
    if code is None:
        code = rec.get("responseCodeSent")
    if code is None:
        return None
    try:
        code = int(code)
    except (TypeError, ValueError):
        return 0, 0
    if not 100 <= code <= 999:
        return 0, 0
    cls = code // 100
    if cls <= 4:
        return 1, 0
    if cls == 5:
        return 0, 1
    return 0, 0


def transform(rec):
    ts = rec["timestamp"]
    if ts < 1e11:  # the seed simulator wrote float epoch seconds
        ts = round(ts * 1000)
    rec["timestamp"] = int(ts)

    req = rec.get("httpRequest") or {}
    known_country = int(upper(req.get("country")) in KNOWN_COUNTRIES)
    action = upper(rec.get("action"))
    common = int(req.get("httpMethod") in COMMON_METHODS)
    known_source = int(upper(rec.get("httpSourceName")) in KNOWN_SOURCES)

    rec["K_country"] = known_country
    rec["UNK_country"] = 1 - known_country
    rec["K_action"] = int(action in KNOWN_ACTIONS)
    rec["B_action"] = int(action in BAD_ACTIONS)
    status = status_flags(rec)
    if status is not None:
        rec["O_httpstatus"], rec["B_httpstatus"] = status
    rec["common_method"] = common
    rec["uncommon_method"] = 1 - common
    rec["K_source"] = known_source
    rec["UNK_source"] = 1 - known_source
    return rec


def main_orjson(src_path, dst_path):
    import orjson  # noqa: PLC0415 (only this variant needs it)

    loads, dumps = orjson.loads, orjson.dumps
    with open(src_path, "rb") as src, open(dst_path, "wb", buffering=1 << 20) as dst:
        for line in src:
            if line.strip():
                dst.write(dumps(transform(loads(line))))
                dst.write(b"\n")


def main():
    args = sys.argv[1:]
    if args[:1] == ["--orjson"] and len(args) == 3:
        main_orjson(args[1], args[2])
        return
    if len(args) != 2:
        sys.exit("usage: seed_transform.py [--orjson] IN.ndjson OUT.ndjson")
    loads, dumps = json.loads, json.dumps
    with open(sys.argv[1], "rb") as src, \
            open(sys.argv[2], "w", encoding="utf-8", buffering=1 << 20) as dst:
        for line in src:
            if line.strip():
                dst.write(dumps(transform(loads(line)), separators=(",", ":")))
                dst.write("\n")


if __name__ == "__main__":
    main()
