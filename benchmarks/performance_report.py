"""Write the measured tables of docs/performance.md (and a plot) from `benchmarks/results/*.jsonl`.

    python benchmarks/performance_report.py                         # rewrite the generated block
    python benchmarks/performance_report.py --results=DIR --doc=F   # other results or page

Each results file is what one `python benchmarks/suite.py` run wrote (a header line with the date,
device, versions and commit, then one JSON line per case) and becomes one table. Only the block
between `<!-- generated:start -->` and `<!-- generated:end -->` is rewritten; the hand-written log
around it stays (the block is added after the page's introduction where it has none). Compile time
is the compile-only pass's where the suite ran one (`--compile-workers`, marked ᶜ), else the timed
pass's; % of peak is XLA's cost-analysis FLOPs per step / the median step time / the device's dense
peak FLOP/s for the case's compute dtype (`jaxnas.bench.PEAK_TFLOPS`).
"""

from __future__ import annotations

import argparse
import glob
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
DOC = os.path.join(ROOT, "docs", "performance.md")
PLOT = "performance_steps.png"
START, END = "<!-- generated:start -->", "<!-- generated:end -->"


def read_results(path: str) -> tuple[dict, dict[str, dict]]:
    """(the first header's environment, case name -> row): a case's last timed line, with the compile
    time of its last compile-only line where there is one; timed cases first, in the order run."""
    env, timed, compiled = {}, {}, {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if "environment" in r:
                env = env or r["environment"]
            elif r.get("phase") == "compile":
                compiled[r["case"]] = r
            elif "case" in r:
                timed[r["case"]] = r
    rows = {}
    for name in list(timed) + [n for n in compiled if n not in timed]:  # the timed pass runs in the suite's order
        row = dict(timed.get(name) or {"case": name, "error": compiled[name].get("error", "not timed (deadline)")})
        c = compiled.get(name)
        if c and "compile_seconds" in c:
            row["compile_seconds"], row["compile_pass"] = c["compile_seconds"], True
            for key in ("hlo_instructions", "hlo_fusions", "flops_per_step", "step_memory_mb", "peak_flops_per_device"):
                row.setdefault(key, c.get(key))
        rows[name] = row
    return env, rows


def percent_of_peak(row: dict) -> float | None:
    flops, step, peak = row.get("flops_per_step"), row.get("step_seconds"), row.get("peak_flops_per_device")
    if not (flops and step and peak):
        return None
    return 100 * flops / step / peak


def _num(x, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def table_row(row: dict) -> list[str]:
    if "step_seconds" not in row:
        return [row["case"], f"not measured: {row.get('error', '?')[:120]}"] + [""] * 8
    flops, step = row.get("flops_per_step"), row["step_seconds"]
    pct = percent_of_peak(row)
    profile = row.get("profile") or {}
    top = (profile.get("top_kinds") or [{}])[0]
    kernels = "–" if not profile else (_num(profile.get("kernels_per_step"), ",.0f")
                                       + (f"; {top['kind']} {100 * top['share']:.0f} %" if top else ""))
    instructions, fusions = row.get("hlo_instructions"), row.get("hlo_fusions")
    return [row["case"] + (f" (`{row['xla_flags']}`)" if row.get("xla_flags") else ""),
            _num(row.get("compile_seconds"), ".1f") + ("ᶜ" if row.get("compile_pass") else ""),
            _num(row.get("first_step_seconds"), ".1f"),
            _num(step, ".4g"),
            _num(row.get("images_per_second"), ".1f"),
            "–" if not flops else f"{flops / step / 1e12:.3g}" + ("" if pct is None else f" ({pct:.1f} %)"),
            _num(row.get("step_memory_mb"), ".1f"),
            f"{_num(instructions, ',')} / {_num(fusions, ',')}",
            kernels,
            _num(row.get("wall_seconds"), ".0f")]


HEADER = ["case", "compile s", "first step s", "median step s", "images/s", "TFLOP/s (% of peak)", "step MB",
          "HLO instructions / fusions", "kernels per step; top kind", "wall s"]


def describe(env: dict) -> str:
    commit = (env.get("commit") or "?")[:7] + (" (uncommitted changes)" if env.get("dirty") else "")
    flags = f", XLA_FLAGS `{env['xla_flags']}`" if env.get("xla_flags") else ""
    return (f"{env.get('device_count', '?')} × {env.get('device_kind', '?')} ({env.get('platform', '?')}), "
            f"{env.get('date', '?')}; jax {env.get('jax', '?')}, jaxlib {env.get('jaxlib', '?')}, "
            f"flax {env.get('flax', '?')}, Python {env.get('python', '?')}; commit {commit}{flags}; "
            f"`{' '.join(['suite.py', *env.get('argv', [])])}`")


def section(path: str) -> list[str]:
    env, rows = read_results(path)
    name = os.path.basename(path)
    lines = [f"#### {name}", "", describe(env), ""]
    lines.append("| " + " | ".join(HEADER) + " |")
    lines.append("|---" * len(HEADER) + "|")
    lines += ["| " + " | ".join(table_row(r)) + " |" for r in rows.values()]
    return lines + [""]


def plot(files: list[str], out_png: str) -> bool:
    """Median step time per case, one bar series per results file, log scale."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    series = []
    for path in files:
        env, rows = read_results(path)
        series.append((os.path.basename(path).removesuffix(".jsonl"),
                       {n: r["step_seconds"] for n, r in rows.items() if r.get("step_seconds")}))
    cases = list(dict.fromkeys(n for _, s in series for n in s))
    if not cases:
        return False
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(cases) * max(1, len(series)) + 1.5))
    height = 0.8 / len(series)
    for i, (label, steps) in enumerate(series):
        ys = [j + i * height for j, c in enumerate(cases) if c in steps]
        ax.barh(ys, [steps[c] for c in cases if c in steps], height=height, label=label)
    ax.set_yticks([j + 0.4 - height / 2 for j in range(len(cases))], cases, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("median step time (s, log scale)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return True


def generate(results: str, doc_dir: str) -> str:
    files = sorted(glob.glob(os.path.join(results, "*.jsonl")))
    lines = [START, "", "### Measured (generated by `python benchmarks/performance_report.py` from "
             "`benchmarks/results/*.jsonl`; do not edit by hand)", ""]
    if not files:
        lines += ["No results files yet.", ""]
    if files and plot(files, os.path.join(doc_dir, PLOT)):
        lines += [f"![median step time per case and results file]({PLOT})", ""]
    lines += ["Columns: compile = `lower().compile()` wall time (ᶜ: in the compile-only pass, several "
              "compiles at once); first step = compile + the first run (after a compile pass: tracing, "
              "lowering and the cache load + the first run); TFLOP/s = XLA's cost analysis "
              "FLOPs / median step, and % of the device's dense peak for the case's dtype where known; "
              "step MB = XLA's buffer assignment; kernels per step and the top kernel kind's share of "
              "kernel time from a `jax.profiler` trace (`--profile`; on a CPU, XLA:CPU's thunks).", ""]
    for path in files:
        lines += section(path)
    return "\n".join(lines + [END])


def update(doc: str, block: str) -> str:
    if START in doc and END in doc:
        head, rest = doc.split(START, 1)
        return head + block + rest.split(END, 1)[1]
    at = doc.find("\n## ")
    at = len(doc) if at < 0 else at + 1
    return doc[:at] + block + "\n\n" + doc[at:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=RESULTS, help="folder of *.jsonl results files")
    parser.add_argument("--doc", default=DOC, help="the page whose generated block is rewritten")
    args = parser.parse_args()
    with open(args.doc) as f:
        doc = f.read()
    new = update(doc, generate(args.results, os.path.dirname(os.path.abspath(args.doc))))
    with open(args.doc, "w") as f:
        f.write(new)
    print(f"wrote {args.doc}")


if __name__ == "__main__":
    main()
