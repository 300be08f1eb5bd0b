"""Output folders that exist only when complete (shared by `etam track` and `etam segment`)."""

from __future__ import annotations

import os
import shutil

from etam_jax.errors import EtamError


def check_out_dir(out: str) -> None:
    """Refuses an existing non-empty output folder (or a file) before any work."""
    if os.path.isfile(out) or (os.path.isdir(out) and os.listdir(out)):
        raise EtamError(f"--out {out}: already exists and is not empty; remove it or pick another")


class AtomicOutputDir:
    """Writes into ``OUT.partial-<pid>``; `commit` renames it to ``OUT``.

    Used as a context manager: leaving the block without `commit` (an error)
    removes the partial folder.
    """

    def __init__(self, out: str):
        self.out = os.path.abspath(out)
        self.tmp = f"{self.out}.partial-{os.getpid()}"

    def __enter__(self) -> AtomicOutputDir:
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp)
        return self

    def commit(self) -> None:
        if os.path.isdir(self.out):
            os.rmdir(self.out)  # empty, as check_out_dir made sure
        os.rename(self.tmp, self.out)

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
