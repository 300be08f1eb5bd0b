"""Regenerate ``tests/golden/partition_specs_<model>.json``.

The golden files pin the PartitionSpec of every model variable under the
2x2x2 (data, fsdp, tensor) test mesh; ``tests/training/test_sharding.py``
compares against them. Run only after an intended change to the rules table
or to a model's logical axis names, and review the diff:

    python scripts/regen_golden_partition_specs.py
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

GOLDEN_DIR = pathlib.Path(__file__).resolve().parent.parent / "tests" / "golden"
MODELS = ("efficienttam_ti", "efficienttam_s")
MESH_SHAPE = (2, 2, 2)


def partition_specs_json(model_name: str) -> dict[str, list]:
    """``{"a.b.kernel": [None, "fsdp", ...]}`` for every variable of ``model_name``."""
    from flax import nnx

    from etam_jax.models.build import build_model
    from etam_jax.training import sharding

    mesh = sharding.make_mesh(MESH_SHAPE)
    _, _, shardings = sharding.abstract_model_and_shardings(lambda: build_model(model_name), mesh)
    return {
        ".".join(map(str, path)): sharding.spec_to_json(var.get_value().spec)
        for path, var in nnx.to_flat_state(shardings)
    }


def main() -> None:
    sys.path.insert(0, str(GOLDEN_DIR.parent.parent))
    for name in MODELS:
        path = GOLDEN_DIR / f"partition_specs_{name}.json"
        specs = partition_specs_json(name)
        lines = [f"  {json.dumps(k)}: {json.dumps(specs[k])}" for k in sorted(specs)]
        path.write_text(
            "{\n" + ",\n".join(lines) + "\n}\n"
        )  # one variable per line: readable diffs
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
