"""Host batches -> global arrays on an 8-device CPU mesh; packed masks arrive unpacked."""

import grain
import jax
import numpy as np

from data_pipelines.clip_sampling import SamplingSpec
from data_pipelines.global_batch import batch_sharding, global_batch_shapes, to_global_batch
from data_pipelines.pipeline import PipelineSpec, SourceSpec, mixed_batches
from data_pipelines.transforms import AugmentSpec
from tests.data_pipelines.drawn_records import drawn_records


def test_packed_masks_equal_plain_masks_on_device():
    records = drawn_records(3, num_frames=2, num_objects=2, height=32, width=48) * 40
    plain, packed = (
        mixed_batches(
            [records],
            PipelineSpec(
                sources=(SourceSpec("sav", 1.0, 8, SamplingSpec(2, 3)),),
                augment=AugmentSpec(resolution=24),
                seed=4,
                pack_masks=p,
            ),
            grain.sharding.NoSharding(),
        )[1]
        for p in (False, True)
    )
    assert "masks" not in packed and packed["masks_packed"].shape == (8, 2, 3, 24, 3)
    np.testing.assert_array_equal(
        np.unpackbits(packed["masks_packed"], axis=-1).astype(bool), plain["masks"]
    )
    mesh = jax.make_mesh((4, 2), ("data", "tensor"), axis_types=(jax.sharding.AxisType.Auto,) * 2)
    glob = to_global_batch(packed, mesh)
    assert sorted(glob) == ["frame_valid", "frames", "masks", "obj_valid"]
    assert glob["masks"].dtype == bool and glob["masks"].sharding == batch_sharding(mesh)
    assert batch_sharding(mesh).spec == jax.sharding.PartitionSpec(("data",))  # no fsdp axis here
    np.testing.assert_array_equal(np.asarray(glob["masks"]), plain["masks"])
    np.testing.assert_array_equal(np.asarray(glob["frames"]), plain["frames"])
    shapes = global_batch_shapes(packed, mesh)
    assert {k: (v.shape, v.dtype) for k, v in shapes.items()} == {
        k: (glob[k].shape, glob[k].dtype) for k in glob
    }
