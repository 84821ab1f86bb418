import numpy as np
import pytest
import torch

from core.inference.blending import TileBlender
from core.inference.tiling import blend_window, make_grid


@pytest.mark.parametrize(
    ("h", "w", "tile", "overlap"), [(150, 230, 64, 16), (97, 61, 40, 12), (70, 300, 64, 32)]
)
def test_blending_tile_by_tile_equals_blending_the_whole_volume(h, w, tile, overlap):
    grid = make_grid(h, w, tile, overlap)
    assert len(grid.ys) >= 2 and len(grid.xs) >= 2
    window = torch.from_numpy(blend_window(grid.tile_h, grid.tile_w))
    rng = np.random.default_rng(0)
    classes = 5
    blender = TileBlender(grid, classes, window)
    total = np.zeros((classes, h, w))
    weight = np.zeros((h, w))
    for y in grid.ys:
        for x in grid.xs:
            probs = rng.dirichlet(np.ones(classes), size=(grid.tile_h, grid.tile_w)).transpose(2, 0, 1)
            weighted = torch.from_numpy(probs).float() * window
            blender.add(weighted)
            total[:, y : y + grid.tile_h, x : x + grid.tile_w] += weighted.numpy()
            weight[y : y + grid.tile_h, x : x + grid.tile_w] += window.numpy()
    blended = total / weight
    expected = blended.argmax(axis=0)
    top2 = np.sort(blended, axis=0)[-2:]
    clear = top2[1] - top2[0] > 5e-3  # fp16 sums may only flip near-ties
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(blender.label[clear], expected[clear])
    assert (blender.label == expected).mean() > 0.99
    np.testing.assert_allclose(blender.confidence, blended.max(axis=0), atol=2e-3)
