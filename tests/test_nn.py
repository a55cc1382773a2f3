"""The networks of mamba_ctr.nn: parameter counts, shapes, FLOPs, checkpoints."""
import pytest

torch = pytest.importorskip("torch")

from mamba_ctr.errors import InputError  # noqa: E402
from mamba_ctr.nn import PaperTwinUNet, PaperUNet1d, RodsUNet1d, build, count_parameters  # noqa: E402
from mamba_ctr.nn.flops import count_flops, example_input  # noqa: E402


def test_paper_unet_parameters_and_shape():
    net = PaperUNet1d()
    assert count_parameters(net) == 2_592_129
    out = net(torch.randn(2, 1, 3840))
    assert out.shape == (2, 1, 3840)


def test_paper_twins_are_one_module_of_two_paper_networks():
    torch.manual_seed(0)
    twins = PaperTwinUNet(base=8)
    assert count_parameters(twins) == 2 * count_parameters(PaperUNet1d(base=8))
    x = torch.randn(3, 16, 240)
    with torch.no_grad():
        y = twins(x)
        assert y.shape == (3, 2, 16, 240) and twins.targets == ("real", "imag")
        # the paper's reshape inside: each network sees the rod-major flattened input
        assert torch.equal(y[:, 1], twins.imag(x.reshape(3, 1, 3840)).reshape(3, 16, 240))
        assert PaperTwinUNet(targets=["imag"], base=8)(x).shape == (3, 1, 16, 240)
    with pytest.raises(ValueError, match="targets"):
        PaperTwinUNet(targets=["real", "real"])


def test_rods_unet_parameters_and_shape():
    net = RodsUNet1d()
    n = count_parameters(net)
    print(f"RodsUNet1d() default: {n} parameters")
    assert 0.4e6 < n < 1.0e6
    net.eval()
    assert net(torch.randn(3, 16, 240)).shape == (3, 2, 16, 240)  # Re, Im of every rod
    small = RodsUNet1d(rods=4, widths=(8, 16), kernel=5)
    assert small(torch.randn(2, 4, 37)).shape == (2, 2, 4, 37)  # lengths that do not divide by 2 work too


def _reach(net: torch.nn.Module, n_L: int = 240) -> int:
    """How far (in L points) the output at L index 0 depends on the input: the last input index with a
    non-zero gradient (max-pooling passes gradient to one of each pair, so all 16 rods are perturbed)."""
    net.eval()
    x = torch.randn(1, net.rods, n_L, requires_grad=True)
    net(x)[0, :, :, 0].sum().backward()
    return int((x.grad.abs().amax(dim=(0, 1)) > 0).nonzero().max())


def test_rods_unet_bottleneck_dilations_widen_the_receptive_field():
    torch.manual_seed(0)
    plain, dilated = RodsUNet1d(), RodsUNet1d(bottleneck_dilations=(1, 2, 4, 8))
    # two more conv (weights + bias) + batch-norm (scale + shift) layers in the bottleneck
    assert count_parameters(dilated) == count_parameters(plain) + 2 * (256 * 256 * 3 + 256 + 2 * 256)
    assert dilated(torch.randn(2, 16, 240)).shape == (2, 2, 16, 240)
    # plain: 2 convs per level at strides 1, 2, 4 → about 25 L points; dilated bottleneck (stride 4): 4·(1+2+4+8)
    # more on each path → about 77, a third of the rod
    assert 15 < _reach(plain) < 35
    assert 70 < _reach(dilated) < 90
    with pytest.raises(ValueError, match="bottleneck_dilations"):
        RodsUNet1d(bottleneck_dilations=(1, 0))


