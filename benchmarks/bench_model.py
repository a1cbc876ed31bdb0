"""Benchmark the prompt-free model's backbones on CPU (run by hand; not part of the test suite).

For each backbone and input size: FLOPs per slice (image encoder; one memory-conditioned decoder step), encoder
seconds per slice under several runtimes (eager fp32, channels-last, bf16 autocast, ONNX Runtime), decoder seconds
per slice and pass, and the end-to-end time and peak memory of one ISLES-size case (the bundled real sample,
112x112x73) in a fresh process.

    python benchmarks/bench_model.py                 # all configurations, writes benchmarks/model_results.md
    python benchmarks/bench_model.py --quick         # litemedsam at 128 px only
    python benchmarks/bench_model.py --all-cases --weights src/infarctsam/weights/default.safetensors
                                                     # an end-to-end case for every configuration (about an hour)
    python benchmarks/bench_model.py --configs sam2.1_hiera_tiny:512 --all-cases > rows.jsonl
    python benchmarks/bench_model.py --rows-from a.jsonl --rows-from rows.jsonl   # table from earlier runs

Configurations other than the default (litemedsam, 128 px) run with random weights: how many slices their memory
passes cover depends on the untrained object score, so their case times are indicative. The trained default model
(--weights) runs the memory passes only over the slices whose object score says lesion.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "isles22-sub-strokecase0009" / "sub-strokecase0009_ses-0001_dwi.nii.gz"
CONFIGS = [("litemedsam", 128), ("litemedsam", 256), ("litemedsam", 512), ("sam2.1_hiera_tiny", 256),
           ("sam2.1_hiera_tiny", 512)]


def _timeit(fn, repeat: int = 2) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def _flat(out):
    import torch

    parts = out if isinstance(out, (list, tuple)) else [out]
    return torch.cat([t.float().flatten() for t in parts])


def measure_trunk(model, x, compile_: bool) -> dict:
    """The image encoder's trunk alone: eager fp32, bf16 error, and torch.compile (Inductor) when asked."""
    import torch

    trunk = model.sam.image_encoder.trunk
    batch = x.shape[0]
    row: dict = {}
    with torch.no_grad():
        ref = _flat(trunk(x))
        row["trunk_s_fp32"] = _timeit(lambda: trunk(x)) / batch
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = _flat(trunk(x))
        row["bf16_rel_err"] = float((low - ref).norm() / ref.norm())
        if compile_:
            compiled = torch.compile(trunk)
            t = time.perf_counter()
            try:
                out = _flat(compiled(x))
            except Exception as exc:  # noqa: BLE001 (report any compiler failure in the table)
                row["compile_error"] = type(exc).__name__
                return row
            row["compile_s"] = time.perf_counter() - t
            row["compile_rel_err"] = float((out - ref).norm() / ref.norm())
            row["trunk_s_compile"] = _timeit(lambda: compiled(x)) / batch
    return row


def measure(backbone: str, size: int, batch: int, compile_: bool = False) -> dict:
    """Per-slice FLOPs and timings of one configuration, in this process."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from infarctsam.model.build import build_model
    from infarctsam.model.config import ModelConfig
    from infarctsam.model.sam2 import MemoryBank

    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone, image_size=size)
    model, _ = build_model(cfg, None)
    model.requires_grad_(False)
    x = torch.rand(batch, 3, size, size)
    row: dict = {"backbone": backbone, "size": size, **measure_trunk(model, x, compile_)}
    with torch.no_grad():  # (FlopCounterMode's module tracker does not accept inference-mode tensors)
        with FlopCounterMode(display=False) as fc:
            model.encode(x[:1])
        row["encoder_gflop"] = fc.get_total_flops() / 1e9
        feats = model.encode(x)
        bank = MemoryBank(num_maskmem=model.sam.config.num_maskmem,
                          max_obj_ptrs=model.sam.config.max_obj_ptrs_in_encoder)
        for i in range(3):
            bank.add(i, model.step(feats.select(i), bank.entries_for(i), num_frames=batch).memory)
        with FlopCounterMode(display=False) as fc:
            model.step(feats.select(3), bank.entries_for(3), num_frames=batch)
        row["decoder_step_gflop"] = fc.get_total_flops() / 1e9
        row["encoder_s_fp32"] = _timeit(lambda: model.encode(x)) / batch
        model_cl = model.to(memory_format=torch.channels_last)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        row["encoder_s_channels_last"] = _timeit(lambda: model_cl.encode(x_cl)) / batch
        with torch.autocast("cpu", dtype=torch.bfloat16):
            row["encoder_s_bf16"] = _timeit(lambda: model.encode(x)) / batch
        row["decoder_s_per_slice_pass"] = _timeit(
            lambda: model.step(feats.select(3), bank.entries_for(3), num_frames=batch), repeat=4)
    if backbone == "litemedsam":
        from infarctsam.runtime.onnx_trunk import OnnxTrunk, onnxruntime_available

        if onnxruntime_available():
            t = time.perf_counter()
            ort = OnnxTrunk(model.sam.image_encoder.trunk, size, threads=torch.get_num_threads(), cache_dir=None)
            row["onnx_export_s"] = time.perf_counter() - t
            xn = x.numpy()
            row["encoder_s_onnx"] = _timeit(lambda: ort(xn, batch)) / batch  # the trunk (the neck stays in torch)
            with torch.no_grad():
                ref = _flat(model.sam.image_encoder.trunk(x))
            row["onnx_rel_err"] = float((_flat(torch.from_numpy(ort(xn, batch))) - ref).norm() / ref.norm())
    return row


def end_to_end(backbone: str, size: int, weights: str | None, runtime: str) -> dict:
    """Time and peak RSS of segmenting the sample case in a fresh process (model load included)."""
    code = f"""
