"""`etam bench track`: propagation speed and host memory, ours beside the official predictor.

    etam bench track --model efficienttam_ti [--model efficienttam_s]
                     [--frames DIR --prompts PROMPTS.json] [--out FILE.json]
                     [--short 8] [--long-factor 10] [--size 480x854] [--official short]

Without ``--frames`` it generates a short and a 10x longer video (moving
textured shapes, 3 objects prompted by a click, a box and a mask). For each
model and video it reports steady-state ``ms_per_frame`` and ``fps`` of
propagation (all objects; the first two yielded frames, which compile, are
excluded), ``compile_s`` (JAX's own compile-event durations), and peak /
final host RSS (polled from a thread throughout, so transient buffers count)
and the slope of RSS over the steady frames: flat memory means the long
video's peak is close to the short one's and the slope is about 0 MiB/frame. Where torch and the official package are
installed, the official predictor runs on the same frames and prompts in the
same process with the same (random) weights and the ratio official/ours is
printed. Results go to ``--out`` (default ``bench_results/track_<time>.json``)
with the command line, the JAX backend and the device kind.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import jax
import numpy as np

from etam_jax.bench.report import report_header, write_report
from etam_jax.bench.rss import RssSampler, rss_mb
from etam_jax.errors import EtamError

STEADY_SKIP = 2  # yielded frames excluded from the steady state (compilation)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="etam bench track", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", required=True, help="model name (repeatable)")
    p.add_argument(
        "--checkpoint", help=".pt, etam weights dir or etam train workdir (default: random weights)"
    )
    p.add_argument("--frames", help="folder of JPEG frames (default: generated videos)")
    p.add_argument("--prompts", help="PROMPTS.json for --frames")
    p.add_argument("--out", help="JSON file (default bench_results/track_<time>.json)")
    p.add_argument("--short", type=int, default=8, help="frames of the short generated video")
    p.add_argument("--long-factor", type=int, default=10, help="long video = factor x short")
    p.add_argument("--size", default="480x854", help="HxW of generated frames")
    p.add_argument("--image-size", type=int, default=None, help="model resolution override")
    p.add_argument(
        "--official",
        choices=("none", "short", "all"),
        default="short",
        help="which videos to also run the official predictor on",
    )
    args = p.parse_args(argv)
    if (args.frames is None) != (args.prompts is None):
        raise EtamError("--frames and --prompts go together")
    return args


class CompileTimer:
    """Sums JAX's compile-event durations (tracing, lowering, backend compile)."""

    def __init__(self):
        self.total = 0.0
        jax.monitoring.register_event_duration_secs_listener(self._on_event)

    def _on_event(self, event: str, duration: float, **kwargs) -> None:
        if event.startswith("/jax/core/compile/"):
            self.total += duration


def time_frames(outputs) -> dict:
    """Consumes a (frame_idx, logits) iterator; per-frame wall times and host memory.

    ``rss_peak_mb`` is polled throughout (`RssSampler`); ``rss_slope_mb_per_frame``
    is the least-squares slope of the RSS read as each steady-state frame is
    yielded (about 0 when memory stays flat as the video grows).
    """
    times, rss = [], []
    with RssSampler() as sampler:
        start = last = time.perf_counter()
        for _ in outputs:
            now = time.perf_counter()
            times.append(now - last)
            rss.append(rss_mb())
            last = now
    steady = times[STEADY_SKIP:] or times
    ms = 1000 * float(np.mean(steady))
    tail = rss[STEADY_SKIP:]
    slope = float(np.polyfit(np.arange(len(tail)), tail, 1)[0]) if len(tail) > 2 else 0.0
    return {
        "frames": len(times),
        "ms_per_frame": ms,
        "fps": 1000 / ms,
        "first_frames_s": [round(t, 3) for t in times[:STEADY_SKIP]],
        "total_s": last - start,
        "rss_peak_mb": max(sampler.peak_mb, *rss),
        "rss_end_mb": rss[-1],
        "rss_slope_mb_per_frame": slope,
    }


def bench_ours(predictor, frames_dir: str, prompts, timer: CompileTimer) -> dict:
    """Times our predictor (reused across videos, so it compiles once per model)."""
    compile_before, t0 = timer.total, time.perf_counter()
    predictor.init_state(frames_dir)
    for p in prompts:
        predictor.add_prompt(p.frame, p.obj_id, p.points, p.labels, p.box, p.mask)
    result = time_frames(predictor.propagate())
    result["compile_s"] = timer.total - compile_before
    result["wall_s"] = time.perf_counter() - t0
    return result


