"""The intervals of a batch, one quantile call per shape, against the per-query computation."""

from __future__ import annotations

import pytest
import torch

from crux.oracle import oracle as oracle_module
from crux.oracle.oracle import INTERVAL, _intervals


def one(post: torch.Tensor) -> list[list[float]]:
    """What ask_many computed per query: the draws' quantiles (a mean alone: a point), NaN as [0, 1]."""
    drawn = post[1:] if len(post) > 1 else post
    bounds = torch.nanquantile(drawn, torch.tensor(INTERVAL, dtype=post.dtype), dim=0)
    bounds = torch.where(bounds.isnan(), torch.tensor([[0.0], [1.0]], dtype=bounds.dtype), bounds)
    return bounds.T.tolist()


@pytest.mark.parametrize("limit", [1 << 23, 7])  # one call per shape, or a few columns per call
def test_stacked_intervals_equal_one_by_one(monkeypatch, limit):
    monkeypatch.setattr(oracle_module, "_QUANTILE_CELLS", limit)
    gen = torch.Generator().manual_seed(0)
    posts = []
    for k in range(30):
        shape = [(6, 3), (1, 3), (6, 2), (11, 3)][k % 4]
        post = torch.rand(*shape, generator=gen, dtype=torch.float64)
        if k % 5 == 0 and shape[0] > 1:
            post[1:, 0] = torch.nan  # no draw could condition on the evidence
        if k % 7 == 0 and shape[0] > 2:
            post[2, 1] = torch.nan  # one draw could not
        posts.append((post, ("query", k)))
    got = _intervals(posts)
    assert sorted(got) == sorted(key for _, key in posts)
    for post, key in posts:
        assert got[key] == one(post), key
