#!/usr/bin/env python3
"""End-to-end latency of `waflog detect --follow` at one event rate.

Runs, for SECONDS of wall time,

    waflog generate --realtime --start now --rate RATE --inject ...  |
    waflog detect --follow --all --alerts --config CFG -

with CFG the six built-in detectors at INTERVAL-second intervals and a
DELAY-second window delay, and one webhook channel pointing at a receiver in this
process (127.0.0.1, a free port). `generate --realtime` writes each record when the
wall clock reaches its timestamp, so a record's event time is the time it arrives.
An interval [start, end) can close once the clock passes end + delay; what is
measured is the time beyond that:

    result latency        the time this script reads the interval's result line on
                          detect's stdout  - (data_end_time + delay)
    notification latency  the time the webhook receiver has read the POST body
                          - (period_end_ms + delay)

Results read after the generator has ended are left out (at end of input the open
intervals are flushed early). Prints one JSON line:
{"rate", "seconds", "events", "events_per_s", "results": {n, p50, p99, max, mean},
"notifications": {...}} with latencies in milliseconds; events are those of the
scored intervals (the request-count detector's records), events_per_s their rate.
"""

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time

DETECTORS = [
    ("action-anomaly-detector", "B_action", "sum"),
    ("country-anomaly-detector", "UNK_country", "sum"),
    ("httpstatus-anomaly-detector", "B_httpstatus", "sum"),
    ("method-anomaly-detector", "uncommon_method", "sum"),
    ("source-anomaly-detector", "UNK_source", "sum"),
    ("request-count-detector", "request_count", "count"),
]


def now_ms():
    return time.time() * 1000.0


def config(interval, delay, url):
    out = []
    for name, feature, aggregation in DETECTORS:
        field = "" if aggregation == "count" else f', field = "{feature}"'
        out.append(
            f'[[detectors]]\nname = "{name}"\ninterval = "{interval}s"\n'
            f'window_delay = "{delay}s"\n'
            f'features = [{{ name = "{feature}", aggregation = "{aggregation}"{field} }}]\n'
        )
    out.append(f'[[channels]]\nname = "bench-webhook"\ntype = "webhook"\nurl = "{url}"\n')
    return "\n".join(out)


def summary(values):
    if not values:
        return {"n": 0}
    values = sorted(values)

    def pct(p):
        # nearest rank
        k = max(0, min(len(values) - 1, int(round(p / 100.0 * len(values) + 0.5)) - 1))
        return round(values[k], 1)

    return {
        "n": len(values),
        "p50": pct(50),
        "p99": pct(99),
        "max": round(values[-1], 1),
        "mean": round(statistics.fmean(values), 1),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--waflog", required=True, help="the waflog binary")
    ap.add_argument("--rate", type=int, required=True, help="events per second")
    ap.add_argument("--seconds", type=int, default=120, help="wall seconds of traffic")
    ap.add_argument("--interval", type=int, default=2, help="detector interval, seconds")
    ap.add_argument("--delay", type=int, default=1, help="window delay, seconds")
    ap.add_argument("--work", required=True, help="a directory for the config and logs")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    notes = []
    lock = threading.Lock()

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            at = now_ms()
            with lock:
                notes.append((at, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    cfg = os.path.join(args.work, f"latency-{args.rate}.toml")
    with open(cfg, "w") as f:
        f.write(config(args.interval, args.delay, url))

    # Episodes every 20 s from 20 s on, cycling through the fields, 6 s each, so that
    # monitors open (and close) alerts throughout the run.
    kinds = ["country", "action", "httpStatus", "httpMethod", "httpSourceName", "flood"]
    injects = []
    for i, at in enumerate(range(20, args.seconds - 10, 20)):
        kind = kinds[i % len(kinds)]
        spec = f"{kind}:{at}s:6s" + (":8" if kind == "flood" else ":0.5")
        injects += ["--inject", spec]

    gen_log = open(os.path.join(args.work, f"generate-{args.rate}.log"), "w")
    det_log = open(os.path.join(args.work, f"detect-{args.rate}.log"), "w")
    gen = subprocess.Popen(
        [args.waflog, "-q", "generate", "--realtime", "--start", "now", "--seed",
         str(args.seed), "--rate", str(args.rate), "--duration", f"{args.seconds}s"]
        + injects,
        stdout=subprocess.PIPE,
        stderr=gen_log,
    )
    det = subprocess.Popen(
        [args.waflog, "-q", "detect", "--follow", "--all", "--alerts", "--config", cfg, "-"],
        stdin=gen.stdout,
        stdout=subprocess.PIPE,
        stderr=det_log,
    )
    gen.stdout.close()

    delay_ms = args.delay * 1000.0
    results = []
    gen_done = [None]

    def wait_gen():
        gen.wait()
        gen_done[0] = now_ms()

    threading.Thread(target=wait_gen, daemon=True).start()
    events = 0
    span = [float("inf"), float("-inf")]
    for line in det.stdout:
        at = now_ms()
        if gen_done[0] is not None:
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if "detector_id" in doc:
            results.append(at - (doc["data_end_time"] + delay_ms))
            if doc["detector_id"] == "request-count-detector":
                events += int(doc.get("records", 0))
                span[0] = min(span[0], doc["data_start_time"])
                span[1] = max(span[1], doc["data_end_time"])
    det.wait()
    server.shutdown()
    if gen.returncode != 0 or det.returncode != 0:
        sys.exit(f"generate exited {gen.returncode}, detect {det.returncode} "
                 f"(logs in {args.work})")

    with open(os.path.join(args.work, f"notifications-{args.rate}.ndjson"), "wb") as f:
        for _, body in notes:
            f.write(body.rstrip(b"\n") + b"\n")
    lat = []
    for at, body in notes:
        if gen_done[0] is not None and at > gen_done[0]:
            continue
        try:
            doc = json.loads(body)
        except ValueError:
            continue
        end = doc.get("period_end_ms")
        if isinstance(end, (int, float)):
            lat.append(at - (end + delay_ms))
    print(json.dumps({
        "rate": args.rate,
        "seconds": args.seconds,
        "events": events,
        "events_per_s": round(events * 1000.0 / (span[1] - span[0])) if events else 0,
        "results": summary(results),
        "notifications": summary(lat),
    }))


if __name__ == "__main__":
    main()
