#!/usr/bin/env python3
"""ocsf-schema.py: the compiled OCSF class definitions waflog's tests validate against.

    python3 -m venv /tmp/ocsf && /tmp/ocsf/bin/pip install ocsf-lib==0.10.4
    /tmp/ocsf/bin/python -m ocsf.compile OCSF_SCHEMA_DIR --ignore-extension linux win > /tmp/ocsf.json
    python3 scripts/ocsf-schema.py /tmp/ocsf.json > fixtures/ocsf/ocsf-1.1.0-waflog.json

OCSF_SCHEMA_DIR is the OCSF schema source at v1.1.0 (ocsf/ocsf-schema, Apache-2.0).
Keeps the classes waflog emits (HTTP Activity 4002, Detection Finding 2004), every
object they reach, and the primitive types; per attribute only what validation needs
(type, requirement, array, profile, enum values). Not run by the tests or CI: the
output is committed.
"""
import json
import sys

CLASSES = ["http_activity", "detection_finding"]


def attrs(table):
    out = {}
    for name, a in sorted(table.items()):
        entry = {"type": a["type"], "requirement": a.get("requirement") or "optional"}
        if a.get("is_array"):
            entry["is_array"] = True
        if a.get("profile"):
            entry["profile"] = a["profile"]
        if a.get("enum"):
            entry["enum"] = sorted(a["enum"], key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
        out[name] = entry
    return out


def main(path):
    schema = json.load(open(path))
    objects, todo = {}, []
    classes = {}
    for c in CLASSES:
        cls = schema["classes"][c]
        classes[c] = {"uid": cls["uid"], "attributes": attrs(cls["attributes"])}
        todo += [a["type"] for a in cls["attributes"].values()]
    while todo:
        t = todo.pop()
        if t in objects or t not in schema["objects"]:
            continue
        obj = schema["objects"][t]
        objects[t] = {"attributes": attrs(obj["attributes"])}
        todo += [a["type"] for a in obj["attributes"].values()]
    types = {n: t.get("type") or n for n, t in schema["types"].items()}
    out = {"version": schema["version"], "types": types, "classes": classes, "objects": dict(sorted(objects.items()))}
    json.dump(out, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
