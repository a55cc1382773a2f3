"""The networks of mamba_ctr.nn: parameter counts, shapes, FLOPs, checkpoints."""
import pytest

torch = pytest.importorskip("torch")

from mamba_ctr.nn import PaperUNet1d, RodsUNet1d, build, count_parameters  # noqa: E402
from mamba_ctr.nn.flops import count_flops, example_input  # noqa: E402


def test_paper_unet_parameters_and_shape():
    net = PaperUNet1d()
    assert count_parameters(net) == 2_592_129
    out = net(torch.randn(2, 1, 3840))
    assert out.shape == (2, 1, 3840)


def test_rods_unet_parameters_and_shape():
    net = RodsUNet1d()
    n = count_parameters(net)
    print(f"RodsUNet1d() default: {n} parameters")
    assert 0.4e6 < n < 1.0e6
    net.eval()
    assert net(torch.randn(3, 16, 240)).shape == (3, 32, 240)
    small = RodsUNet1d(rods=4, widths=(8, 16), kernel=5)
    assert small(torch.randn(2, 4, 37)).shape == (2, 8, 37)  # lengths that do not divide by 2 work too


def _reach(net: torch.nn.Module, n_L: int = 240) -> int:
    """How far (in L points) the output at L index 0 depends on the input: the last input index with a
    non-zero gradient (max-pooling passes gradient to one of each pair, so all 16 rods are perturbed)."""
    net.eval()
    x = torch.randn(1, net.rods, n_L, requires_grad=True)
    net(x)[0, :, 0].sum().backward()
    return int((x.grad.abs().amax(dim=(0, 1)) > 0).nonzero().max())


def test_rods_unet_bottleneck_dilations_widen_the_receptive_field():
    torch.manual_seed(0)
    plain, dilated = RodsUNet1d(), RodsUNet1d(bottleneck_dilations=(1, 2, 4, 8))
    # two more conv (weights + bias) + batch-norm (scale + shift) layers in the bottleneck
    assert count_parameters(dilated) == count_parameters(plain) + 2 * (256 * 256 * 3 + 256 + 2 * 256)
    assert dilated(torch.randn(2, 16, 240)).shape == (2, 32, 240)
    # plain: 2 convs per level at strides 1, 2, 4 → about 25 L points; dilated bottleneck (stride 4): 4·(1+2+4+8)
    # more on each path → about 77, a third of the rod
    assert 15 < _reach(plain) < 35
    assert 70 < _reach(dilated) < 90
    with pytest.raises(ValueError, match="bottleneck_dilations"):
        RodsUNet1d(bottleneck_dilations=(1, 0))


def test_bad_input_and_arch():
    with pytest.raises(ValueError, match="unknown architecture"):
        build("transformer")
    with pytest.raises(ValueError):
        RodsUNet1d()(torch.zeros(1, 3, 240))
    with pytest.raises(ValueError):
        PaperUNet1d()(torch.zeros(1, 1, 3841))


def test_flops():
    paper = PaperUNet1d()
    forward = count_flops(paper, example_input(paper, 1))
    assert forward == pytest.approx(8.7e9, rel=0.1)
    rods = RodsUNet1d()
    x = example_input(rods, 2)
    rods_forward, rods_train = count_flops(rods, x), count_flops(rods, x, backward=True)
    print(f"paper forward {forward / 1e9:.3f} GFLOP; rods forward {rods_forward / 1e9:.3f}, "
          f"forward+backward {rods_train / 1e9:.3f} GFLOP per sample")
    assert rods_forward < forward / 30
    assert 2 * rods_forward < rods_train < 4 * rods_forward


def _normalisation(grid):
    import numpy as np

    from mamba_ctr.data.torch_data import Normalisation

    shape = grid.shape
    rng = np.random.default_rng(0)
    return Normalisation(0.5, 2.0, rng.normal(size=shape), rng.uniform(1, 2, shape), rng.normal(size=shape),
                         rng.uniform(1, 2, shape))


def test_checkpoint_round_trip_and_refusals(tmp_path):
    import json

    from mamba_ctr import presets
    from mamba_ctr.nn.checkpoint import load_checkpoint, save_checkpoint

    preset = presets.get("paper-12L")
    grid = preset.grid
    norm = _normalisation(grid)
    kwargs = {"rods": 16, "widths": [8, 16], "kernel": 3}
    model = build("rods", **kwargs)
    history = [{"epoch": 1, "val_mae": 0.5}]
    meta = save_checkpoint(tmp_path / "ck", {"both": model}, arch="rods", arch_kwargs=kwargs, grid=grid,
                           normalisation=norm, preset=preset.to_dict(), history=history)
    stored = json.loads(meta.read_text())
    assert stored["architecture"] == "rods" and stored["history"] == history
    assert stored["preset"]["name"] == "paper-12L" and "mamba_ctr_version" in stored
    loaded = load_checkpoint(tmp_path / "ck.json", grid=grid, preset="paper-12L")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.models["both"].state_dict()[key], value)
    assert loaded.grid.same_as(grid)
    assert loaded.normalisation.X_std == 2.0
    assert (loaded.normalisation.U_re_mean == norm.U_re_mean).all()
    load_checkpoint(tmp_path / "ck", preset=preset)
    with pytest.raises(ValueError, match="another grid"):
        load_checkpoint(tmp_path / "ck", grid=_other_grid(grid))
    with pytest.raises(ValueError, match="preset"):
        load_checkpoint(tmp_path / "ck", preset="paper-24L")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing")


def _other_grid(grid):
    from mamba_ctr.physics import Grid

    return Grid(h=grid.h, k=grid.k, L=grid.L[:-4], a=grid.a, b=grid.b, c_ref=grid.c_ref)


def test_checkpoint_paper_twins_pickle_free(tmp_path):
    from mamba_ctr import presets
    from mamba_ctr.nn import checkpoint

    grid = presets.get("paper-12L").grid
    twins = {"real": PaperUNet1d(), "imag": PaperUNet1d()}
    checkpoint.save_checkpoint(tmp_path / "twins", twins, arch="paper", arch_kwargs={}, grid=grid,
                               normalisation=_normalisation(grid))
    loaded = checkpoint.load_checkpoint(tmp_path / "twins")
    assert set(loaded.models) == {"real", "imag"}
    x = torch.randn(1, 1, 3840)
    with torch.no_grad():
        assert torch.equal(loaded.models["imag"](x), twins["imag"](x))
