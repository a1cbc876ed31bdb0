"""Where the time of one ``infarctsam segment`` goes, stage by stage, and how far each stage is from the machine.

Run by hand (not part of the test suite)::

    python benchmarks/bench_stages.py                       # the bundled ISLES'22 case; writes stages_results.md
    python benchmarks/bench_stages.py --runs 5 --runtimes default onnx:fp32 threshold

1. **Whole process from the shell**: ``infarctsam segment DWI --adc ADC -o OUT -q`` for the default engine and the
   threshold engine, alternated, after one warm-up each; median and spread of ``--runs`` runs, peak RSS of each
   (``getrusage`` in a tiny launcher whose only child is the command). Their ratio is the figure to compare across
   machines: absolute seconds drift on a shared machine.
2. **Stages**: the same case through :func:`infarctsam.api.segment` in a fresh process per runtime (``default``: the
   engine as ``load_engine("sam")`` gives it; ``onnx:fp32`` is the engine before the speed work: ONNX Runtime encoder
   + PyTorch decoder), timed
   at the stage boundaries the API reports (read, engine load, brain mask, channels, encoder, single-slice decoding,
   memory decoding, fusion, post-processing with the inverse resampling, QC picture, writing). Imports and engine
   load are part of the process and listed too.
3. **FLOPs against the measured rate**: FLOPs of the encoder (per slice), the single-slice decoder (per slice) and
   the memory step (per pair of slices, full memory) counted by ``torch.utils.flop_counter`` (with the CPU
   attention kernel counted: :func:`cpu_attention_flops`), times the rows each stage ran (the single-slice decoder
   runs whole static batches of 8 slices, padding included, OpenVINO's encoder a slice a call; a memory step decodes
   one slice of each direction), divided by its seconds; beside the machine's dense matrix-product rate measured here
   in float32 and bfloat16 (``torch.mm`` 2048x2048). A stage far below that rate is bound by memory traffic or
   overheads.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_segment import LAUNCHER  # the sibling benchmark's launcher: wall time and the child's own peak RSS

from infarctsam.runtime.openvino_parts import ENCODER_BATCH

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "isles22-sub-strokecase0009" / "sub-strokecase0009_ses-0001"

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
marks = [("start", 0.0)]
counts = {}
def progress(stage, done, total):
    if not marks or marks[-1][0] != stage:
        marks.append((stage, time.perf_counter() - t0))
    if total:
        counts[stage] = total
from infarctsam.api import segment
from infarctsam.engines import load_engine
marks.append(("imports done", time.perf_counter() - t0))
runtime = sys.argv[1]
if runtime == "threshold":
    engine = load_engine("threshold")
elif runtime == "default":
    engine = load_engine("sam")
else:
    name, precision = runtime.split(":")
    engine = load_engine("sam")
    engine.set_runtime(name, precision)
marks.append(("engine loaded", time.perf_counter() - t0))
result = segment(sys.argv[2], sys.argv[4], adc=sys.argv[3] or None, engine=engine, progress=progress)
marks.append(("end", time.perf_counter() - t0))
print(json.dumps({"marks": marks, "counts": counts, "engine_config": result.summary["engine_config"],
                  "volume_ml": result.stats.volume_ml}))
"""

STAGE_NAMES = {"start": "Python start + imports", "imports done": "engine load (weights, compile)",
               "engine loaded": "read DWI + ADC", "brain mask and intensity normalisation": "brain mask + normalise",
               "segmenting (engine sam)": "model input channels + resampling", "encoding slices": "image encoder",
               "decoding slices one by one": "decoder, single slices",
               "decoding slices with memory": "decoder, memory passes",
               "drawing the QC picture": "QC picture", "end": ""}


