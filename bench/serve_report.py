#!/usr/bin/env python3
"""serve_report.py: the table half of scripts/bench_serve.sh.

Reads the `fastchat bench-serve --json` results that bench_serve.sh leaves in
RAW_DIR (ours_c<N>.json, llama_c<N>.json: one per engine and concurrency),
prints a markdown table, one row per concurrency, ours next to llama.cpp's
llama-server with the ratios, and writes it to OUT_MD.

Standard library only: it runs with the system python3, no virtualenv.

  serve_report.py RAW_DIR OUT_MD [META]
"""
import glob
import json
import os
import re
import sys


def load(raw_dir):
    res = {}
    for path in glob.glob(os.path.join(raw_dir, "*_c*.json")):
        m = re.match(r"(ours|llama)_c(\d+)\.json$", os.path.basename(path))
        if not m:
            continue
        try:
            with open(path) as f:
                res[(m.group(1), int(m.group(2)))] = json.load(f)
        except (OSError, ValueError):
            pass
    return res


def num(o, key, fmt):
    if o is None or key not in o:
        return "-"
    return fmt.format(o[key])


def pair(a, b, key, fmt="{:.0f}"):
    """ours / llama, or ours alone when there is no llama figure."""
    x = num(a, key, fmt)
    return x if b is None else f"{x} / {num(b, key, fmt)}"


def ratio(a, b, key):
    if not a or not b or not b.get(key) or a.get(key) is None:
        return "-"
    return f"{a[key] / b[key]:.2f}"


def render(res, meta):
    levels = sorted({c for _, c in res})
    have_llama = any(e == "llama" for e, _ in res)
    lines = ["# Serving: FastChat-C `fastchat serve` vs llama.cpp `llama-server`", ""]
    if meta:
        lines += [meta, ""]
    lines += [
        "Streaming chat completions through each server's OpenAI API, all clients sending the same "
        "request; tokens/s is all generated tokens over the wall time of the level. "
        "TTFT = time to the first content chunk; ITL = gap between content chunks; "
        "TPOT = (latency - TTFT) / (tokens - 1) per request; "
        "other load % = CPU used by anything but the server and the client during the run. "
        + ("Pairs are ours / llama-server; ratio = ours / llama-server (above 1: ours faster "
           "for tokens/s)." if have_llama else "llama-server was not run: our figures only."),
        "",
    ]
    if have_llama:
        lines += [
            "| clients | requests done | ours tok/s | llama tok/s | ratio | TTFT p50 ms | TTFT p99 ms "
            "| TTFT p50 ratio | ITL p50 ms | TPOT p50 ms | tokens/req | errors | other load % |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
    else:
        lines += [
            "| clients | requests done | tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | TPOT p50 ms "
            "| tokens/req | errors | other load % |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
    notes = []
    for c in levels:
        a, b = res.get(("ours", c)), res.get(("llama", c))
        reqs = pair(a, b, "ok", "{}") if have_llama else num(a, "ok", "{}")
        for name, o in (("ours", a), ("llama-server", b)):
            if o and o.get("errors"):
                notes.append(f"- {c} clients, {name}: {o['errors']} errors, first: {o.get('first_error', '?')}")
            if o and o.get("not_started"):
                notes.append(f"- {c} clients, {name}: {o['not_started']} of {o['requests']} requests not started "
                             "(the run reached BENCH_SERVE_MAX_S)")
        if have_llama:
            lines.append(
                f"| {c} | {reqs} | {num(a, 'tokens_per_s', '{:.1f}')} | {num(b, 'tokens_per_s', '{:.1f}')} "
                f"| {ratio(a, b, 'tokens_per_s')} | {pair(a, b, 'ttft_p50_ms')} | {pair(a, b, 'ttft_p99_ms')} "
                f"| {ratio(a, b, 'ttft_p50_ms')} | {pair(a, b, 'itl_p50_ms', '{:.1f}')} "
                f"| {pair(a, b, 'tpot_p50_ms', '{:.1f}')} "
                f"| {pair(a, b, 'generated_tokens_per_request', '{:.0f}')} "
                f"| {pair(a, b, 'errors', '{}')} | {pair(a, b, 'other_load_pct', '{}')} |"
            )
        else:
            lines.append(
                f"| {c} | {reqs} | {num(a, 'tokens_per_s', '{:.1f}')} | {num(a, 'ttft_p50_ms', '{:.0f}')} "
                f"| {num(a, 'ttft_p99_ms', '{:.0f}')} | {num(a, 'itl_p50_ms', '{:.1f}')} "
                f"| {num(a, 'tpot_p50_ms', '{:.1f}')} | {num(a, 'generated_tokens_per_request', '{:.0f}')} "
                f"| {num(a, 'errors', '{}')} | {num(a, 'other_load_pct', '{}')} |"
            )
    # prompt length as each server counts it (its own chat template)
    pts = []
    for eng, label in (("ours", "ours"), ("llama", "llama-server")):
        vals = [o.get("prompt_tokens_per_request") for (e, _), o in res.items() if e == eng]
        vals = [v for v in vals if v]
        if vals:
            pts.append(f"{label} {sum(vals) / len(vals):.0f}")
    if pts:
        notes.append("- prompt tokens per request (each server's own chat template): " + ", ".join(pts))
    other = [o.get("other_load_pct") for o in res.values() if o.get("other_load_pct") is not None]
    if other and max(other) > 10:
        notes.append(f"- other work used up to {max(other)}% of the machine's CPU during some runs "
                     "(column 'other load %': all CPU time but the server's and the client's): those figures "
                     "are noisy" + (", llama-server's the most in our runs (its threads spin at barriers, so one "
                                    "descheduled thread stalls the whole step)" if have_llama else ""))
    if notes:
        lines += [""] + notes
    return "\n".join(lines) + "\n"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    res = load(sys.argv[1])
    if not res:
        sys.exit(f"serve_report: no results in {sys.argv[1]}")
    md = render(res, sys.argv[3] if len(sys.argv) > 3 else "")
    os.makedirs(os.path.dirname(sys.argv[2]) or ".", exist_ok=True)
    with open(sys.argv[2], "w") as f:
        f.write(md)
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
