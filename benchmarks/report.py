"""Turn a pytest-benchmark JSON file into ``benchmarks/RESULTS.md`` and a PNG chart.

    python -m pytest benchmarks/bench_suite.py --benchmark-only --benchmark-json=bench.json
    python benchmarks/report.py bench.json [cold.json ...]

Further JSON files (``bench_coldstart.py``'s run, say) add their tables: the machine is the
first file's.

Ratios are medians taken in the same run: ``vs torch`` is torch time / numbapool time (above 1
means numbapool is faster), ``of roofline`` is copy time / numbapool time for the same number of
bytes (1 would be the memory-bandwidth limit).  The chart needs matplotlib.
"""

from __future__ import annotations

import argparse
import json
import platform
from collections import defaultdict
from pathlib import Path

import numpy as np

from numbapool.bench import format_table

HERE = Path(__file__).resolve().parent


def rows_from_json(data):
    """Per-case rows of median seconds (the same shape as ``numbapool.bench.run`` returns)."""
    by_case = defaultdict(dict)
    for b in data["benchmarks"]:
        if not {"case", "impl"} <= set(b.get("params") or {}):
            continue  # not a bench_suite case
        case, impl = b["params"]["case"], b["params"]["impl"]
        by_case[case][impl] = b["stats"]["median"]
        if impl == "numbapool":
            peak = b.get("extra_info", {}).get("peak_extra_bytes")
            by_case[case]["peak_extra_mib"] = (peak or 0) / 2**20
    return [dict(case=c, **v) for c, v in by_case.items() if "numbapool" in v and "roofline" in v]


def startup_lines(data):
    """The start-up benchmark (bench_startup.py), when the run included it."""
    times = {b["params"]["impl"]: b["stats"]["median"] for b in data["benchmarks"]
             if b["name"].startswith("test_startup")}
    if not times:
        return []
    cells = ", ".join(f"{impl} {t:.2f} s" for impl, t in times.items())
    return ["Start-up, a fresh process's import plus first `max_pool2d` with the kernel cache "
            f"warm (median of 3): {cells}.", ""]


def coldstart_lines(data):
    """The cold-start table (bench_coldstart.py), when the run included it."""
    runs = [b["extra_info"] for b in data["benchmarks"]
            if b["name"].startswith("test_cold_first_call")]
    if not runs:
        return []
    lines = ["## Cold start: empty kernel cache, fresh process", "",
             "Seconds of one process per row with an empty `NUMBA_CACHE_DIR` "
             "(`benchmarks/bench_coldstart.py`): `import numbapool`, the first call on a small "
             "input (which compiles the kernels it runs) and then the first on a large one "
             "(tokens (64, 256, 384) or images (8, 64, 112, 112)), which runs on every thread.",
             "", "| function | dtype | import s | first small call s | first large call s |",
             "|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['function']} | {r['dtype']} | {r['import']:.2f} | "
                     f"{r['small']:.2f} | {r['large']:.2f} |")
    return lines + [""]


def machine_lines(data):
    m = data.get("machine_info", {})
    cpu = m.get("cpu", {})
    versions = []
    for mod in ("numbapool", "numba", "numpy", "torch"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    import numba
    threads = m.get("numba_threads", numba.get_num_threads())
    layer = m.get("numba_threading_layer", numba.config.THREADING_LAYER)
    return [
        f"- date: {data.get('datetime', '?')[:19]}",
        f"- machine: {cpu.get('brand_raw', platform.processor() or '?')}, "
        f"{cpu.get('count', '?')} logical cores, {m.get('system', '?')} {m.get('release', '')}",
        f"- kernels compiled for: {m.get('numbapool_cpu_code', '?')}",
        f"- Python {m.get('python_version', platform.python_version())}; " + ", ".join(versions),
        f"- threads: {threads} (numbapool's kernels on its thread pool, the naive loops and "
        f"the copy on Numba's threading layer {layer}); torch set to the same count",
    ]


def chart(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["case"] for r in rows]
    speed = [r["torch"] / r["numbapool"] if "torch" in r else np.nan for r in rows]
    roof = [r["roofline"] / r["numbapool"] for r in rows]
    y = np.arange(len(rows))
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 0.32 * len(rows) + 1.5), sharey=True)
    a.barh(y, speed, color="tab:blue")
    a.axvline(1.0, color="k", lw=0.8)
    a.set_xscale("log")
    ticks = [t for t in (0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64)
             if np.nanmin(speed) / 2 <= t <= np.nanmax(speed) * 2]
    a.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    a.minorticks_off()
    a.set_xlabel("speedup over PyTorch CPU (log)")
    a.set_yticks(y, names)
    a.invert_yaxis()
    b.barh(y, roof, color="tab:green")
    b.axvline(0.6, color="k", lw=0.8, ls="--")
    b.set_xlim(0, max(1.0, max(roof) * 1.05))
    b.set_xlabel("fraction of the copy roofline")
    fig.suptitle("numbapool, float32, median of each benchmark")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--png", type=Path, default=HERE / "results.png")
    parser.add_argument("--readme", type=Path, default=None,
                        help="also replace the table between the results markers of this file")
    args = parser.parse_args(argv)
    data = json.loads(args.json[0].read_text())
    for more in args.json[1:]:
        data["benchmarks"] += json.loads(more.read_text())["benchmarks"]
    rows = rows_from_json(data)
    text = ["# numbapool benchmark results", "",
            "Produced by `benchmarks/report.py` from a pytest-benchmark run of "
            "`benchmarks/bench_suite.py`. Times are medians in milliseconds; `vs torch` and "
            "`vs numpy` are how many times faster numbapool is; `of roofline` is a parallel "
            "memory copy of the same bytes (read + write) divided by numbapool's time; "
            "`peak extra MiB` is the resident memory a call adds beyond its input "
            "(the result included).", "", *machine_lines(data), "",
            format_table(rows, machine=False), "", *startup_lines(data),
            *coldstart_lines(data)]
    try:
        chart(rows, args.png)
        text += [f"![speedups and roofline fractions]({args.png.name})", ""]
    except ImportError:
        print("matplotlib is not installed: no chart")
    args.out.write_text("\n".join(text))
    print(f"wrote {args.out}")
    if args.readme is not None:
        update_readme(args.readme, rows, machine_lines(data))
        print(f"updated {args.readme}")


START, END = "<!-- results:start -->", "<!-- results:end -->"


def update_readme(path, rows, machine):
    """Put the results table (and the machine it ran on) between the markers of ``path``."""
    text = path.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    body = "\n".join(["", *machine, "", format_table(rows, machine=False), ""])
    path.write_text(head + START + body + END + tail)


if __name__ == "__main__":
    main()