def test_bad_input_and_arch():
    with pytest.raises(InputError, match="unknown architecture"):
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
    meta = save_checkpoint(tmp_path / "ck", model, arch="rods", arch_kwargs=kwargs, grid=grid,
                           normalisation=norm, preset=preset.to_dict(), history=history)
    stored = json.loads(meta.read_text())
    assert stored["architecture"] == "rods" and stored["history"] == history
    assert stored["preset"]["name"] == "paper-12L" and "mamba_ctr_version" in stored
    loaded = load_checkpoint(tmp_path / "ck.json", grid=grid, preset="paper-12L")
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value)
    assert not loaded.model.training and stored["targets"] == ["real", "imag"] and stored["format_version"] == 2
    assert loaded.grid.same_as(grid)
    assert loaded.normalisation.X_std == 2.0
    assert (loaded.normalisation.U_re_mean == norm.U_re_mean).all()
    load_checkpoint(tmp_path / "ck", preset=preset)
    with pytest.raises(InputError, match="another grid"):
        load_checkpoint(tmp_path / "ck", grid=_other_grid(grid))
    with pytest.raises(InputError, match="preset"):
        load_checkpoint(tmp_path / "ck", preset="paper-24L")
    with pytest.raises(InputError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing")


def _other_grid(grid):
    from mamba_ctr.physics import Grid

    return Grid(h=grid.h, k=grid.k, L=grid.L[:-4], a=grid.a, b=grid.b, c_ref=grid.c_ref)


def _as_format_1(stem, networks: dict, optimizers: dict | None = None) -> None:
    """Rewrite the checkpoint `stem` as the code before the one-module twins wrote it: the weights of each network
    under "<name>.", metadata targets = the names, format_version 1, one optimizer state per network."""
    import json

    meta = json.loads(stem.with_suffix(".json").read_text())
    for old in stem.parent.glob(stem.name + ".*"):
        old.unlink()
    tensors = {f"{name}.{key}": value for name, net in networks.items() for key, value in net.state_dict().items()}
    torch.save(tensors, stem.with_suffix(".pt"))
    if optimizers:
        torch.save({name: o.state_dict() for name, o in optimizers.items()}, stem.with_suffix(".optim.pt"))
    meta.update(format_version=1, targets=list(networks), weights=stem.name + ".pt")
    stem.with_suffix(".json").write_text(json.dumps(meta))


def _adam_after_one_step(net: torch.nn.Module, x: torch.Tensor) -> torch.optim.Optimizer:
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(x).abs().mean().backward()
    optimizer.step()
    return optimizer


@pytest.mark.parametrize("names", [["real", "imag"], ["imag"]])
def test_format_1_paper_twins_load_into_one_module(tmp_path, names):
    from mamba_ctr import presets
    from mamba_ctr.nn import checkpoint

    grid = presets.get("paper-12L").grid
    torch.manual_seed(1)
    networks = {name: PaperUNet1d(base=4) for name in names}  # the old code's heads: one network per target
    flat = torch.randn(2, 1, 3840)
    optimizers = {name: _adam_after_one_step(net, flat) for name, net in networks.items()}
    stem = tmp_path / "old"
    checkpoint.save_checkpoint(stem, PaperTwinUNet(names, base=4), arch="paper", arch_kwargs={"base": 4}, grid=grid,
                               normalisation=_normalisation(grid))
    _as_format_1(stem, networks, optimizers)
    loaded = checkpoint.load_checkpoint(stem, optimizer_state=True)
    assert loaded.model.targets == tuple(names) and loaded.metadata["format_version"] == 2
    with torch.no_grad():
        y = loaded.model(flat.reshape(2, 16, 240))
        for i, name in enumerate(names):
            assert torch.equal(y[:, i], networks[name].eval()(flat).reshape(2, 16, 240))
    # one optimizer over the module continues each network's Adam state
    optimizer = torch.optim.Adam(loaded.model.parameters(), lr=1e-3)
    optimizer.load_state_dict(loaded.optimizer_state)
    before = [optimizers[name].state[p]["exp_avg"] for name in names for p in networks[name].parameters()]
    for parameter, exp_avg in zip(loaded.model.parameters(), before, strict=True):
        assert torch.equal(optimizer.state[parameter]["exp_avg"], exp_avg)


def test_format_1_rods_checkpoint_loads(tmp_path):
    from mamba_ctr import presets
    from mamba_ctr.nn import checkpoint

    grid = presets.get("paper-12L").grid
    net = RodsUNet1d(widths=(8, 16)).eval()
    stem = tmp_path / "old"
    checkpoint.save_checkpoint(stem, net, arch="rods", arch_kwargs={"widths": [8, 16]}, grid=grid,
                               normalisation=_normalisation(grid))
    _as_format_1(stem, {"both": net})
    x = torch.randn(2, 16, 240)
    with torch.no_grad():
        assert torch.equal(checkpoint.load_checkpoint(stem).model(x), net(x))


def test_shipped_model_predicts_as_before_the_one_module_change():
    """The standardised paper-12L model's (format 1, float16; shipped as paper-12L until 2026-12-02) U for two
    fixed intensities, as the code before the change gave it (tests/data/paper12L_shipped_predictions.npz;
    tolerance for other CPUs' float32 convolutions)."""
    import pathlib

    import numpy as np

    from mamba_ctr import models
    from mamba_ctr.nn.predict import predict_field

    stored = np.load(pathlib.Path(__file__).parent / "data" / "paper12L_shipped_predictions.npz")
    expected = stored["U"].astype(np.complex128)
    U = predict_field(models.load("paper-12L-standardised"), stored["intensity"])
    np.testing.assert_allclose(U, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_shipped_paper12L_predicts_as_when_it_was_shipped():
    """The shipped paper-12L model (scale-free-global input, float16) gives the U it gave when it was shipped
    (tests/data/paper12L_predictions.npz, for the intensities of paper12L_shipped_predictions.npz), on any scale."""
    import pathlib

    import numpy as np

    from mamba_ctr import models
    from mamba_ctr.nn.predict import predict_field

    here = pathlib.Path(__file__).parent / "data"
    intensity = np.load(here / "paper12L_shipped_predictions.npz")["intensity"]
    expected = np.load(here / "paper12L_predictions.npz")["U"].astype(np.complex128)
    checkpoint = models.load("paper-12L")
    assert checkpoint.metadata["train_config"]["input"] == "scale-free-global"
    for factor in (1.0, 3e-7):
        np.testing.assert_allclose(predict_field(checkpoint, intensity * factor), expected, rtol=1e-4,
                                   atol=1e-5 * np.abs(expected).max())


def test_checkpoint_paper_twins_pickle_free(tmp_path):
    from mamba_ctr import presets
    from mamba_ctr.nn import checkpoint

    grid = presets.get("paper-12L").grid
    twins = PaperTwinUNet(base=8).eval()
    checkpoint.save_checkpoint(tmp_path / "twins", twins, arch="paper", arch_kwargs={"base": 8}, grid=grid,
                               normalisation=_normalisation(grid))
    loaded = checkpoint.load_checkpoint(tmp_path / "twins")
    assert loaded.model.targets == ("real", "imag")
    x = torch.randn(1, 16, 240)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), twins(x))
