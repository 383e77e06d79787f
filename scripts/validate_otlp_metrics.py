#!/usr/bin/env python3
"""Validate OTLP/JSON metric exports (ExportMetricsServiceRequest) against the official protobuf schema.

Metrics carry no trace or span ids, so protobuf's strict JSON parser applies as is (unknown fields, wrong
types and bad enum values are errors). Usage: validate_otlp_metrics.py FILE.json [...]  (exit 1 on any error)
"""
import sys
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

failed = False
for path in sys.argv[1:]:
    try:
        with open(path) as f:
            msg = json_format.Parse(f.read(), ExportMetricsServiceRequest(), ignore_unknown_fields=False)
        n = sum(len(sm.metrics) for rm in msg.resource_metrics for sm in rm.scope_metrics)
        if n == 0:
            raise ValueError("no metrics")
        print(f"OK {path}: {n} metrics")
    except Exception as e:  # noqa: BLE001 - report every failure the same way
        failed = True
        print(f"FAIL {path}: {e}")
sys.exit(1 if failed else 0)
