"""Synthetic datasets in the real on-disk formats (SA-1B, SA-V train/val, DAVIS 2017).

Scenes come from `synthetic_scene.Scene`; every writer is deterministic given
its seed, so tests and demos can compare against files written twice. Layouts
(see ../shared/reference/EFFICIENTTAM.md, "Data formats"; SA-V json fields as
in the SAM 2 repo's ``sav_dataset/README.md``):

- `write_sa1b`: ``sa_000000.tar`` ... holding ``sa_<id>.jpg`` + ``sa_<id>.json``
  (or the same files extracted with ``tar=False``).
- `write_sav`: ``sav_<id>.mp4`` (24 fps H.264) + ``sav_<id>_manual.json`` and
  ``sav_<id>_auto.json``; ``masklet`` over every 4th frame.
- `write_sav_eval`: ``JPEGImages_24fps/<vid>/%05d.jpg``,
  ``Annotations_6fps/<vid>/<obj:03d>/%05d.png``, ``sav_<split>.txt``.
- `write_davis`: ``JPEGImages/480p/<vid>/%05d.jpg``,
  ``Annotations/480p/<vid>/%05d.png`` (palette, index = object id),
  ``ImageSets/2017/val.txt``.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
from PIL import Image

from data_pipelines.records import ANNOTATION_STRIDE, encode_jpeg, encode_rle
from data_pipelines.synthetic_scene import Scene, SceneStyle
from data_pipelines.video_io import FPS, write_mp4
from etam_jax.errors import EtamError

MIN_AREA = 16  # objects smaller than this on their first frame are not annotated
KIND_CODES = {"sa1b": 1, "sav": 2, "sav_eval": 3, "davis": 4}
KINDS = ("sa1b", "sav", "sav_eval", "davis")


def scene_for(
    kind: str,
    seed: int,
    index: int,
    size: tuple[int, int],
    num_objects: int,
    num_frames: int = 1,
    late_object: bool = False,
    style: SceneStyle = SceneStyle(),
) -> Scene:
    """The scene of item ``index`` of a dataset ``kind``: one independent stream per (seed, kind, item)."""
    return Scene(
        np.random.SeedSequence([seed, KIND_CODES[kind], index]).generate_state(1)[0],
        size[0],
        size[1],
        num_objects,
        num_frames,
        late_object,
        style,
    )


class RenderedVideo(NamedTuple):
    """A rendered scene and the objects worth annotating (at least `MIN_AREA` pixels when first seen).

    Attributes:
        frames: uint8 ``[T, H, W, 3]``.
        masks: bool ``[T, K, H, W]`` of the kept objects.
        first: ``[K]`` first annotated frame of each kept object (on the 4-frame grid).
        objects: ``[K]`` index of each kept object in ``scene.objects``.
    """

    frames: np.ndarray
    masks: np.ndarray
    first: list[int]
    objects: list[int]


def render_video(scene: Scene, num_frames: int) -> RenderedVideo:
    """Renders frames ``0..num_frames-1`` of a scene and picks the objects worth annotating."""
    rendered = [scene.render(t) for t in range(num_frames)]
    frames = np.stack([f for f, _ in rendered])
    masks = np.stack([m for _, m in rendered])
    keep, first = [], []
    for k, obj in enumerate(scene.objects):
        # First frame on the annotated grid at or after the object's appearance.
        t0 = -(-obj.appear // ANNOTATION_STRIDE) * ANNOTATION_STRIDE if num_frames > 1 else 0
        if t0 < num_frames and masks[t0, k].sum() >= MIN_AREA:
            keep.append(k)
            first.append(t0)
    return RenderedVideo(frames, masks[:, keep], first, keep)


def rle_dict(mask: np.ndarray) -> dict:
    """bool ``[H, W]`` -> ``{"size": [h, w], "counts": str}`` as the json files store it."""
    return {"size": list(mask.shape), "counts": encode_rle(mask).decode("ascii")}


def _bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [
        float(xs.min()),
        float(ys.min()),
        float(xs.max() - xs.min() + 1),
        float(ys.max() - ys.min() + 1),
    ]


def sa1b_annotation(image_id: int, k: int, mask: np.ndarray, rng: np.random.Generator) -> dict:
    """One SA-1B ``annotations`` entry for the mask of scene object ``k`` (id ``image_id * 1000 + k``)."""
    ys, xs = np.nonzero(mask)
    j = int(rng.integers(len(xs)))
    h, w = mask.shape
    return {
        "id": image_id * 1000 + k,
        "segmentation": rle_dict(mask),
        "bbox": _bbox(mask),
        "area": int(mask.sum()),
        "predicted_iou": float(rng.uniform(0.85, 1.0)),
        "stability_score": float(rng.uniform(0.9, 1.0)),
        "crop_box": [0.0, 0.0, float(w), float(h)],
        "point_coords": [[float(xs[j]) + 0.5, float(ys[j]) + 0.5]],
    }


def sa1b_example(
    seed: int,
    image_id: int,
    size: tuple[int, int],
    num_objects: int,
    style: SceneStyle = SceneStyle(),
) -> tuple[bytes, dict]:
    """(JPEG bytes, json dict) of one synthetic SA-1B image."""
    frames, masks, _, objects = render_video(
        scene_for("sa1b", seed, image_id, size, num_objects, style=style), 1
    )
    rng = np.random.default_rng([seed, image_id])
    h, w = size
    meta = {
        "image": {"image_id": image_id, "width": w, "height": h, "file_name": f"sa_{image_id}.jpg"},
        "annotations": [
            sa1b_annotation(image_id, k, masks[0, i], rng) for i, k in enumerate(objects)
        ],
    }
    return encode_jpeg(frames[0]), meta


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 0  # mtime 0: byte-identical shards for equal seeds
    tar.addfile(info, io.BytesIO(data))


def write_sa1b(
    out_dir: str | Path,
    num_images: int = 6,
    seed: int = 0,
    size: tuple[int, int] = (192, 256),
    num_objects: int = 5,
    images_per_shard: int = 3,
    tar: bool = True,
    style: SceneStyle = SceneStyle(),
) -> list[Path]:
    """Writes SA-1B-style data; returns the tar shards (or the json files when ``tar=False``)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for start in range(0, num_images, images_per_shard):
        ids = range(start + 1, min(start + images_per_shard, num_images) + 1)
        files = []
        for image_id in ids:
            jpeg, meta = sa1b_example(seed, image_id, size, num_objects, style)
            files += [
                (f"sa_{image_id}.jpg", jpeg),
                (f"sa_{image_id}.json", json.dumps(meta).encode()),
            ]
        if tar:
            path = out / f"sa_{start // images_per_shard:06d}.tar"
            with tarfile.open(path, "w") as t:
                for name, data in files:
                    _add_bytes(t, name, data)
            written.append(path)
        else:
            for name, data in files:
                (out / name).write_bytes(data)
            written += [out / name for name, _ in files if name.endswith(".json")]
    return written


