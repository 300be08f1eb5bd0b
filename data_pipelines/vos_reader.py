"""Readers for evaluation layouts: DAVIS 2017 and SA-V val/test (JPEG folders + PNG masks).

- DAVIS: ``JPEGImages/<res>/<vid>/%05d.jpg``, ``Annotations/<res>/<vid>/%05d.png``
  (palette PNG: pixel value = object id, 0 background, 255 void),
  ``ImageSets/2017/<split>.txt``. Objects are those in the first annotation,
  as the DAVIS 2017 toolkit counts them.
- SA-V val/test: ``JPEGImages_24fps/<vid>/%05d.jpg``,
  ``Annotations_6fps/<vid>/<obj:03d>/%05d.png`` (one binary PNG per object and
  annotated frame), ``sav_<split>.txt``.

Both give `VOSVideo`s: frame paths plus per-frame, per-object boolean masks.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from PIL import Image

from etam_jax.errors import EtamError

DAVIS_VOID = 255


@dataclasses.dataclass(frozen=True)
class VOSVideo:
    """One evaluation video.

    Attributes:
        name: video id.
        frame_paths: every frame's JPEG, in order (index = frame number).
        object_ids: the annotated objects.
        mask_paths: ``{object_id: {frame: png}}`` where the object is annotated.
        indexed: True for DAVIS palette PNGs (mask = pixel == id), False for
            SA-V binary PNGs (mask = pixel > 0).
    """

    name: str
    frame_paths: tuple[Path, ...]
    object_ids: tuple[int, ...]
    mask_paths: dict[int, dict[int, Path]]
    indexed: bool

    @property
    def annotated_frames(self) -> list[int]:
        """Frames with ground truth for at least one object, sorted."""
        return sorted({t for frames in self.mask_paths.values() for t in frames})

    def first_frame(self, object_id: int) -> int:
        """The first annotated frame where the object has pixels (its prompt frame)."""
        for t in sorted(self.mask_paths[object_id]):
            if self.mask(object_id, t).any():
                return t
        raise EtamError(f"video {self.name}: object {object_id} has no pixels in any annotation")

    def mask(self, object_id: int, frame: int) -> np.ndarray:
        """bool ``[H, W]`` ground truth of one object on one annotated frame."""
        pixels = np.asarray(Image.open(self.mask_paths[object_id][frame]))
        return pixels == object_id if self.indexed else pixels > 0

    def masks(self, frame: int) -> dict[int, np.ndarray]:
        """``{object_id: bool [H, W]}`` for the objects annotated on ``frame``."""
        return {o: self.mask(o, frame) for o in self.object_ids if frame in self.mask_paths[o]}


def _frame_number(path: Path) -> int:
    if not path.stem.isdigit():
        raise EtamError(f"{path}: expected a frame file named like 00000{path.suffix}")
    return int(path.stem)


def _frames(folder: Path) -> tuple[Path, ...]:
    paths = sorted(folder.glob("*.jpg"), key=_frame_number)
    if not paths:
        raise EtamError(f"{folder}: no .jpg frames")
    if [_frame_number(p) for p in paths] != list(range(len(paths))):
        raise EtamError(f"{folder}: frames must be numbered 0..{len(paths) - 1} without gaps")
    return tuple(paths)


def _split_names(list_file: Path, folder: Path) -> list[str]:
    if list_file.exists():
        return [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    if not folder.is_dir():
        raise EtamError(f"{folder} does not exist (nor {list_file})")
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def read_davis(root: str | Path, split: str = "val", resolution: str = "480p") -> list[VOSVideo]:
    """DAVIS 2017 videos of ``split`` (from ``ImageSets/2017/<split>.txt``, else every folder)."""
    root = Path(root)
    videos = []
    for name in _split_names(
        root / "ImageSets" / "2017" / f"{split}.txt", root / "JPEGImages" / resolution
    ):
        pngs = sorted((root / "Annotations" / resolution / name).glob("*.png"), key=_frame_number)
        if not pngs:
            raise EtamError(f"{root / 'Annotations' / resolution / name}: no .png annotations")
        first = np.unique(np.asarray(Image.open(pngs[0])))
        ids = tuple(int(i) for i in first if i not in (0, DAVIS_VOID))
        per_frame = {_frame_number(p): p for p in pngs}
        videos.append(
            VOSVideo(
                name,
                _frames(root / "JPEGImages" / resolution / name),
                ids,
                {o: dict(per_frame) for o in ids},
                indexed=True,
            )
        )
    return videos


def read_sav_eval(root: str | Path, split: str = "val") -> list[VOSVideo]:
    """SA-V val/test videos (from ``sav_<split>.txt``, else every folder)."""
    root = Path(root)
    videos = []
    for name in _split_names(root / f"sav_{split}.txt", root / "JPEGImages_24fps"):
        ann = root / "Annotations_6fps" / name
        obj_dirs = sorted(
            (p for p in ann.glob("*") if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name)
        )
        if not obj_dirs:
            raise EtamError(f"{ann}: no per-object annotation folders (000, 001, ...)")
        mask_paths = {int(d.name): {_frame_number(p): p for p in d.glob("*.png")} for d in obj_dirs}
        videos.append(
            VOSVideo(
                name,
                _frames(root / "JPEGImages_24fps" / name),
                tuple(mask_paths),
                mask_paths,
                indexed=False,
            )
        )
    return videos


def read_vos(root: str | Path, split: str = "val") -> list[VOSVideo]:
    """Either layout, recognised by its folders."""
    root = Path(root)
    if (root / "JPEGImages_24fps").is_dir():
        return read_sav_eval(root, split)
    if (root / "JPEGImages").is_dir():
        return read_davis(root, split)
    raise EtamError(
        f"{root}: neither a DAVIS (JPEGImages/) nor an SA-V val/test (JPEGImages_24fps/) folder"
    )
