"""Drivers for the tracker parity tests: the official model as its video
predictor drives it (one object per driver) and our batched tracker."""

import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from flax import nnx

from etam_jax.models.tracker import Tracker
from tests.official_reference import to_torch


class OfficialObject:
    """One object tracked by the official model, as its video predictor does."""

    def __init__(self, model, frames, storage):
        self.model, self.frames, self.storage = model, frames, storage
        self.size = frames[0].shape[1]
        self.outputs = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        self.tracked: set[int] = set()

    def _features(self, t):
        backbone = self.model.forward_image(to_torch(self.frames[t]).permute(0, 3, 1, 2))
        return self.model._prepare_backbone_features(backbone)[1:]

    def _stored(self, t):
        return self.outputs["cond_frame_outputs"].get(t) or self.outputs[
            "non_cond_frame_outputs"
        ].get(t)

    def prompt(self, t, points=None, mask=None):
        """add_new_points / add_new_mask, then propagate_in_video_preflight."""
        feats, pos, sizes = self._features(t)
        is_init = t not in self.tracked
        prev = None
        if points is not None and not is_init:
            prev = torch.clamp(self._stored(t)["pred_masks"], -32.0, 32.0)
        point_inputs = None
        if points is not None:
            point_inputs = {
                "point_coords": to_torch(points[0]),
                "point_labels": to_torch(points[1]),
            }
        mask_inputs = None if mask is None else to_torch(mask)
        out = self.model.track_step(
            t,
            is_init,
            feats,
            pos,
            sizes,
            point_inputs,
            mask_inputs,
            self.outputs,
            len(self.frames),
            False,
            run_mem_encoder=False,
            prev_sam_mask_logits=prev,
        )
        high = F.interpolate(
            out["pred_masks"],
            size=(self.size, self.size),
            mode="bilinear",
            align_corners=False,
        )
        mem, mem_pos = self.model._encode_new_memory(feats, sizes, high, is_mask_from_pts=True)
        key = "cond_frame_outputs" if is_init else "non_cond_frame_outputs"
        self.outputs[key][t] = self._compact(out, mem, mem_pos)
        return self.outputs[key][t]

    def propagate(self, t, reverse):
        """propagate_in_video on one frame (stored output on prompted frames)."""
        self.tracked.add(t)
        if t in self.outputs["cond_frame_outputs"]:
            return self.outputs["cond_frame_outputs"][t]
        feats, pos, sizes = self._features(t)
        out = self.model.track_step(
            t,
            False,
            feats,
            pos,
            sizes,
            None,
            None,
            self.outputs,
            len(self.frames),
            reverse,
            run_mem_encoder=True,
        )
        self.outputs["non_cond_frame_outputs"][t] = self._compact(
            out, out["maskmem_features"], out["maskmem_pos_enc"]
        )
        return self.outputs["non_cond_frame_outputs"][t]

    def _compact(self, out, mem, mem_pos):
        return {
            "maskmem_features": mem.to(self.storage),
            "maskmem_pos_enc": mem_pos,
            "pred_masks": out["pred_masks"],
            "obj_ptr": out["obj_ptr"],
        }


class OursBatched:
    """All objects in one bank; one tracker (one compiled propagate) for all frames."""

    def __init__(self, model, frames, num_objects, storage):
        self.tracker = Tracker(model, num_objects=num_objects, storage_dtype=storage)
        self.params = nnx.state(model)
        self.frames, self.num = frames, num_objects
        self.bank = self.tracker.empty_bank()
        self.tracked = [set() for _ in range(num_objects)]
        self.stored = [{} for _ in range(num_objects)]  # frame -> (low-res logits, ptr, is_cond)

    def _features(self, t):
        return self.tracker.encode_frame(self.params, jnp.asarray(self.frames[t]))

    def prompt(self, k, t, points=None, mask=None):
        feats = self._features(t)
        is_init = t not in self.tracked[k]
        prev = None if is_init or points is None else self.stored[k][t][0]
        rows = np.array([k])
        out = self.tracker.prompt(
            self.params,
            self.tracker.take_rows(self.bank, rows),
            feats,
            t,
            len(self.frames),
            False,
            points=points,
            mask=mask,
            prev_logits=prev,
            is_init_cond=is_init,
        )
        onehot = np.arange(self.num) == k
        low = jnp.broadcast_to(out.low_res_masks, (self.num,) + out.low_res_masks.shape[1:])
        ptr = jnp.broadcast_to(out.obj_ptr, (self.num, out.obj_ptr.shape[1]))
        self.bank = self.tracker.commit(
            self.params,
            self.bank,
            feats,
            t,
            low,
            ptr,
            jnp.full((self.num,), is_init),
            jnp.asarray(onehot),
        )
        self.stored[k][t] = (out.low_res_masks, out.obj_ptr, is_init)
        return out.low_res_masks[0], out.obj_ptr[0], self.memory(k, t)

    def propagate(self, t, started, reverse):
        """One frame for every started object; prompted (cond) frames keep their output."""
        cond = [t in s and s[t][2] for s in self.stored]
        active = np.array(started) & ~np.array(cond)
        self.bank, out = self.tracker.propagate(
            self.params,
            self.bank,
            self._features(t),
            t,
            len(self.frames),
            reverse,
            jnp.asarray(active),
        )
        results = []
        for k in range(self.num):
            if not started[k]:
                results.append(None)
                continue
            self.tracked[k].add(t)
            if cond[k]:
                low, ptr, _ = self.stored[k][t]
                results.append((low[0], ptr[0], self.memory(k, t)))
            else:
                self.stored[k][t] = (
                    out.low_res_masks[k : k + 1],
                    out.obj_ptr[k : k + 1],
                    False,
                )
                results.append((out.low_res_masks[k], out.obj_ptr[k], self.memory(k, t)))
        return results

    def memory(self, k, t):
        """The stored bf16 memory of object k at frame t, [HW, 64]."""
        bank = self.bank
        cond = np.asarray(bank.cond_valid[k]) & (np.asarray(bank.cond_frame[k]) == t)
        if cond.any():
            return bank.cond_feats[k, int(np.argmax(cond))]
        slot = t % self.tracker.num_recent
        assert bool(bank.recent_valid[k, slot]) and int(bank.recent_frame[k, slot]) == t
        return bank.recent_feats[k, slot]