def sav_json(
    video_id: str,
    masks: np.ndarray,
    first: Sequence[int],
    num_frames: int,
    kind: str,
    rng: np.random.Generator,
) -> dict:
    """SA-V train json (`_manual` / `_auto`) for masks bool ``[T, K, H, W]`` at 24 fps."""
    annotated = masks[::ANNOTATION_STRIDE]
    t_ann, k_num, h, w = annotated.shape
    areas = annotated.sum((2, 3))
    visible = areas > 0
    size_abs = [float(areas[visible[:, k], k].mean()) for k in range(k_num)]
    return {
        "video_id": video_id,
        "video_duration": num_frames / FPS,
        "video_frame_count": float(num_frames),
        "video_height": float(h),
        "video_width": float(w),
        "video_resolution": float(h * w),
        "video_environment": "Outdoor",
        "video_split": "train",
        "masklet": [[rle_dict(annotated[t, k]) for k in range(k_num)] for t in range(t_ann)],
        "masklet_id": list(range(k_num)),
        "masklet_size_rel": [s / (h * w) for s in size_abs],
        "masklet_size_abs": size_abs,
        "masklet_size_bucket": [
            "small" if s < 32**2 else "medium" if s < 96**2 else "large" for s in size_abs
        ],
        "masklet_visibility_changes": [
            int(np.abs(np.diff(visible[:, k].astype(int))).sum()) for k in range(k_num)
        ],
        "masklet_first_appeared_frame": [float(f) for f in first],
        "masklet_frame_count": [t_ann] * k_num,
        "masklet_edited_frame_count": [0] * k_num,
        "masklet_type": [kind] * k_num,
        "masklet_stability_score": (
            [[float(x) for x in rng.uniform(0.9, 1, t_ann)] for _ in range(k_num)]
            if kind == "auto"
            else [None] * k_num
        ),
        "masklet_num": k_num,
    }


def write_sav(
    out_dir: str | Path,
    num_videos: int = 2,
    seed: int = 0,
    size: tuple[int, int] = (128, 192),
    num_frames: int = 48,
    num_objects: int = 3,
    style: SceneStyle = SceneStyle(),
) -> list[Path]:
    """Writes SA-V-train-style videos; returns the mp4 paths.

    ``_manual.json`` has every kept object (the last one may appear late);
    ``_auto.json`` the objects present from frame 0 (auto masklets always are).
    """
    if size[0] % 2 or size[1] % 2:
        raise EtamError(
            f"SA-V size {size[0]}x{size[1]}: H.264 in yuv420p needs an even height and width"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, num_videos + 1):
        vid = f"sav_{i:06d}"
        frames, masks, first, _ = render_video(
            scene_for("sav", seed, i, size, num_objects, num_frames, True, style),
            num_frames,
        )
        write_mp4(out / f"{vid}.mp4", frames)
        rng = np.random.default_rng([seed, i])
        manual = sav_json(vid, masks, first, num_frames, "manual", rng)
        auto_k = [k for k, f in enumerate(first) if f == 0]
        auto = sav_json(vid, masks[:, auto_k], [0] * len(auto_k), num_frames, "auto", rng)
        (out / f"{vid}_manual.json").write_text(json.dumps(manual))
        (out / f"{vid}_auto.json").write_text(json.dumps(auto))
        paths.append(out / f"{vid}.mp4")
    return paths