def launch(args: list[str]) -> dict:
    """Run ``args`` as the only child of a tiny launcher: wall seconds, stdout and peak RSS (MiB)."""
    proc = subprocess.run([sys.executable, "-c", LAUNCHER, json.dumps(args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip()[-400:])
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {**out, "maxrss_mib": out["maxrss_kib"] / 1024}


def stage_label(name: str) -> str:
    """Readable name of a stage boundary reported by the API."""
    if name.startswith("reading"):
        return "read DWI + ADC"
    if name.startswith(("fusing", "preparing the fusion")):
        return "fusion with the DWI/ADC contrast"
    if name.startswith("post-processing"):
        return "post-processing (threshold, lesions, inverse resampling, checks)"
    if name.startswith("segmenting"):
        return "model input channels + resampling" if "sam" in name else "threshold engine"
    if name.startswith("writing"):
        return "writing outputs (NIfTI, JSON, PNG)"
    return STAGE_NAMES.get(name, name)


def whole_process(dwi: Path, adc: Path, runs: int, work: Path, variants: list[str]) -> list[dict]:
    """Median seconds and peak RSS of the command line for each variant (extra options, e.g. ``--precision bf16``;
    ``default`` for none), alternated round by round after a warm-up round."""
    engines: dict[str, list[float]] = {v: [] for v in variants}
    rss: dict[str, list[float]] = {k: [] for k in engines}
    for k in range(runs + 1):  # the first round is the warm-up
        for i, label in enumerate(engines):
            cmd = [sys.executable, "-m", "infarctsam", "segment", str(dwi), "--adc", str(adc), "-o",
                   str(work / f"cli-{i}-{k}"), "-q"] + ([] if label == "default" else label.split())
            out = launch(cmd)
            if k:
                engines[label].append(out["wall_s"])
                rss[label].append(out["maxrss_mib"])
    rows = []
    for label, times in engines.items():
        rows.append({"engine": label, "runs": len(times), "median_s": statistics.median(times),
                     "min_s": min(times), "max_s": max(times), "peak_rss_mib": max(rss[label])})
    return rows


def stages(runtime: str, dwi: Path, adc: Path, work: Path) -> dict:
    """Stage boundaries of one fresh process; durations per stage."""
    out = launch([sys.executable, "-c", CHILD, runtime, str(dwi), str(adc), str(work / f"stages-{runtime}")])
    child = json.loads(out["stdout"].strip().splitlines()[-1])
    marks = child["marks"]
    durations = [(stage_label(a), b_t - a_t) for (a, a_t), (_, b_t) in zip(marks, marks[1:], strict=False)]
    tail = out["wall_s"] - marks[-1][1]
    return {"runtime": runtime, "wall_s": out["wall_s"], "peak_rss_mib": out["maxrss_mib"],
            "stages": [*durations, ("interpreter exit (and launch)", tail)], "counts": child["counts"],
            "engine_config": child["engine_config"]}


def cpu_attention_flops() -> dict:
    """FLOP formula for the CPU kernel of ``scaled_dot_product_attention``.

    ``torch.utils.flop_counter`` knows the CUDA attention kernels only; on a CPU the call dispatches to
    ``_scaled_dot_product_flash_attention_for_cpu``, which it would count as 0: the attention products of the memory
    attention and of the mask decoder (13 of the 29 GFLOP of a memory step) went uncounted before 2026-12-07."""
    import torch
    from torch.utils.flop_counter import sdpa_flop_count

    def count(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    return {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: count}


def flop_counts(image_size: int = 128) -> dict[str, float]:
    """GFLOP of the encoder and the single-slice decoder per slice, and of a memory step per pair of slices."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from infarctsam.engines import default_weights_path
    from infarctsam.model.build import build_model
    from infarctsam.runtime.openvino_sam import EncoderGraph, SingleGraph, StepGraph

    model, _ = build_model(None, default_weights_path())
    model.requires_grad_(False)  # the counter's module tracker trips over parameters that require gradients
    cfg = model.sam.config
    side = cfg.image_embedding_size
    m = (cfg.num_maskmem - 1) * side * side + (cfg.max_obj_ptrs_in_encoder - 1) * (cfg.d_model // cfg.mem_dim)
    feat, images = torch.zeros(2, cfg.d_model, side, side), torch.zeros(2, 3, image_size, image_size)
    parts = {"encoder per slice": (EncoderGraph(model).eval(), (images[:1],)),
             "single decoder per slice": (SingleGraph(model).eval(), (feat[:1], images[:1])),
             "memory step per pair": (StepGraph(model, (cfg.max_obj_ptrs_in_encoder - 1) * 4).eval(),
                                      (feat, feat, torch.zeros(2, m, cfg.mem_dim), torch.zeros(2, m, cfg.mem_dim),
                                       torch.zeros(2, m), torch.ones(2), images))}
    out = {}
    with torch.inference_mode():
        for name, (module, args) in parts.items():
            with FlopCounterMode(display=False, custom_mapping=cpu_attention_flops()) as counter:
                module(*args)
            out[name] = counter.get_total_flops() / 1e9
    return out


def matmul_rate() -> dict[str, float]:
    """Dense matrix-product GFLOP/s of this machine (torch.mm 2048x2048, all threads), float32 and bfloat16."""
    import torch

    rates = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a = torch.randn(2048, 2048).to(dtype)
        torch.mm(a, a)
        t = time.perf_counter()
        for _ in range(5):
            torch.mm(a, a)
        rates[name] = 5 * 2 * 2048 ** 3 / (time.perf_counter() - t) / 1e9
    return rates


def markdown(rows: list[dict], runs: list[dict], flops: dict[str, float], rates: dict[str, float]) -> str:
    """The results as Markdown tables."""
    lines = ["# Stage benchmark", "", f"Run on {time.strftime('%Y-%m-%d %H:%M')}; case: the bundled ISLES'22 sample "
             "(112x112x73, DWI + ADC).", "", "## Whole process from the shell", "",
             "| engine | runs | median (s) | min-max (s) | peak RSS (MiB) |", "|---|---|---|---|---|"]
    lines += [f"| {r['engine']} | {r['runs']} | {r['median_s']:.2f} | {r['min_s']:.2f}-{r['max_s']:.2f} | "
              f"{r['peak_rss_mib']:.0f} |" for r in rows]
    threshold = [r for r in rows if "threshold" in r["engine"]]
    if threshold:
        lines += ["", "Ratio to the threshold engine in the same run: " + ", ".join(
            f"{r['engine']} {r['median_s'] / threshold[0]['median_s']:.1f}x" for r in rows if r is not threshold[0])
            + "."]
    lines += ["", "## Stages (one fresh process per runtime)", ""]
    header = "| stage | " + " | ".join(f"{r['runtime']} (s)" for r in runs) + " |"
    lines += [header, "|---|" + "---|" * len(runs)]
    labels = list(dict.fromkeys(name for r in runs for name, _ in r["stages"]))
    for label in labels:
        cells = []
        for r in runs:
            total = sum(s for name, s in r["stages"] if name == label)
            cells.append(f"{total:.2f}" if any(name == label for name, _ in r["stages"]) else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("| **whole process** | " + " | ".join(f"**{r['wall_s']:.2f}**" for r in runs) + " |")
    lines.append("| peak RSS (MiB) | " + " | ".join(f"{r['peak_rss_mib']:.0f}" for r in runs) + " |")
    lines += ["", "## FLOPs against the measured rate", "",
              f"Machine dense matrix product: {rates['fp32']:.0f} GFLOP/s float32, {rates['bf16']:.0f} GFLOP/s "
              "bfloat16 (torch.mm 2048x2048).", "",
              "| runtime | stage | GFLOP | seconds | GFLOP/s | share of the machine's rate |",
              "|---|---|---|---|---|---|"]
    for r in runs:
        if r["runtime"] == "threshold":
            continue
        precision = r["engine_config"].get("precision", "fp32")
        n = r["counts"].get("encoding slices", 0)
        steps = r["counts"].get("decoding slices with memory", 0)
        enc = ENCODER_BATCH if r["engine_config"].get("runtime") == "openvino" else 4
        rows = {"image encoder": -(-n // enc) * enc, "decoder, single slices": -(-n // 8) * 8}  # whole batches
        work = {"image encoder": flops["encoder per slice"] * rows["image encoder"],
                "decoder, single slices": flops["single decoder per slice"] * rows["decoder, single slices"],
                "decoder, memory passes": flops["memory step per pair"] * steps}
        total = sum(work.values())
        lines.append(f"| {r['runtime']} ({precision}) | **network, all stages** | **{total:.0f}** | | | |")
        for label, gflop in work.items():
            low = precision == "bf16" or (precision == "mixed" and label != "image encoder")
            peak = rates["bf16" if low else "fp32"]
            seconds = sum(s for name, s in r["stages"] if name == label)
            if seconds > 0 and gflop > 0:
                lines.append(f"| {r['runtime']} ({precision}) | {label} | {gflop:.0f} | {seconds:.2f} | "
                             f"{gflop / seconds:.0f} | {gflop / seconds / peak:.0%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dwi", default=f"{EXAMPLE}_dwi.nii.gz")
    parser.add_argument("--adc", default=f"{EXAMPLE}_adc.nii.gz")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cli", nargs="+", default=["default", "--precision bf16", "--engine threshold"],
                        help="command-line variants timed as whole processes (extra options; default: none)")
    parser.add_argument("--runtimes", nargs="+", default=["default", "onnx:fp32", "threshold"],
                        help="default (the engine as loaded), RUNTIME:PRECISION (e.g. onnx:fp32), threshold")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "stages_results.md"))
    parser.add_argument("--from-json", default=None, help="only render the Markdown of an earlier run's JSON")
    args = parser.parse_args()
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        text = markdown(saved["whole_process"], saved["stages"], saved["flops"], saved["rates"])
        Path(args.out).write_text(text, encoding="utf-8")
        print(text)
        return
    work = Path(tempfile.mkdtemp(prefix="infarctsam-stages-"))
    dwi, adc = Path(args.dwi), Path(args.adc)
    rows = whole_process(dwi, adc, args.runs, work, args.cli) if args.runs else []
    runs = [stages(runtime, dwi, adc, work) for runtime in args.runtimes]
    flops, rates = flop_counts(), matmul_rate()
    text = markdown(rows, runs, flops, rates)
    Path(args.out).write_text(text, encoding="utf-8")
    Path(args.out).with_suffix(".json").write_text(json.dumps({"whole_process": rows, "stages": runs, "flops": flops,
                                                               "rates": rates}, indent=1), encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
