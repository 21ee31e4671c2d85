#!/usr/bin/env python3
"""report.py: the parsing and table half of scripts/bench.sh.

Each benchmark run leaves a log; the `parse-*` subcommands turn one log into
rows of a tab-separated results file (label, test, engine, tokens_per_s,
stddev, bytes_per_token, note) printed on stdout, which bench.sh appends to
build/bench/raw.tsv. `render` turns that file into the comparison table:
ours against llama.cpp per model and test, the ratio, and decode speed as a
fraction of the DRAM bandwidth bound (bytes read per token / measured GB/s).

Standard library only: it runs with the system python3, no virtualenv.

  report.py parse-ours LABEL LOG
  report.py parse-llama-bench LABEL JSON
  report.py parse-batched LABEL JSONL
  report.py parse-time LABEL ENGINE TIME_LOG       (/usr/bin/time -v output)
  report.py render RAW_TSV MEMBW_LOG OUT_MD [THREADS [META]]
"""
import json
import re
import sys

FIELDS = ("label", "test", "engine", "value", "stddev", "bytes_per_token", "note")


def row(label, test, engine, value, stddev="", bpt="", note=""):
    vals = [label, test, engine, value, stddev, bpt, note]
    print("\t".join("" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)) for v in vals))


def kv_line(line):
    """'bench: a=1 b=x' -> dict"""
    return dict(tok.split("=", 1) for tok in line.split()[1:] if "=" in tok)


def parse_ours(label, path):
    for line in open(path, errors="replace"):
        if not line.startswith("bench:"):
            continue
        d = kv_line(line)
        test = d.get("test", "")
        if test == "load":
            row(label, "load_s", "ours", float(d["seconds"]))
            row(label, "rss_after_load_mib", "ours", float(d["peak_rss_mib"]))
            row(label, "weight_bytes_per_token", "ours", float(d["weight_bytes_per_token"]))
            row(label, "kv_bytes_per_ctx_token", "ours", float(d["kv_bytes_per_ctx_token"]))
            continue
        if test == "rss":
            row(label, "bench_peak_rss_mib", "ours", float(d["peak_rss_mib"]))
            continue
        # tg128@d0 is the test llama-bench calls tg128
        name = re.sub(r"@d0$", "", test)
        row(label, name, "ours", float(d["tokens_per_s"]), float(d.get("stddev", 0)),
            d.get("bytes_per_token", ""), f"type={d.get('type', '')}")


def parse_llama_bench(label, path):
    text = open(path, errors="replace").read()
    start = text.find("[")
    if start < 0:
        return
    try:
        data = json.loads(text[start:])
    except json.JSONDecodeError:
        return
    for t in data:
        npp, ntg, nd = t.get("n_prompt", 0), t.get("n_gen", 0), t.get("n_depth", 0)
        name = f"pp{npp}" if ntg == 0 else f"tg{ntg}" if npp == 0 else f"pp{npp}+tg{ntg}"
        if nd:
            name += f"@d{nd}"
        row(label, name, "llama.cpp", float(t["avg_ts"]), float(t.get("stddev_ts", 0)), "",
            f"type={t.get('model_type', '')}")


def parse_batched(label, path):
    for line in open(path, errors="replace"):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            t = json.loads(line)
        except json.JSONDecodeError:
            continue
        row(label, f"bg{t['pl']}", "llama.cpp", float(t["speed_tg"]), "", "",
            f"pp={t['pp']} tg={t['tg']}")


def parse_time(label, engine, path):
    text = open(path, errors="replace").read()
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        row(label, "rss_short_gen_mib", engine, int(m.group(1)) / 1024.0)
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
    if m:
        h = int(m.group(1) or 0)
        row(label, "wall_short_gen_s", engine, h * 3600 + int(m.group(2)) * 60 + float(m.group(3)))
    # llama-simple: "llama_perf_context_print: load time = 503.74 ms" counts
    # from the start of loading to the end of the first prompt evaluation
    # ("prompt eval time = 159.42 ms"), which is subtracted.
    m = re.search(r"load time =\s*([\d.]+) ms", text)
    p = re.search(r"prompt eval time =\s*([\d.]+) ms", text)
    if m and engine == "llama.cpp":
        row(label, "load_s", engine, (float(m.group(1)) - (float(p.group(1)) if p else 0.0)) / 1000.0)


