"""SAM's two-way transformer (official ``sam.transformer.TwoWayTransformer``), channel-last.

Prompt tokens (queries) and image tokens (keys) update each other: per block,
token self-attention, tokens -> image cross-attention, an MLP on the tokens,
then image -> tokens cross-attention; a final tokens -> image attention ends it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import nnx
from jaxtyping import Array, Float

from etam_jax.models.attention import Attention
from etam_jax.models.layers import layer_norm
from etam_jax.models.mlp import MLP


def _attend_and_norm(
    attn: Attention,
    norm: nnx.LayerNorm,
    x: jax.Array,
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    key_mask: jax.Array | None = None,
) -> jax.Array:
    """``norm(x + attn(q, k, v))``, the residual step every sub-block uses."""
    return norm(x + attn(q, k, v, key_mask))


class TwoWayAttentionBlock(nnx.Module):
    """One block (official ``TwoWayAttentionBlock``; ReLU MLP, torch LayerNorm eps 1e-5)."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int = 2048,
        attention_downsample_rate: int = 2,
        skip_first_layer_pe: bool = False,
        *,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        def cross_attention() -> Attention:
            return Attention(
                embedding_dim,
                num_heads,
                downsample_rate=attention_downsample_rate,
                rngs=rngs,
                dtype=dtype,
            )

        self.self_attn = Attention(embedding_dim, num_heads, rngs=rngs, dtype=dtype)
        self.norm1 = layer_norm(embedding_dim, rngs=rngs, dtype=dtype)
        self.cross_attn_token_to_image = cross_attention()
        self.norm2 = layer_norm(embedding_dim, rngs=rngs, dtype=dtype)
        self.mlp = MLP(
            embedding_dim, mlp_dim, embedding_dim, 2, rngs=rngs, activation=jax.nn.relu, dtype=dtype
        )
        self.norm3 = layer_norm(embedding_dim, rngs=rngs, dtype=dtype)
        self.norm4 = layer_norm(embedding_dim, rngs=rngs, dtype=dtype)
        self.cross_attn_image_to_token = cross_attention()
        self.skip_first_layer_pe = skip_first_layer_pe

    def __call__(
        self,
        queries: Float[Array, "b n c"],
        keys: Float[Array, "b m c"],
        query_pe: Float[Array, "b n c"],
        key_pe: Float[Array, "#b m c"],
        token_mask: Array | None = None,
    ) -> tuple[Float[Array, "b n c"], Float[Array, "b m c"]]:
        """As ``TwoWayAttentionBlock.forward``; ``token_mask`` ``[B, N]`` (None: all
        tokens) drops tokens wherever they are attended to. Returns updated (queries, keys)."""
        if self.skip_first_layer_pe:
            # The first block replaces the tokens by their self-attention (no residual, no PE).
            queries = self.norm1(self.self_attn(queries, queries, queries, token_mask))
        else:
            q = queries + query_pe
            queries = _attend_and_norm(
                self.self_attn, self.norm1, queries, q, q, queries, token_mask
            )
        k = keys + key_pe
        queries = _attend_and_norm(
            self.cross_attn_token_to_image, self.norm2, queries, queries + query_pe, k, keys
        )
        queries = self.norm3(queries + self.mlp(queries))
        keys = _attend_and_norm(
            self.cross_attn_image_to_token,
            self.norm4,
            keys,
            keys + key_pe,
            queries + query_pe,
            queries,
            token_mask,
        )
        return queries, keys


class TwoWayTransformer(nnx.Module):
    """``depth`` two-way blocks, then a final token -> image attention.

    Official ``TwoWayTransformer``.
    """

    def __init__(
        self,
        depth: int,
        embedding_dim: int,
        num_heads: int,
        mlp_dim: int,
        attention_downsample_rate: int = 2,
        *,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        self.depth = depth
        self.embedding_dim = embedding_dim
        self.layers = nnx.List(
            [
                TwoWayAttentionBlock(
                    embedding_dim,
                    num_heads,
                    mlp_dim,
                    attention_downsample_rate,
                    skip_first_layer_pe=(i == 0),
                    rngs=rngs,
                    dtype=dtype,
                )
                for i in range(depth)
            ]
        )
        self.final_attn_token_to_image = Attention(
            embedding_dim,
            num_heads,
            downsample_rate=attention_downsample_rate,
            rngs=rngs,
            dtype=dtype,
        )
        self.norm_final_attn = layer_norm(embedding_dim, rngs=rngs, dtype=dtype)

    def __call__(
        self,
        image_embedding: Float[Array, "b h w c"],
        image_pe: Float[Array, "#b h w c"],
        point_embedding: Float[Array, "b n c"],
        token_mask: Array | None = None,
    ) -> tuple[Float[Array, "b n c"], Float[Array, "b hw c"]]:
        """As ``TwoWayTransformer.forward``, channel-last.

        Args:
          image_embedding: ``[B, h, w, C]`` image tokens to attend to.
          image_pe: ``[B or 1, h, w, C]`` their positional encoding.
          point_embedding: ``[B, N, C]`` prompt/output tokens (also their PE).
          token_mask: ``[B, N]`` bool, tokens that exist (None: all). A False
            token is never attended to, so the result for the others equals
            the official call on the True tokens alone (static-shape padding).

        Returns:
          queries ``[B, N, C]`` and keys ``[B, h*w, C]`` (row-major over h, w).
        """
        keys = rearrange(image_embedding, "b h w c -> b (h w) c")
        key_pe = rearrange(image_pe, "b h w c -> b (h w) c")
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe, token_mask)
        queries = _attend_and_norm(
            self.final_attn_token_to_image,
            self.norm_final_attn,
            queries,
            queries + point_embedding,
            keys + key_pe,
            keys,
        )
        return queries, keys
