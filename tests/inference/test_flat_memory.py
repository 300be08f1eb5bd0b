"""Host memory does not grow with the video: frames are streamed and outputs not kept.

Each frame's outputs are 3 objects x 480 x 854 float32 logits (4.9 MB): a
predictor that kept them (or the decoded frames, as the official predictor
does) would grow by ~100 MB over the 20 extra frames of the long video.
"""

from flax import nnx

from etam_jax.bench.track import CompileTimer, bench_ours
from etam_jax.inference.demo_video import write_demo_video
from etam_jax.inference.frames import VideoFrames
from etam_jax.inference.prompts_io import load_prompts
from etam_jax.inference.video_predictor import VideoPredictor
from etam_jax.models.build import build_model


def test_peak_memory_flat_over_a_longer_video(tmp_path):
    model = build_model(
        "efficienttam_ti", image_size=64, apply_postprocessing=True, rngs=nnx.Rngs(0)
    )
    predictor, timer = VideoPredictor(model), CompileTimer()

    def run(label, num_frames):
        frames_dir, prompts_path = write_demo_video(
            str(tmp_path / label), num_frames, size=(480, 854)
        )
        frames = VideoFrames(frames_dir, model.image_size)
        prompts = load_prompts(prompts_path, (frames.height, frames.width), len(frames))
        return bench_ours(predictor, frames_dir, prompts, timer)

    run("warm", 4)  # compiles
    short, long = run("short", 4), run("long", 24)
    assert long["frames"] == 24 and long["compile_s"] == 0.0
    assert long["rss_peak_mb"] < short["rss_peak_mb"] + 40
    assert abs(long["rss_slope_mb_per_frame"]) < 1.0
