import numpy as np

from tf_sanity import visualize


def test_diverging_rgb_separates_signs():
    mask = np.zeros((4, 4, 1))
    mask[0, 0] = 2.0
    mask[1, 1] = -0.5
    mask[2, 2] = -1.0
    rgb = visualize.diverging_rgb(mask)
    np.testing.assert_allclose(rgb[0, 0], visualize.POSITIVE)   # largest positive: full red
    np.testing.assert_allclose(rgb[2, 2], visualize.NEGATIVE)   # largest negative: full blue
    np.testing.assert_allclose(rgb[1, 1], 0.5 * visualize.NEGATIVE)
    assert not rgb[3, 3].any()


def test_grid_has_one_axis_per_mask_plus_image_column(tmp_path):
    masks = np.random.default_rng(0).standard_normal((2, 3, 8, 8, 3))
    fig = visualize.grid(masks, ["Gradient", "GBP"], ["orig", "logits", "fc"], image=np.ones((8, 8, 3)))
    assert len(fig.axes) == 2 * 4
    fig.savefig(tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 1000
