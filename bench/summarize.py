"""Turns the raw runs of bench/run into target/bench/results.json and a
markdown table on stdout: the median of the runs, their spread (min-max), and
ratios against the baselines measured in the same run.

Usage: python3 bench/summarize.py RAW_DIR RESULTS_JSON SMOKE(0|1)
"""

import glob
import json
import os
import platform
import statistics
import subprocess
import sys

raw, results_path, smoke = sys.argv[1], sys.argv[2], sys.argv[3] == "1"


def load(pattern):
    out = []
    for p in sorted(glob.glob(os.path.join(raw, pattern))):
        with open(p) as f:
            text = f.read().strip().splitlines()
        if text:
            out.append(json.loads(text[-1]))
    return out


def stat(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


def fmt(s, unit="", digits=2, scale=1.0):
    if s is None:
        return "n/a"
    m, lo, hi = (s["median"] * scale, s["min"] * scale, s["max"] * scale)
    if s["runs"] == 1:
        return f"{m:.{digits}f}{unit}"
    return f"{m:.{digits}f}{unit} ({lo:.{digits}f}-{hi:.{digits}f})"


def ratio(a, b):
    if a is None or b is None or not b["median"]:
        return None
    return a["median"] / b["median"]


res = {"smoke": smoke, "machine": {}, "fanout": {}, "idle": {}, "storm": None,
       "decode": None, "wasm": None}
try:
    cpu = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")]
    res["machine"] = {"cpu": cpu[0] if cpu else platform.processor(), "cores": os.cpu_count(),
                      "kernel": platform.release()}
except OSError:
    pass

stacks = ["floor", "hublink", "node", "python"]
for s in stacks:
    runs = load(f"fanout-{s}-*.json")
    if runs:
        res["fanout"][s] = {
            "runs": runs and len(runs),
            "cpu_us_per_delivery": stat([r["fixed"]["cpu_us_per_delivery"] for r in runs]),
            "p50_ms": stat([r["fixed"]["p50_ms"] for r in runs]),
            "p99_ms": stat([r["fixed"]["p99_ms"] for r in runs]),
            "fixed_deliveries_per_s": stat([r["fixed"]["deliveries_per_s"] for r in runs]),
            "max_deliveries_per_s": stat([r["max_deliveries_per_s"] for r in runs]),
            "max_cpu_us_per_delivery": stat(
                [r["max_step"]["cpu_us_per_delivery"] if r["max_step"] else None for r in runs]),
            "generator_share_at_max": stat(
                [r["max_step"]["generator_cpu_share"] if r["max_step"] else None for r in runs]),
            "subs": runs[0]["subs"],
            "raw": runs,
        }
    runs = load(f"idle-{s}-*.json")
    if runs:
        res["idle"][s] = {
            "bytes_per_conn": stat([r["bytes_per_conn"] for r in runs]),
            "conns": runs[0]["conns"],
            "heartbeats_answered": stat([r["heartbeats_answered"] for r in runs]),
            "raw": runs,
        }
runs = load("storm-hublink-*.json")
if runs:
    res["storm"] = {
        "conns": runs[0]["conns"],
        "cold_secs": stat([r["cold"]["all_subscribed_secs"] for r in runs]),
        "cold_peak_accepts_per_s": stat([r["cold"]["peak_accepts_per_s"] for r in runs]),
        "restart_secs": stat([r["restart"]["all_subscribed_secs"] for r in runs]),
        "restart_first_secs": stat([r["restart"]["first_connected_secs"] for r in runs]),
        "restart_peak_accepts_per_s": stat([r["restart"]["peak_accepts_per_s"] for r in runs]),
        "raw": runs,
    }
dec = {}
for b in ["message_frame_to_typed_struct", "message_frame_via_value", "serde_json_direct_baseline"]:
    p = os.path.join(raw, f"decode-{b}.json")
    if os.path.exists(p):
        e = json.load(open(p))["median"]
        dec[b] = {"ns": e["point_estimate"], "lo_ns": e["confidence_interval"]["lower_bound"],
                  "hi_ns": e["confidence_interval"]["upper_bound"]}
if dec:
    res["decode"] = dec
p = os.path.join(raw, "wasm.json")
if os.path.exists(p):
    res["wasm"] = json.load(open(p))
p = os.path.join(raw, "size.json")
res["size"] = json.load(open(p)) if os.path.exists(p) else None

fo, idle = res["fanout"], res["idle"]
rows = []
target = []


def row(figure, hub, node, py, ratio_text, tgt):
    rows.append(f"| {figure} | {hub} | {node} | {py} | {ratio_text} | {tgt} |")


def get(d, s, k):
    return d.get(s, {}).get(k)


if fo:
    subs = next(iter(fo.values()))["subs"]
    rate = next(iter(fo.values()))["raw"][0]["fixed"]["rate"]
    r = ratio(get(fo, "hublink", "cpu_us_per_delivery"), get(fo, "node", "cpu_us_per_delivery"))
    met = None if r is None else r <= 0.4
    row(f"fan-out CPU per delivery, µs ({subs} subs, {rate} msg/s)",
        fmt(get(fo, "hublink", "cpu_us_per_delivery")), fmt(get(fo, "node", "cpu_us_per_delivery")),
        fmt(get(fo, "python", "cpu_us_per_delivery")),
        "n/a" if r is None else f"{r:.2f} x Node", "<= 0.4 x Node: " + ("met" if met else "MISSED" if met is not None else "n/a"))
    res["fanout_cpu_ratio_vs_node"] = r
    for k, name in [("p50_ms", "p50"), ("p99_ms", "p99")]:
        row(f"fan-out {name} latency, ms ({rate} msg/s)", fmt(get(fo, "hublink", k)),
            fmt(get(fo, "node", k)), fmt(get(fo, "python", k)), "", "")
    mx = get(fo, "hublink", "max_deliveries_per_s")
    rr = ratio(mx, get(fo, "node", "max_deliveries_per_s"))
    row("highest fully delivered rate, deliveries/s (p99 < 100 ms)",
        fmt(mx, digits=0), fmt(get(fo, "node", "max_deliveries_per_s"), digits=0),
        fmt(get(fo, "python", "max_deliveries_per_s"), digits=0),
        "n/a" if rr is None else f"{rr:.2f} x Node",
        ">= 250,000: " + ("n/a" if mx is None else "met" if mx["median"] >= 250000 else "MISSED"))
    row("generator core busy at that rate", fmt(get(fo, "hublink", "generator_share_at_max"), scale=100, digits=0, unit="%"),
        fmt(get(fo, "node", "generator_share_at_max"), scale=100, digits=0, unit="%"),
        fmt(get(fo, "python", "generator_share_at_max"), scale=100, digits=0, unit="%"), "", "")
per_rate = []


def cpu_by_rate(s):
    """Per run: {rate: (server CPU µs, deliveries)}, the fixed-rate step included."""
    out = []
    for r in get(fo, s, "raw") or []:
        steps = {}
        for st in [r["fixed"]] + (r.get("steps") or []):
            if st and st.get("delivered"):
                steps.setdefault(st["rate"], (st["server_cpu_us"], st["delivered"]))
        out.append(steps)
    return out


if fo:
    by = {s: cpu_by_rate(s) for s in fo}
    # Rates every stack delivered in every run: the pooled figure compares like with like.
    common = None
    for runs in by.values():
        for steps in runs:
            common = set(steps) if common is None else common & set(steps)
    common = sorted(common or [])

    def at(s, rate):
        return stat([steps[rate][0] / steps[rate][1] for steps in by[s] if rate in steps])

    def pooled(s):
        return stat([sum(steps[x][0] for x in common) / sum(steps[x][1] for x in common) for steps in by[s]])

    def rt(a, b):
        r = ratio(a, b)
        return "" if r is None else f"{r:.2f}"

    names = [s for s in stacks if s in fo]
    per_rate.append("| msg/s (x " + str(subs) + " subs) | " + " | ".join(f"{s} µs" for s in names)
                    + " | hublink / floor | hublink / node | node / floor |")
    per_rate.append("|" + "---|" * (len(names) + 4))
    cpu_ratio = {}
    for rate in common + ["pooled"]:
        vals = {s: (pooled(s) if rate == "pooled" else at(s, rate)) for s in names}
        cpu_ratio[str(rate)] = {"hublink_vs_floor": ratio(vals.get("hublink"), vals.get("floor")),
                                "hublink_vs_node": ratio(vals.get("hublink"), vals.get("node"))}
        per_rate.append(f"| {rate} | " + " | ".join(fmt(vals[s]) for s in names)
                        + f" | {rt(vals.get('hublink'), vals.get('floor'))} | {rt(vals.get('hublink'), vals.get('node'))}"
                        + f" | {rt(vals.get('node'), vals.get('floor'))} |")
    res["fanout_cpu_by_rate"] = cpu_ratio

if idle:
    conns = next(iter(idle.values()))["conns"]
    b = get(idle, "hublink", "bytes_per_conn")
    r = ratio(b, get(idle, "node", "bytes_per_conn"))
    row(f"idle RSS per connection, KB ({conns} conns)", fmt(b, scale=1 / 1024, digits=1),
        fmt(get(idle, "node", "bytes_per_conn"), scale=1 / 1024, digits=1),
        fmt(get(idle, "python", "bytes_per_conn"), scale=1 / 1024, digits=1),
        "n/a" if r is None else f"{r:.2f} x Node",
        "<= 6 KB: " + ("n/a" if b is None else "met" if b["median"] <= 6 * 1024 else "MISSED"))
st = res["storm"]
if st:
    c = st["cold_secs"]
    row(f"connect storm, cold: all {st['conns']} connected + subscribed, s", fmt(c), "", "", "",
        "<= 2.5 s: " + ("met" if c["median"] <= 2.5 else "MISSED"))
    row("connect storm, cold: peak accept rate, conn/s", fmt(st["cold_peak_accepts_per_s"], digits=0), "", "", "", "")
    row("after a server kill + restart (client backoff): all back, s", fmt(st["restart_secs"]), "", "", "", "")
    row("after restart: peak accept rate, conn/s", fmt(st["restart_peak_accepts_per_s"], digits=0), "", "", "", "")
if dec:
    h = dec.get("message_frame_to_typed_struct")
    s = dec.get("serde_json_direct_baseline")
    if h:
        row("client decode, messages/s per core (criterion median)", f"{1e9 / h['ns']:,.0f}", "", "",
            f"{h['ns'] / s['ns']:.2f} x the time of bare serde_json" if s else "", "")
    v = dec.get("message_frame_via_value")
    if v:
        row("client decode, whole-value path (control frames, seed dialects)", f"{1e9 / v['ns']:,.0f}", "", "",
            f"{v['ns'] / s['ns']:.2f} x the time of bare serde_json" if s else "", "")
w = res["wasm"]
if w:
    for shape, f in w["shapes"].items():
        what = {"250B": "~250 B messages", "2KB": "2 KB messages",
                "batched": f"`\\n`-batched frames, {w['batch']} messages each"}.get(shape, shape)
        r_ = stat([x["ratio"] for x in f["runs"]])
        row(f"browser: messages/s to a JS callback, {what} (headless Chromium, {w['messages']:,})",
            fmt(stat([x["hublink"] for x in f["runs"]]), digits=0),
            "plain WebSocket + JSON.parse: " + fmt(stat([x["plain"] for x in f["runs"]]), digits=0), "",
            fmt(r_, unit=" x plain"), ">= 0.9 x plain: " + ("met" if f["ratio"] >= 0.9 else "MISSED"))

print()
print("| figure | hublink | Node ws | Python websockets | ratio | target |")
print("|---|---|---|---|---|---|")
for r_ in rows:
    print(r_)
print()
if per_rate:
    print("Fan-out: server CPU per delivery by publish rate (server on one core), and as a ratio to the floor")
    print("(one frame per message, the same bytes to every socket) and to Node ws; pooled: all common rates together.")
    print()
    for r_ in per_rate:
        print(r_)
    print()
sz = res["size"]
if sz:
    centrifuge = next((r for r in sz["rows"] if r["name"] == "centrifuge"), None)
    print("| what a page downloads (esbuild --bundle --minify, gzip -9) | version | JS | wasm | total |")
    print("|---|---|---|---|---|")
    for r_ in sz["rows"]:
        kb = lambda b: f"{b / 1024:.1f} KB"
        print(f"| {r_['name']} | {r_['version']} | {kb(r_['js_gzip'])} | "
              f"{kb(r_['wasm_gzip']) if r_['wasm_gzip'] else ''} | **{kb(r_['total_gzip'])}** |")
    print()
    for r_ in sz["rows"]:
        if r_["name"].startswith("hublink"):
            goal = "met" if r_["total_gzip"] <= 20 * 1024 else "MISSED"
            vs = "" if not centrifuge else (
                "; smaller than centrifuge: " + ("yes" if r_["total_gzip"] < centrifuge["total_gzip"] else "NO"))
            print(f"- {r_['name']}: <= 20 KB: {goal}{vs}")
    print()
print("Medians of the runs, (min-max) across runs. Raw runs: " + raw)
try:
    res["git"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
except OSError:
    pass
res["table"] = rows
with open(results_path, "w") as f:
    json.dump(res, f, indent=1)
print(f"results: {results_path}")
