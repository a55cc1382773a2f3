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
