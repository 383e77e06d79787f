#!/usr/bin/env python3
"""Check OTLP/HTTP JSON bodies against the official protobuf schema (opentelemetry-proto), as a collector would.

Usage: validate_otlp.py traces|metrics FILE.json [FILE.json ...]    exit 0 when every file passes, 1 otherwise.

OTLP/JSON is protobuf's JSON mapping with one exception (OTLP specification, "JSON Protobuf Encoding"): trace and
span ids are lowercase hex strings, not base64. Protobuf's own JSON parser expects base64, and a hex id is also
valid base64 that decodes to bytes of the wrong length, so parsing a body as it is would pass wrong ids silently.
This script therefore:
  1. checks every traceId / spanId / parentSpanId (in spans, span links and exemplars) is hex of the right length
     and not all zeros (parentSpanId may be empty), then re-encodes it as base64 for the parser;
  2. parses the result strictly (unknown fields, wrong types, bad enum values are errors);
  3. checks what the schema alone cannot: a span ends no earlier than it starts, a parent id names a span of the
     same body or a remote parent (reported, not failed), data points carry a time, and the body is not empty.
Needs: pip install opentelemetry-proto protobuf (make test installs them).
"""
import base64
import json
import re
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

HEX_LENGTH = {"traceId": 32, "spanId": 16, "parentSpanId": 16}
LOWER_HEX = re.compile(r"\A[0-9a-f]*\Z")


def rewrite_ids(node, where, problems):
    """Returns `node` with hex ids turned into base64, appending what is wrong with them to `problems`."""
    if isinstance(node, list):
        return [rewrite_ids(item, f"{where}[{i}]", problems) for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    result = {}
    for key, value in node.items():
        here = f"{where}.{key}"
        if key not in HEX_LENGTH:
            result[key] = rewrite_ids(value, here, problems)
            continue
        result[key] = value
        if not isinstance(value, str):
            problems.append(f"{here}: an id must be a string of hex digits, found {type(value).__name__}")
        elif key == "parentSpanId" and value == "":
            pass
        elif len(value) != HEX_LENGTH[key] or not LOWER_HEX.match(value):
            problems.append(f"{here}: expected {HEX_LENGTH[key]} lowercase hex digits, found {value!r}"
                            " (OTLP/JSON ids are hex, never base64)")
        elif value.strip("0") == "":
            problems.append(f"{here}: an all-zero id is invalid")
        else:
            result[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
    return result


def check_traces(body, problems):
    request = json_format.Parse(json.dumps(body), ExportTraceServiceRequest(), ignore_unknown_fields=False)
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    if not spans:
        problems.append("no spans in the body")
    ids = {s.span_id for s in spans}
    notes = []
    for s in spans:
        if s.end_time_unix_nano < s.start_time_unix_nano:
            problems.append(f"span {s.name!r}: ends ({s.end_time_unix_nano}) before it starts ({s.start_time_unix_nano})")
        if s.start_time_unix_nano == 0:
            problems.append(f"span {s.name!r}: no start time")
        if s.parent_span_id and s.parent_span_id not in ids:
            notes.append(s.name)
    summary = f"{len(spans)} spans"
    if notes:
        summary += f", {len(notes)} with a parent outside this body"
    return summary


def check_metrics(body, problems):
    request = json_format.Parse(json.dumps(body), ExportMetricsServiceRequest(), ignore_unknown_fields=False)
    metrics = [m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
    if not metrics:
        problems.append("no metrics in the body")
    for m in metrics:
        kind = m.WhichOneof("data")
        if kind is None:
            problems.append(f"metric {m.name!r}: no data (gauge, sum, histogram, ...)")
            continue
        points = getattr(m, kind).data_points
        if not points:
            problems.append(f"metric {m.name!r}: no data points")
        for p in points:
            if p.time_unix_nano == 0:
                problems.append(f"metric {m.name!r}: a data point without timeUnixNano")
            if kind == "histogram" and len(p.bucket_counts) != len(p.explicit_bounds) + 1:
                problems.append(f"metric {m.name!r}: {len(p.bucket_counts)} bucket counts for "
                                f"{len(p.explicit_bounds)} bounds (needs one more count than bounds)")
    return f"{len(metrics)} metrics"


def main(argv):
    if len(argv) < 3 or argv[1] not in ("traces", "metrics"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    check = check_traces if argv[1] == "traces" else check_metrics
    failed = False
    for path in argv[2:]:
        problems = []
        try:
            with open(path, encoding="utf-8") as f:
                body = json.load(f)
            summary = check(rewrite_ids(body, "$", problems), problems)
        except Exception as error:  # noqa: BLE001 - every failure is reported the same way
            problems.append(f"{type(error).__name__}: {error}")
            summary = ""
        if problems:
            failed = True
            print(f"FAIL {path}:")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"OK {path}: {summary}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
