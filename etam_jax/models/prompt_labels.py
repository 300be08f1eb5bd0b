"""The point labels of SAM's prompt encoder, for every part that builds prompts.

Inference (both predictors), training's prompt simulation and the prompt
encoder itself read them from here. The box is two points labelled
``BOX_TOP_LEFT`` and ``BOX_BOTTOM_RIGHT`` (how the official predictors and
``SAM2Train`` pass boxes); ``PAD`` ("not a point") pads a batch of clicks to a
static length and is embedded as ``not_a_point_embed`` without a positional part.
"""

from __future__ import annotations

PAD = -1
NEGATIVE = 0
POSITIVE = 1
BOX_TOP_LEFT = 2
BOX_BOTTOM_RIGHT = 3
BOX = (BOX_TOP_LEFT, BOX_BOTTOM_RIGHT)
