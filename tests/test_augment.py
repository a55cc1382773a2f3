"""Measurement nuisances drawn per structure (data.augment): keyed by index, the distributions asked for."""

from __future__ import annotations

import numpy as np
import pytest

from mamba_ctr.data.augment import Augmentation, coverage, shift_L
from mamba_ctr.physics import Grid


def _grid() -> Grid:
    L = np.arange(1, 121) * 0.025  # Bragg points at L = 1, 2, 3
    return Grid(h=np.arange(4), k=np.zeros(4, dtype=int), L=L, a=3.9, b=3.9, c_ref=3.9)


def _clean(n: int = 6) -> np.ndarray:
    grid = _grid()
    rng = np.random.default_rng(5)
    intensity = np.exp(rng.normal(4, 1.5, (n, *grid.shape)))
    intensity[..., grid.bragg] = 1e30
    return intensity


def test_nuisances_keyed_by_structure_index():
    grid, intensity = _grid(), _clean()
    augment = Augmentation()
    whole, whole_mask = augment(intensity, grid.L, grid.bragg, seed=3, first=10)
    tail, tail_mask = augment(intensity[2:], grid.L, grid.bragg, seed=3, first=12)
    np.testing.assert_array_equal(whole[2:], tail)
    np.testing.assert_array_equal(whole_mask[2:], tail_mask)
    other, _ = augment(intensity, grid.L, grid.bragg, seed=4, first=10)
    assert not np.array_equal(other, whole)
    assert not whole_mask[..., grid.bragg].any()  # Bragg points never count as measured


@pytest.mark.parametrize("counts", [1e2, 1e4])
def test_counting_noise_has_the_asked_level(counts):
    grid = _grid()
    intensity = np.full((200, *grid.shape), 7.0)
    augment = Augmentation(counts=(counts, counts), clean_fraction=0.0, rod_scale=0.0, background=(1e-9, 1e-9),
                           l_offset=0.0, full_coverage=1.0)
    noisy, measured = augment(intensity, grid.L, grid.bragg, seed=0, first=0)
    assert measured.sum() == 200 * 4 * (~grid.bragg).sum()
    relative = noisy[measured] / 7.0
    assert abs(relative.mean() - 1) < 0.01
    assert abs(relative.std() * np.sqrt(counts) - 1) < 0.05


def test_rod_scale_and_clean_fraction():
    grid = _grid()
    intensity = np.full((400, *grid.shape), 2.0)
    augment = Augmentation(clean_fraction=1.0, rod_scale=0.2, background=(1e-9, 1e-9), l_offset=0.0,
                           full_coverage=1.0)
    scaled, measured = augment(intensity, grid.L, grid.bragg, seed=1, first=0)
    per_rod = np.log(scaled[..., 0] / 2.0)  # one factor per rod, no counting noise: exact
    assert measured[..., ~grid.bragg].all()
    np.testing.assert_allclose(scaled[..., ~grid.bragg], scaled[..., :1] * np.ones((~grid.bragg).sum()),
                               rtol=1e-12)
    assert abs(per_rod.std() - 0.2) < 0.02


def test_shift_L_interpolates_ln_I_and_masks_near_bragg():
    grid = _grid()
    L = grid.L
    intensity = np.exp(np.tile(0.5 * L, (2, 1)))
    same, measured = shift_L(intensity, L, grid.bragg, 0.0)
    np.testing.assert_allclose(same[:, ~grid.bragg], intensity[:, ~grid.bragg])
    assert (measured == ~grid.bragg).all()
    shifted, measured = shift_L(intensity, L, grid.bragg, 0.01)
    np.testing.assert_allclose(shifted[measured], np.exp(0.5 * (np.tile(L, (2, 1)) + 0.01))[measured], rtol=1e-12)
    just_before = np.flatnonzero(grid.bragg) - 1
    assert not measured[:, just_before].any() and not measured[:, -1].any()


def test_coverage_like_measured_rods():
    grid = _grid()
    rng = np.random.default_rng(0)
    masks = np.stack([coverage(rng, grid.L, grid.bragg, 4) for _ in range(300)])
    kept = masks.mean(axis=-1)
    assert kept.min() >= 0.25 and 0.6 < kept.mean() < 0.95
    assert (~masks[..., 0]).mean() > 0.4  # late starts are common
    gap = np.abs(grid.L - 2.0) <= 0.02
    assert 0.3 < (~masks[..., gap]).any(axis=-1).mean() < 0.8  # a gap at a Bragg peak about half the time



def test_clean_measurements_are_the_simulated_rods():
    """A clean draw (probability clean_fraction) has no L offset, background or counting noise: with no rod
    scale and full coverage it returns the rods unchanged; the others all carry a background."""
    grid = _grid()
    rng = np.random.default_rng(3)
    intensity = np.exp(rng.normal(0, 2, (400, *grid.shape)))
    augment = Augmentation(clean_fraction=0.25, rod_scale=0.0, background=(1e-2, 1e-2), l_offset=0.01,
                           full_coverage=1.0, counts=(1e6, 1e6))
    drawn, measured = augment(intensity, grid.L, grid.bragg, seed=4, first=0)
    unchanged = np.array([np.array_equal(drawn[i][measured[i]], intensity[i][measured[i]]) for i in range(400)])
    assert 0.2 < unchanged.mean() < 0.3  # the clean ones, and only they
    assert measured[unchanged][..., ~grid.bragg].all()  # no L offset: every point off the Bragg peaks measured


def test_options_from_the_command_line_or_a_toml_file():
    drawn = Augmentation.from_options({"rod_scale": "0", "full_coverage": 1, "counts": "1e3:1e6",
                                       "background": [1e-5, 1e-3]})
    assert drawn == Augmentation(rod_scale=0.0, full_coverage=1.0, counts=(1e3, 1e6), background=(1e-5, 1e-3))
    assert Augmentation.from_options({}) == Augmentation()


@pytest.mark.parametrize(("options", "message"), [
    ({"rodscale": "0"}, "unknown augmentation option.*rodscale.*known: counts"),
    ({"counts": "1e3"}, "counts must be LOW:HIGH"),
    ({"counts": "1e6:1e3"}, "0 < LOW ≤ HIGH"),
    ({"background": "0:1e-3"}, "0 < LOW ≤ HIGH"),
    ({"rod_scale": "wide"}, "rod_scale must be a number, got 'wide'"),
    ({"rod_scale": True}, "rod_scale must be a number"),
    ({"clean_fraction": "1.5"}, r"clean_fraction must be a probability in \[0, 1\], got 1.5"),
    ({"l_offset": "-0.01"}, "l_offset must be ≥ 0"),
])
def test_bad_options_are_one_clear_error(options, message):
    from mamba_ctr.errors import InputError

    with pytest.raises(InputError, match=message):
        Augmentation.from_options(options)


def test_train_checks_its_augmentation_before_any_work(tmp_path, capsys):
    pytest.importorskip("torch")
    from mamba_ctr.cli import main

    base = ["train", "--stream", "paper-4L", "--arch", "rods", "--out", str(tmp_path / "run")]
    free = ["--input", "scale-free-global", "--augment"]
    assert main([*base, *free, "--augmentation", "rod_scale=0,coverage=1"]) == 2
    assert "unknown augmentation option(s) coverage" in capsys.readouterr().err
    assert main([*base, "--input", "scale-free", "--augmentation", "rod_scale=0"]) == 2
    assert "add --augment" in capsys.readouterr().err
    assert main([*base, "--augment"]) == 2  # the standardised input cannot take masked points
    assert "scale-free input" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
