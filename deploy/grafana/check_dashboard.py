#!/usr/bin/env python3
"""Checks deploy/grafana/sync-trace.json: valid JSON, the expected
variables, and that every query uses only sync-trace's metric names and
label names. Standard library only. Prints one line per problem; exit 1 on any.
Usage: check_dashboard.py [DASHBOARD.json]
"""
import json
import os
import re
import sys

# Exported series names (counters with _total, histograms with their suffixes).
HISTOGRAMS = ["sync_trace_populate_to_sync_seconds", "sync_trace_sync_duration_seconds"]
METRICS = {
    "sync_trace_populations_total", "sync_trace_syncs_total",
    "sync_trace_unsynced_populations_total", "sync_trace_pgd_mismatches_total",
    "sync_trace_pgds_verified_total", "sync_trace_pgd_list_length",
    "sync_trace_events_lost_total", "sync_trace_probe_attached", "sync_trace_build_info",
    "up",
} | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
LABELS = {"level", "region", "source", "function", "caller", "target", "method",
          "version", "kernel", "paging", "le", "instance", "job", "node"}
# PromQL functions, aggregations and keywords that may appear as bare words.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
    "deriv", "histogram_quantile", "abs", "absent", "absent_over_time", "ceil", "floor", "round",
    "clamp", "clamp_min", "clamp_max", "changes", "resets", "label_replace", "label_join",
    "sort", "sort_desc", "time", "timestamp", "vector", "scalar", "sum_over_time",
    "avg_over_time", "max_over_time", "min_over_time", "count_over_time", "last_over_time",
    "ln", "log2", "log10", "exp", "sqrt", "inf", "nan",
}
VAR = re.compile(r"\$(?:\{[A-Za-z_]\w*(?::\w+)?\}|__\w+|[A-Za-z_]\w*)")


def words(expr):
    """Bare identifiers of a PromQL expression, with label matchers, label
    lists, strings and ranges removed; and the label names it uses."""
    labels = set()
    e = VAR.sub("1", re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr))
    for body in re.findall(r"\{([^}]*)\}", e):
        labels |= set(re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", body))
    e = re.sub(r"\{[^}]*\}", " ", e)
    for body in re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", e):
        labels |= {w.strip() for w in body.split(",") if w.strip()}
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r" \1 ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b", " ", e)
    return set(re.findall(r"[A-Za-z_:][\w:]*", e)), labels


def panels_of(dash):
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", [])


def check(path):
    errors = []
    try:
        with open(path) as f:
            dash = json.load(f)
    except (OSError, ValueError) as e:
        return [f"not valid JSON: {e}"]
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        errors.append(f"schemaVersion {dash.get('schemaVersion')!r} (want >= 36)")
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        errors.append("no 'datasource' variable of type datasource for prometheus")
    if "instance" not in variables:
        errors.append("no 'instance' variable")
    queries = []
    for name, v in variables.items():
        q = v.get("query")
        if v.get("type") == "query":
            queries.append((f"variable {name}", q.get("query") if isinstance(q, dict) else q))
    ids = set()
    kinds = set()
    for p in panels_of(dash):
        title = p.get("title", "?")
        if p.get("id") in ids:
            errors.append(f"panel {title!r}: duplicate id {p.get('id')}")
        ids.add(p.get("id"))
        if "gridPos" not in p:
            errors.append(f"panel {title!r}: no gridPos")
        if p.get("type") == "row":
            continue
        kinds.add(p.get("type"))
        if (p.get("datasource") or {}).get("uid") != "${datasource}":
            errors.append(f"panel {title!r}: datasource is not ${{datasource}}")
        if not p.get("targets"):
            errors.append(f"panel {title!r}: no queries")
        for t in p.get("targets", []):
            if (t.get("datasource") or {}).get("uid") not in (None, "${datasource}"):
                errors.append(f"panel {title!r}: query {t.get('refId')} has another datasource")
            if not t.get("expr"):
                errors.append(f"panel {title!r}: query {t.get('refId')} has no expr")
                continue
            if "$instance" not in t["expr"]:
                errors.append(f"panel {title!r}: query {t.get('refId')} ignores $instance")
            queries.append((f"panel {title!r} {t.get('refId')}", t["expr"]))
        if p.get("type") == "heatmap":
            t = p["targets"][0]
            if t.get("format") != "heatmap" or "_bucket" not in t.get("expr", ""):
                errors.append(f"panel {title!r}: heatmap query must use a _bucket series with format heatmap")
            if p.get("options", {}).get("calculate") is not False:
                errors.append(f"panel {title!r}: heatmap must use calculate: false (buckets from Prometheus)")
    for where, expr in queries:
        if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
            errors.append(f"{where}: unbalanced brackets in {expr!r}")
        extra = set()
        lv = re.fullmatch(r"\s*label_values\((.*),\s*([A-Za-z_]\w*)\s*\)\s*", expr)
        if lv:  # a variable query: label_values(selector, label)
            expr, extra = lv.group(1), {lv.group(2)}
        found, labels = words(expr)
        labels |= extra
        for w in sorted(found - PROMQL_WORDS - METRICS):
            errors.append(f"{where}: unknown metric or word {w!r}")
        for w in sorted(labels - LABELS):
            errors.append(f"{where}: unknown label {w!r}")
        if not found & METRICS:
            errors.append(f"{where}: uses no sync-trace metric")
    for want in ("heatmap", "stat", "timeseries"):
        if want not in kinds:
            errors.append(f"no {want} panel")
    return errors


def main(argv):
    path = argv[0] if argv else os.path.join(os.path.dirname(os.path.abspath(__file__)), "sync-trace.json")
    errors = check(path)
    for e in errors:
        print(e)
    if not errors:
        n = sum(1 for p in panels_of(json.load(open(path))) if p.get("type") != "row")
        print(f"{os.path.basename(path)}: {n} panels, every query uses only sync-trace metrics")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