import json, resource, time, sys
t0 = time.perf_counter()
import torch
from infarctsam.io.dwi import load_dwi
from infarctsam.preprocess import preprocess
from infarctsam.model.build import build_model
from infarctsam.model.config import ModelConfig
from infarctsam.runtime.predictor import VolumePredictor, PredictorOptions
if {weights!r}:
    model, info = build_model(None, {weights!r})
    cfg = ModelConfig(**info["card"]["config"])
else:
    cfg = ModelConfig(backbone={backbone!r}, image_size={size})
    model, _ = build_model(cfg, None)
t1 = time.perf_counter()
pred = VolumePredictor(model, cfg, PredictorOptions(runtime={runtime!r}))
dwi, _ = load_dwi({str(SAMPLE)!r})
pre = preprocess(dwi)
t2 = time.perf_counter()
prob = pred.predict(pre)
t3 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"load_s": t1 - t0, "prepare_s": t2 - t1, "predict_s": t3 - t2, "total_s": t3 - t0,
                  "peak_rss_mib": rss}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, encoding="utf-8",
                         errors="replace", check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _case_cell(case: dict | None, key: str, fmt: str) -> str:
    if not case:
        return "-"
    if "error" in case:
        return case["error"] if key == "total_s" else "-"
    return format(case[key], fmt)


def render(rows: list[dict], batch: int) -> str:
    """The markdown table of benchmark rows (as printed, one JSON object per configuration)."""
    import torch

    lines = [
        "# Model benchmark",
        "",
        f"Machine: {_cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}.",
        f"Case: the bundled ISLES'22 sample (112x112x73, 2 mm); batch {batch} slices for the encoder.",
        "",
        "| backbone | px | encoder GFLOP/slice | decoder step GFLOP | encoder s/slice fp32 | channels-last | bf16 |"
        " ONNX Runtime | decoder s/slice/pass | case s (torch) | peak RSS MiB (torch) | case s (ONNX) |"
        " peak RSS MiB (ONNX) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        torch_case, onnx_case = r.get("case_torch"), r.get("case_onnx")
        lines.append(
            f"| {r['backbone']} | {r['size']} | {r['encoder_gflop']:.1f} | {r['decoder_step_gflop']:.2f} | "
            f"{r['encoder_s_fp32']:.3f} | {r['encoder_s_channels_last']:.3f} | {r['encoder_s_bf16']:.3f} | "
            f"{format(r['encoder_s_onnx'], '.3f') if 'encoder_s_onnx' in r else '-'} | "
            f"{r['decoder_s_per_slice_pass']:.3f} | "
            f"{_case_cell(torch_case, 'total_s', '.1f')} | {_case_cell(torch_case, 'peak_rss_mib', '.0f')} | "
            f"{_case_cell(onnx_case, 'total_s', '.1f')} | {_case_cell(onnx_case, 'peak_rss_mib', '.0f')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="litemedsam at 128 px only")
    parser.add_argument("--configs", default=None,
                        help="comma-separated backbone:px pairs, e.g. litemedsam:512,sam2.1_hiera_tiny:256")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--compile", action="store_true", help="also time the trunk under torch.compile (Inductor)")
    parser.add_argument("--weights", default=None, help="trained .safetensors for the end-to-end row")
    parser.add_argument("--all-cases", action="store_true", help="end-to-end case for every configuration (slow); "
                        "by default only for the default backbone (litemedsam, 128 px)")
    parser.add_argument("--rows-from", action="append", default=[],
                        help="render the table from JSON lines printed by earlier runs (repeatable); measure nothing")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "model_results.md"))
    args = parser.parse_args()

    rows = []
    if args.rows_from:
        for path in args.rows_from:
            rows += [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()
                     if line.startswith("{")]
    else:
        configs = CONFIGS[:1] if args.quick else CONFIGS
        if args.configs:
            configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs.split(",")]
        for backbone, size in configs:
            row = measure(backbone, size, args.batch, args.compile)
            runtimes = ["torch", "onnx"] if backbone == "litemedsam" and "encoder_s_onnx" in row else ["torch"]
            if not args.all_cases and (backbone, size) != ("litemedsam", 128):
                runtimes = []
            for runtime in runtimes:
                weights = args.weights if (backbone, size) == ("litemedsam", 128) else None
                try:
                    row[f"case_{runtime}"] = end_to_end(backbone, size, weights, runtime)
                except subprocess.CalledProcessError as exc:  # e.g. killed for memory: record it, go on
                    row[f"case_{runtime}"] = {"error": f"failed (exit {exc.returncode})"}
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = render(rows, args.batch)
    Path(args.out).write_text(table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
