#!/usr/bin/env python3
"""fault_proxy.py: an HTTP/1.1 forwarding proxy that injects AWS-style faults.

Test tooling for waflog's integration tests: put it in front of a real local
server (moto_server or kinesalite, see scripts/local-aws.sh) and point the AWS
SDK's endpoint at the proxy. Standard library only; runs with any python3 >= 3.8.

    python3 scripts/fault_proxy.py --target http://127.0.0.1:PORT --listen-port 0 \\
        [--put-records-fail-every N] [--put-records-fail-share F] \\
        [--get-records-throttle-every N] [--status-5xx-every N] [--seed S] [-v]

On start it prints exactly one line `LISTENING <port>` on stdout (flushed); it
binds 127.0.0.1 only. Every request (method, path, query, headers, body) is
forwarded to the target with Host rewritten to the target's host:port (moto and
kinesalite do not check SigV4 signatures, so the rewrite is harmless), and the
response (status, headers minus hop-by-hop ones, body; Content-Length
recomputed) is returned. (A virtual-hosted S3 Host `bucket.localhost:PORT`
keeps its name and only gets the target's port.) A request body sent with Transfer-Encoding: chunked
is de-chunked and forwarded with a Content-Length; `Expect: 100-continue` is
answered by the proxy itself.

Faults (deterministic: counters per kind, and random.Random(seed) to choose
which records of a PutRecords call fail):

  --status-5xx-every N   every Nth request of any kind (the first check) gets a
      503 without being forwarded: Kinesis requests (X-Amz-Target:
      Kinesis_20131202.*) get {"__type":"ServiceUnavailable","message":"injected"},
      others an S3-style <Error><Code>SlowDown</Code>...</Error>.
  --get-records-throttle-every N   every Nth GetRecords call gets HTTP 400
      ProvisionedThroughputExceededException without being forwarded.
  --put-records-fail-every N   every Nth PutRecords call has a share F
      (--put-records-fail-share, default 0.3, at least one record) of its
      records fail with ProvisionedThroughputExceededException. The records to
      fail are REMOVED from the request before it is forwarded, and failure
      entries are spliced into the server's response at their original
      positions, with FailedRecordCount set accordingly. So the server never
      stores a failed record: a client that resends exactly the failed entries
      creates no duplicates, like real Kinesis. (If every record is to fail,
      nothing is forwarded.) A call whose upstream response is not a 200 is
      returned unchanged and not counted as injected.
  --error-every N   every Nth request gets --error-status (default 400) with
      the error code --error-code (default InvalidSignatureException), as a
      Kinesis JSON error or an S3 XML error, without being forwarded.
  --hang-every N   every Nth request is read and never answered: the
      connection stays open and silent (a server that accepts and hangs).
  --only-ops A,B   the faults above (all kinds) apply only to these operations:
      Kinesis ones by name (PutRecords, GetRecords, ListShards, ...), S3 ones as
      GetObject, ListObjectsV2, PutObject, UploadPart, CreateMultipartUpload,
      CompleteMultipartUpload, HeadObject, Other; other requests pass through.
  --fault-skip N   the first N requests that could be faulted pass through
      (faults start after a good beginning).
  --fault-burst N  only the N requests after those skipped can be faulted; the
      rest pass through again (an episode of trouble that ends; 0: no end).
  Counters count the calls that reach each check: a request answered with an
  injected 503 does not count as a GetRecords/PutRecords call.

Kinesis protocol: the AWS SDK for Rust (aws-sdk-kinesis 1.x) speaks JSON 1.1
(Content-Type application/x-amz-json-1.1). Some SDKs (Java, kinesalite's
clients) use CBOR (application/x-amz-cbor-1.1): for CBOR requests PutRecords
partial failures are NOT injected (a warning goes to stderr once), whole-request
faults still are, with CBOR-encoded error bodies.

GET /__fault_stats (on the proxy) returns the counters as JSON. SIGTERM and
SIGINT stop the proxy cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import random
import signal
import sys
import threading
import urllib.parse
import uuid

KINESIS_PREFIX = "Kinesis_20131202."
JSON_CT = "application/x-amz-json-1.1"
CBOR_CT = "application/x-amz-cbor-1.1"

# Hop-by-hop headers (RFC 9110 7.6.1) plus the ones the proxy recomputes.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-length",
    "host",
}

STATS_PATH = "/__fault_stats"


def log(msg: str) -> None:
    print(f"fault_proxy: {msg}", file=sys.stderr, flush=True)


def cbor_encode_str_map(data: dict[str, str]) -> bytes:
    """Minimal CBOR encoding of a map of text strings to text strings."""

    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([(major << 5) | n])
        if n < 0x100:
            return bytes([(major << 5) | 24, n])
        if n < 0x10000:
            return bytes([(major << 5) | 25]) + n.to_bytes(2, "big")
        return bytes([(major << 5) | 26]) + n.to_bytes(4, "big")

    out = bytearray(head(5, len(data)))
    for key, value in data.items():
        for text in (key, value):
            raw = text.encode("utf-8")
            out += head(3, len(raw)) + raw
    return bytes(out)


class Faults:
    """Fault configuration, counters and stats; all access under one lock."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.put_every = args.put_records_fail_every
        self.put_share = args.put_records_fail_share
        self.get_every = args.get_records_throttle_every
        self.every_5xx = args.status_5xx_every
        self.error_every = args.error_every
        self.error_status = args.error_status
        self.error_code = args.error_code
        self.hang_every = args.hang_every
        self.only_ops = set(filter(None, (args.only_ops or "").split(","))) or None
        self.fault_skip = args.fault_skip
        self.fault_burst = args.fault_burst
        self.eligible = 0
        self.stop_event = threading.Event()
        self.rng = random.Random(args.seed)
        self.lock = threading.Lock()
        self.requests = 0
        self.put_records_calls = 0
        self.get_records_calls = 0
        self.stats = {
            "requests": 0,
            "put_records_calls": 0,
            "get_records_calls": 0,
            "put_records_partial_failures": 0,
            "put_records_failed_records": 0,
            "get_records_throttles": 0,
            "status_5xx": 0,
            "cbor_requests": 0,
            "upstream_errors": 0,
            "errors_injected": 0,
            "hangs": 0,
        }
        self.cbor_warned = False
        self.logged_kinesis_ct = False

    def snapshot(self) -> dict:
        with self.lock:
            return dict(self.stats)

    def bump(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.stats[key] += n

    def eligible_request(self, op: str) -> bool:
        """Counts a request; true when faults may apply to it (--only-ops,
        --fault-skip)."""
        with self.lock:
            if self.only_ops is not None and op not in self.only_ops:
                return False
            self.eligible += 1
            if self.eligible <= self.fault_skip:
                return False
            return not self.fault_burst or self.eligible <= self.fault_skip + self.fault_burst

    def take_every(self, key: str, every: int) -> bool:
        """Counts a faultable request for `key`; true on every `every`th."""
        with self.lock:
            self.stats[key + "_seen"] = self.stats.get(key + "_seen", 0) + 1
            return bool(every) and self.stats[key + "_seen"] % every == 0

    def take_5xx(self) -> bool:
        with self.lock:
            self.stats["requests"] += 1
            return bool(self.every_5xx) and self.stats["requests"] % self.every_5xx == 0

    def take_get_throttle(self) -> bool:
        with self.lock:
            self.stats["get_records_calls"] += 1
            n = self.stats["get_records_calls"]
            return bool(self.get_every) and n % self.get_every == 0

    def choose_put_failures(self, n_records: int) -> list[int]:
        """Counts a PutRecords call; returns the sorted indices to fail (maybe none)."""
        with self.lock:
            self.stats["put_records_calls"] += 1
            calls = self.stats["put_records_calls"]
            if not self.put_every or calls % self.put_every != 0 or n_records == 0:
                return []
            k = min(n_records, max(1, round(self.put_share * n_records)))
            return sorted(self.rng.sample(range(n_records), k))


def s3_operation(method: str, path: str) -> str:
    """The S3 operation of a request (path-style addressing), roughly."""
    parts = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    segments = [s for s in parts.path.split("/") if s]
    has_key = len(segments) >= 2
    if method == "GET" and not has_key and "list-type" in query:
        return "ListObjectsV2"
    if method == "GET" and has_key:
        return "GetObject"
    if method == "HEAD" and has_key:
        return "HeadObject"
    if method == "PUT" and has_key:
        return "UploadPart" if "partNumber" in query else "PutObject"
    if method == "POST" and has_key:
        return "CreateMultipartUpload" if "uploads" in query else "CompleteMultipartUpload"
    return "Other"


class ProxyServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, target: urllib.parse.SplitResult, faults: Faults, verbose: bool):
        super().__init__(addr, handler)
        self.target = target
        self.faults = faults
        self.verbose = verbose


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ProxyServer

    # -- plumbing ---------------------------------------------------------

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib name)
        if self.server.verbose:
            log(f"{self.address_string()} {format % args}")

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Trailer section, up to the empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after the chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status: int, headers: list[tuple[str, str]], body: bytes, reason: str | None = None) -> None:
        self.log_request(status, len(body))
        self.send_response_only(status, reason)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if self.command == "HEAD" or status in (204, 304) or 100 <= status < 200:
            # No body: keep the upstream's Content-Length for HEAD.
            if self.command == "HEAD":
                for name, value in headers:
                    if name.lower() == "content-length":
                        self.send_header("Content-Length", value)
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_error_doc(self, status: int, kinesis: bool, cbor: bool, error_type: str, message: str) -> None:
        req_id = str(uuid.uuid4())
        if kinesis:
            doc = {"__type": error_type, "message": message}
            if cbor:
                body, ctype = cbor_encode_str_map(doc), CBOR_CT
            else:
                body, ctype = json.dumps(doc).encode(), JSON_CT
            headers = [
                ("Content-Type", ctype),
                ("x-amzn-ErrorType", error_type),
                ("x-amzn-RequestId", req_id),
            ]
        else:
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>\n'
                f"<Error><Code>{error_type}</Code><Message>{message}</Message>"
                f"<RequestId>{req_id}</RequestId></Error>"
            ).encode()
            headers = [("Content-Type", "application/xml"), ("x-amz-request-id", req_id)]
        self.send(status, headers, body)

    def upstream_host(self) -> str:
        """Host header for the upstream: the target's host:port, except that a
        virtual-hosted S3 name (`bucket.localhost:PROXYPORT`) keeps its name
        and only gets the target's port, so moto still sees the bucket."""
        target = self.server.target
        incoming = urllib.parse.urlsplit("//" + (self.headers.get("Host") or ""))
        try:
            name = incoming.hostname or ""
        except ValueError:
            name = ""
        if name.endswith(".localhost"):
            return f"{name}:{target.port or 80}"
        return target.netloc

    def forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        target = self.server.target
        conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=120)
        try:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self.upstream_host())
            for name, value in self.headers.items():
                if name.lower() not in HOP_BY_HOP:
                    conn.putheader(name, value)
            if body or self.command in ("POST", "PUT", "PATCH") or "Content-Length" in self.headers:
                conn.putheader("Content-Length", str(len(body)))
            conn.putheader("Connection", "close")
            conn.endheaders(body if body else None)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.reason, resp.getheaders(), data
        finally:
            conn.close()

    # -- request handling --------------------------------------------------

    def handle_any(self) -> None:
        if self.command == "GET" and self.path == STATS_PATH:
            body = json.dumps(self.server.faults.snapshot(), sort_keys=True).encode()
            self.send(200, [("Content-Type", "application/json")], body)
            return

        faults = self.server.faults
        body = self.read_body()
        amz_target = self.headers.get("X-Amz-Target", "")
        kinesis = amz_target.startswith(KINESIS_PREFIX)
        op = amz_target[len(KINESIS_PREFIX):] if kinesis else ""
        ctype = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        cbor = kinesis and ctype == CBOR_CT
        if kinesis:
            if not faults.logged_kinesis_ct:
                faults.logged_kinesis_ct = True
                log(f"first Kinesis request: {op}, Content-Type {ctype or '(none)'}")
            if cbor:
                faults.bump("cbor_requests")

        if not faults.eligible_request(op or s3_operation(self.command, self.path)):
            self.relay(body)
            return

        if faults.take_every("hang", faults.hang_every):
            faults.bump("hangs")
            # Never answer: hold the connection open until the proxy stops.
            faults.stop_event.wait()
            self.close_connection = True
            return

        if faults.take_every("error", faults.error_every):
            faults.bump("errors_injected")
            self.send_error_doc(faults.error_status, kinesis, cbor, faults.error_code, "injected")
            return

        if faults.take_5xx():
            faults.bump("status_5xx")
            if kinesis:
                self.send_error_doc(503, True, cbor, "ServiceUnavailable", "injected")
            else:
                self.send_error_doc(503, False, False, "SlowDown", "injected")
            return

        if op == "GetRecords" and faults.take_get_throttle():
            faults.bump("get_records_throttles")
            self.send_error_doc(400, True, cbor, "ProvisionedThroughputExceededException", "Rate exceeded for shard")
            return

        if op == "PutRecords":
            if cbor:
                faults.bump("put_records_calls")
                if not faults.cbor_warned:
                    faults.cbor_warned = True
                    log("warning: CBOR Kinesis requests: PutRecords partial failures are not injected")
            else:
                self.put_records(body)
                return

        self.relay(body)

    def relay(self, body: bytes) -> None:
        try:
            status, reason, headers, data = self.forward(body)
        except OSError as err:
            self.server.faults.bump("upstream_errors")
            log(f"upstream error for {self.command} {self.path}: {err}")
            self.send(502, [("Content-Type", "text/plain")], f"fault_proxy: upstream error: {err}\n".encode())
            return
        self.send(status, headers, data, reason)

    def put_records(self, body: bytes) -> None:
        faults = self.server.faults
        try:
            request = json.loads(body)
            records = request["Records"]
            assert isinstance(records, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            faults.bump("put_records_calls")
            self.relay(body)  # let the server produce its validation error
            return
        fail = faults.choose_put_failures(len(records))
        if not fail:
            self.relay(body)
            return

        stream = request.get("StreamName") or str(request.get("StreamARN", "")).rsplit("/", 1)[-1] or "unknown"
        failure = {
            "ErrorCode": "ProvisionedThroughputExceededException",
            "ErrorMessage": f"Rate exceeded for shard shardId-000000000000 in stream {stream} "
            "under account 123456789012.",
        }
        fail_set = set(fail)
        kept = [r for i, r in enumerate(records) if i not in fail_set]

        if kept:
            request["Records"] = kept
            try:
                status, reason, headers, data = self.forward(json.dumps(request).encode())
            except OSError as err:
                faults.bump("upstream_errors")
                log(f"upstream error for PutRecords: {err}")
                self.send(502, [("Content-Type", "text/plain")], f"fault_proxy: upstream error: {err}\n".encode())
                return
            if status != 200:
                self.send(status, headers, data, reason)
                return
            try:
                response = json.loads(data)
                upstream_entries = list(response["Records"])
                assert len(upstream_entries) == len(kept)
            except (ValueError, KeyError, TypeError, AssertionError):
                log("warning: unexpected PutRecords response; returned unchanged")
                self.send(status, headers, data, reason)
                return
        else:
            # Every record fails: nothing to forward (PutRecords needs >= 1 record).
            reason = "OK"
            headers = [("Content-Type", JSON_CT), ("x-amzn-RequestId", str(uuid.uuid4()))]
            response, upstream_entries = {}, []

        entries, upstream = [], iter(upstream_entries)
        for i in range(len(records)):
            entries.append(dict(failure) if i in fail_set else next(upstream))
        response["Records"] = entries
        response["FailedRecordCount"] = sum(1 for e in entries if "ErrorCode" in e)
        faults.bump("put_records_partial_failures")
        faults.bump("put_records_failed_records", len(fail))
        self.send(200, headers, json.dumps(response).encode(), reason)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="HTTP/1.1 forwarding proxy that injects AWS-style faults.")
    p.add_argument("--target", required=True, help="upstream base URL, e.g. http://127.0.0.1:4566")
    p.add_argument("--listen-port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--put-records-fail-every", type=int, default=0, metavar="N")
    p.add_argument("--put-records-fail-share", type=float, default=0.3, metavar="F")
    p.add_argument("--get-records-throttle-every", type=int, default=0, metavar="N")
    p.add_argument("--status-5xx-every", type=int, default=0, metavar="N")
    p.add_argument("--error-every", type=int, default=0, metavar="N")
    p.add_argument("--error-status", type=int, default=400, metavar="STATUS")
    p.add_argument("--error-code", default="InvalidSignatureException", metavar="CODE")
    p.add_argument("--hang-every", type=int, default=0, metavar="N")
    p.add_argument("--only-ops", default="", metavar="A,B")
    p.add_argument("--fault-skip", type=int, default=0, metavar="N")
    p.add_argument("--fault-burst", type=int, default=0, metavar="N")
    p.add_argument("--seed", type=int, default=0, metavar="S")
    p.add_argument("-v", "--verbose", action="store_true", help="log every request on stderr")
    args = p.parse_args(argv)
    target = urllib.parse.urlsplit(args.target)
    if target.scheme != "http" or not target.hostname:
        p.error("--target must be an http:// URL with a host")
    if not 0.0 <= args.put_records_fail_share <= 1.0:
        p.error("--put-records-fail-share must be within [0, 1]")
    for name in ("put_records_fail_every", "get_records_throttle_every", "status_5xx_every",
                 "error_every", "hang_every", "fault_skip", "fault_burst"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must be >= 0")
    args.target_url = target
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server = ProxyServer(("127.0.0.1", args.listen_port), Handler, args.target_url, Faults(args), args.verbose)

    def on_signal(signum, _frame):
        server.faults.stop_event.set()
        # shutdown() waits for serve_forever() to return: call it off this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    print(f"LISTENING {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