# ---- rendering ----

SPEED_ORDER = ["pp", "tg", "bg"]
LOWER_IS_BETTER = {"load_s", "rss_short_gen_mib", "wall_short_gen_s"}
DISPLAY = {
    "load_s": "load (s)",
    "rss_short_gen_mib": "peak RSS, short generation (MiB)",
    "wall_short_gen_s": "wall, short generation (s)",
}


def parse_membw(path, kind="dram"):
    """{threads: (best, median)} from the 'membw: KIND ...' lines."""
    bw = {}
    try:
        for line in open(path):
            if line.startswith(f"membw: {kind} "):
                d = kv_line(line)
                bw[int(d["threads"])] = (float(d["best_gbs"]), float(d["median_gbs"]))
    except OSError:
        pass
    return bw


def sort_key(test):
    for i, p in enumerate(SPEED_ORDER):
        if test.startswith(p):
            m = re.match(r"[a-z]+(\d+)(?:@d(\d+))?", test)
            return (0, i, int(m.group(2) or 0) if m else 0, int(m.group(1)) if m else 0, test)
    return (1, 0, 0, 0, test)


def fmt(v, nd=1):
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{nd}f}"


def render(raw, membw_path, out_md, threads, meta_path=None):
    rows = []
    for line in open(raw, errors="replace"):
        parts = line.rstrip("\n").split("\t")
        if len(parts) < 4 or not parts[3]:
            continue
        parts += [""] * (len(FIELDS) - len(parts))
        rows.append(dict(zip(FIELDS, parts)))
    bw = parse_membw(membw_path)
    # The bound uses the best figure seen, at the start or at the end of the
    # run: a busy host lowers the measured bandwidth, never raises it.
    bw_used = 0.0
    for b in (bw, parse_membw(membw_path, "dram-end")):
        if b:
            bw_used = max(bw_used, b.get(threads, b[max(b)])[0])

    # One value per repetition (bench.sh runs each repetition separately):
    # average them, the spread becomes the standard deviation.
    groups = {}
    for r in rows:
        groups.setdefault((r["label"], r["test"], r["engine"]), []).append(r)
    merged = []
    for (label, test, engine), rs in groups.items():
        vals = [float(r["value"]) for r in rs]
        mean = sum(vals) / len(vals)
        if len(vals) > 1:
            sd = (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5
        else:
            sd = float(rs[0]["stddev"]) if rs[0]["stddev"] else 0.0
        bpts = [float(r["bytes_per_token"]) for r in rs if r["bytes_per_token"]]
        merged.append(dict(label=label, test=test, engine=engine, value=mean, stddev=sd, n=len(vals),
                           bytes_per_token=sum(bpts) / len(bpts) if bpts else "", note=rs[0]["note"]))
    rows = merged

    labels = []
    for r in rows:
        if r["label"] not in labels:
            labels.append(r["label"])
    out = []
    out.append("# FastChat-C against llama.cpp, same machine, same GGUF, same threads\n")
    if meta_path:
        busy = False
        try:
            for line in open(meta_path):
                line = line.strip()
                if line:
                    out.append(f"- {line}")
                m = re.match(r"load average at start: ([\d.]+)", line)
                if m and float(m.group(1)) > threads + 0.5:
                    busy = True
                m = re.match(r"CPU in use by other work just before each repetition: ([\d ]+)", line)
                if m:
                    pcts = [int(v) for v in m.group(1).split()]
                    if pcts and sorted(pcts)[len(pcts) // 2] > 25:
                        busy = True
        except OSError:
            pass
        if busy:
            out.append("\n**The machine was busy with other work during this run (load average above the "
                       "thread count): the figures, llama.cpp's above all (its threads spin-wait), are unreliable.**")
        out.append("")
    if bw:
        s = ", ".join(f"{t} thread{'s' if t > 1 else ''}: best {b:.1f} / median {m:.1f} GB/s"
                      for t, (b, m) in sorted(bw.items()))
        out.append(f"DRAM read bandwidth (bench/membw.c, 1 GiB): {s}. "
                   f"Bound below = {bw_used:.1f} GB/s (the best figure, start or end) / (weight + KV bytes read per token).")
        end = parse_membw(membw_path, "dram-end")
        if end:
            out.append("Measured again at the end: " + ", ".join(
                f"{t} thread{'s' if t > 1 else ''}: best {b:.1f} / median {m:.1f} GB/s"
                for t, (b, m) in sorted(end.items())) + ".")
        out.append("")
    for label in labels:
        rs = [r for r in rows if r["label"] == label]
        get = {(r["test"], r["engine"]): r for r in rs}
        types = sorted({r["note"][5:] for r in rs if r["engine"] == "ours" and r["note"].startswith("type=")})
        out.append(f"\n## {label}" + (f" ({', '.join(types)})" if types else "") + "\n")
        wbt = get.get(("weight_bytes_per_token", "ours"))
        if wbt:
            out.append(f"weights read per decode token: {wbt['value'] / 1e6:.1f} MB\n")
        out.append("| test | ours | llama.cpp | ours / llama.cpp | ours % of bound | llama.cpp % of bound |")
        out.append("|---|---:|---:|---:|---:|---:|")
        tests = sorted({r["test"] for r in rs if r["test"].startswith(("pp", "tg", "bg"))}, key=sort_key)
        tests += [t for t in ("load_s", "rss_short_gen_mib") if any(r["test"] == t for r in rs)]
        for t in tests:
            o, l = get.get((t, "ours")), get.get((t, "llama.cpp"))
            ov = o["value"] if o else None
            lv = l["value"] if l else None
            ratio = f"{ov / lv:.2f}x" if ov and lv else "-"
            if t in LOWER_IS_BETTER and ov and lv:
                ratio = f"{ov / lv:.2f} (lower is better)"
            po = pl = "-"
            bpt = o["bytes_per_token"] if o else ""
            if bpt and bw_used > 0:
                bound = bw_used * 1e9 / float(bpt)
                po = f"{100 * ov / bound:.0f}% of {bound:,.0f}" if ov else "-"
                pl = f"{100 * lv / bound:.0f}%" if lv else "-"
            unit = "" if t in DISPLAY else " t/s"
            name = DISPLAY.get(t, t + unit)
            prec = 2 if t == "load_s" or t == "wall_short_gen_s" else 1
            os_ = fmt(ov, prec) + (f" ± {fmt(o['stddev'], prec)}" if o and o["stddev"] else "")
            ls_ = fmt(lv, prec) + (f" ± {fmt(l['stddev'], prec)}" if l and l["stddev"] else "")
            out.append(f"| {name} | {os_} | {ls_} | {ratio} | {po} | {pl} |")
    out.append("\nSpeeds are tokens/s, mean ± standard deviation over the repetitions, which alternate "
               "between the engines (llama.cpp: llama-bench; bgB: llama-batched-bench S_TG). tgG@dD decodes G tokens after D tokens of context. The host is shared and noisy: "
               "read ratios, not absolute figures. Load: ours is fc_model_load + fc_exec_new (weights "
               "memory-mapped; fc_exec_new makes the packed copies of the Q4_0/Q4_1/Q8_0 matrices); llama.cpp's is llama-simple's load time less its "
               "first prompt evaluation (it repacks some weight types at load). Peak RSS: a 16-token generation "
               "of each engine under /usr/bin/time -v.")
    text = "\n".join(out) + "\n"
    with open(out_md, "w") as f:
        f.write(text)
    print(text)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "parse-ours":
        parse_ours(argv[2], argv[3])
    elif cmd == "parse-llama-bench":
        parse_llama_bench(argv[2], argv[3])
    elif cmd == "parse-batched":
        parse_batched(argv[2], argv[3])
    elif cmd == "parse-time":
        parse_time(argv[2], argv[3], argv[4])
    elif cmd == "render":
        render(argv[2], argv[3], argv[4], int(argv[5]) if len(argv) > 5 else 2, argv[6] if len(argv) > 6 else None)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