def _write_frames(folder: Path, frames: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        (folder / f"{t:05d}.jpg").write_bytes(encode_jpeg(frame))


def write_sav_eval(
    out_dir: str | Path,
    num_videos: int = 2,
    seed: int = 0,
    size: tuple[int, int] = (128, 192),
    num_frames: int = 24,
    num_objects: int = 3,
    split: str = "val",
    style: SceneStyle = SceneStyle(),
) -> list[str]:
    """Writes SA-V val/test-style folders; returns the video ids.

    Each object gets a binary (0/255) PNG on every annotated frame from its first one.
    """
    out = Path(out_dir)
    vids = [f"sav_{split}_{i:03d}" for i in range(1, num_videos + 1)]
    for i, vid in enumerate(vids, start=1):
        frames, masks, first, _ = render_video(
            scene_for("sav_eval", seed, i, size, num_objects, num_frames, True, style),
            num_frames,
        )
        _write_frames(out / "JPEGImages_24fps" / vid, frames)
        for k, t0 in enumerate(first):
            obj_dir = out / "Annotations_6fps" / vid / f"{k:03d}"
            obj_dir.mkdir(parents=True, exist_ok=True)
            for t in range(t0, num_frames, ANNOTATION_STRIDE):
                Image.fromarray(masks[t, k].astype(np.uint8) * 255).save(obj_dir / f"{t:05d}.png")
    (out / f"sav_{split}.txt").write_text("".join(v + "\n" for v in vids))
    return vids


def davis_palette() -> list[int]:
    """The 256-colour PASCAL VOC / DAVIS palette, flattened RGB."""
    palette = []
    for i in range(256):
        rgb, c = [0, 0, 0], i
        for j in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - j)
            c >>= 3
        palette += rgb
    return palette


def write_davis(
    out_dir: str | Path,
    num_videos: int = 2,
    seed: int = 0,
    size: tuple[int, int] = (128, 192),
    num_frames: int = 12,
    num_objects: int = 3,
    style: SceneStyle = SceneStyle(),
) -> list[str]:
    """Writes DAVIS-2017-style folders (objects all present in frame 0); returns the video ids."""
    out = Path(out_dir)
    vids = [f"synth-{i:03d}" for i in range(1, num_videos + 1)]
    palette = davis_palette()
    for i, vid in enumerate(vids, start=1):
        frames, masks, _, _ = render_video(
            scene_for("davis", seed, i, size, num_objects, num_frames, False, style),
            num_frames,
        )
        _write_frames(out / "JPEGImages" / "480p" / vid, frames)
        ann = out / "Annotations" / "480p" / vid
        ann.mkdir(parents=True, exist_ok=True)
        for t in range(num_frames):
            # Visible masks are disjoint, so an index image holds them all.
            index = (masks[t] * np.arange(1, masks.shape[1] + 1)[:, None, None]).max(0, initial=0)
            img = Image.fromarray(index.astype(np.uint8), mode="P")
            img.putpalette(palette)
            img.save(ann / f"{t:05d}.png")
    sets = out / "ImageSets" / "2017"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / "val.txt").write_text("".join(v + "\n" for v in vids))
    return vids


def write_all(
    out_dir: str | Path,
    kinds: Sequence[str] = KINDS,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    count: int | None = None,
    num_frames: int | None = None,
    object_scale: float | None = None,
    motion: float | None = None,
) -> dict[str, Path]:
    """Writes each kind into ``out_dir/<kind>``; returns the folders.

    Args:
        out_dir: parent folder.
        kinds: subset of `KINDS`.
        seed: generator seed.
        size: ``(height, width)`` for every kind (default: each writer's own).
        count: images (SA-1B) or videos per kind (default: each writer's own).
        num_frames: frames per video at 24 fps (videos only; default: each writer's own).
        object_scale: object size factor (default 1: radii 10-22% of the shorter side).
        motion: object speed factor (videos only; default 1: up to 3% of the
            shorter side per frame along each axis).
    """
    writers = {
        "sa1b": write_sa1b,
        "sav": write_sav,
        "sav_eval": write_sav_eval,
        "davis": write_davis,
    }
    style = SceneStyle(
        1.0 if object_scale is None else object_scale, 1.0 if motion is None else motion
    )
    folders = {}
    for kind in kinds:
        options: dict = {} if size is None else {"size": tuple(size)}
        if count is not None:
            options["num_images" if kind == "sa1b" else "num_videos"] = count
        if num_frames is not None and kind != "sa1b":
            options["num_frames"] = num_frames
        folders[kind] = Path(out_dir) / kind
        writers[kind](folders[kind], seed=seed, style=style, **options)
    return folders