def models_for(name: str, args, official_wanted: bool):
    """(our model, official predictor or None), with equal weights when both exist."""
    from flax import nnx

    from etam_jax.convert.naming import load_torch_arrays
    from etam_jax.inference.video_predictor import load_video_model
    from etam_jax.models.build import build_model

    official = None
    if official_wanted:
        try:
            from etam_jax.bench.official_predictor import build_official_predictor, state_dict_of
        except ImportError as e:
            print(
                f"etam bench track: official predictor unavailable ({e}); ours only",
                file=sys.stderr,
            )
        else:
            official = build_official_predictor(name, args.image_size, seed=0)
    if args.checkpoint:
        model = load_video_model(name, args.checkpoint, args.image_size)
        if official is not None:
            official.load_state_dict(state_dict_of(model))
        return model, official
    model = build_model(
        name, image_size=args.image_size, apply_postprocessing=True, rngs=nnx.Rngs(0)
    )
    if official is not None:
        load_torch_arrays(model, {k: v.numpy() for k, v in official.state_dict().items()})
    return model, official


def videos(args, workdir: str) -> list[tuple[str, str, str]]:
    """[(label, frames dir, prompts file)]: the given video, or a short and a long generated one."""
    from etam_jax.inference.demo_video import write_demo_video

    if args.frames:
        return [("given", args.frames, args.prompts)]
    h, w = (int(v) for v in args.size.lower().split("x"))
    out = []
    for label, n in (("short", args.short), ("long", args.short * args.long_factor)):
        out.append((label, *write_demo_video(os.path.join(workdir, label), n, size=(h, w), seed=0)))
    return out


def run_model(name: str, args, vids, timer: CompileTimer) -> list[dict]:
    from etam_jax.inference.frames import VideoFrames
    from etam_jax.inference.prompts_io import load_prompts

    wants = {
        label: args.official == "all" or (args.official == "short" and label != "long")
        for label, _, _ in vids
    }
    from etam_jax.inference.video_predictor import VideoPredictor

    model, official = models_for(name, args, any(wants.values()))
    predictor = VideoPredictor(model)
    rows = []
    for label, frames_dir, prompts_path in vids:
        frames = VideoFrames(frames_dir, model.image_size)
        prompts = load_prompts(prompts_path, (frames.height, frames.width), len(frames))
        row = {
            "model": name,
            "video": label,
            "num_frames": len(frames),
            "frame_hw": [frames.height, frames.width],
            "image_size": model.image_size,
            "objects": len({p.obj_id for p in prompts}),
            "ours": bench_ours(predictor, frames_dir, prompts, timer),
        }
        if official is not None and wants[label]:
            from etam_jax.bench.official_predictor import time_official

            row["official"] = time_official(official, frames_dir, prompts, time_frames)
            row["speedup_vs_official"] = (
                row["official"]["ms_per_frame"] / row["ours"]["ms_per_frame"]
            )
        rows.append(row)
        print_row(row)
    return rows


def print_row(row: dict) -> None:
    ours, off = row["ours"], row.get("official")
    text = (
        f"{row['model']:<26} {row['video']:<6} {row['num_frames']:>5} fr  ours "
        f"{ours['ms_per_frame']:9.1f} ms/fr {ours['fps']:7.2f} fps  compile {ours['compile_s']:6.1f} s  "
        f"rss peak {ours['rss_peak_mb']:7.0f} MiB ({ours['rss_slope_mb_per_frame']:+.1f} MiB/fr)"
    )
    if off:
        text += (
            f" | official {off['ms_per_frame']:9.1f} ms/fr rss peak {off['rss_peak_mb']:7.0f} MiB"
            f" | official/ours {row['speedup_vs_official']:.2f}x"
        )
    print(text, flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from etam_jax.models.configs import get_model_config

    for name in args.model:
        get_model_config(name)  # unknown names fail before any work
    timer = CompileTimer()
    report = {
        **report_header("track", argv),
        "steady_state_excludes_first_frames": STEADY_SKIP,
        "results": [],
    }
    with tempfile.TemporaryDirectory(prefix="etam_bench_track_") as workdir:
        vids = videos(args, workdir)
        for name in args.model:
            report["results"] += run_model(name, args, vids, timer)
    write_report(report, args.out, "track")
    return 0
