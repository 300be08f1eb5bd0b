"""Variable kinds beyond ``nnx.Param``."""

from flax import nnx


class Buffer(nnx.Variable):
    """A constant stored in the official state dict but never trained.

    Mirrors a torch ``register_buffer`` (e.g. the prompt encoder's random
    Fourier matrix): converted with the weights, excluded from parameter
    counts and from the optimizer.
    """
