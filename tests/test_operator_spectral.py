"""Spectral layers: exact low-pass on even and odd grids, resolution invariance, model shapes."""

import math

import pytest
import torch

from seisfno import SeisfnoError
from seisfno.operator import FNO2d, FNO3d, SpectralConv2d, SpectralConv3d, lowpass

torch.set_num_threads(1)


def _identity2d(layer):
    with torch.no_grad():
        layer.weight.zero_()
        for c in range(layer.in_channels):
            layer.weight[:, :, c, 0, c] = 1.0  # real part 1 on the diagonal, every mode


@pytest.mark.parametrize("shape", [(16, 16), (17, 15), (15, 20), (9, 9)])
def test_identity_weights_are_exact_lowpass_2d(shape):
    torch.manual_seed(0)
    layer = SpectralConv2d(3, 3, 4, 4)
    _identity2d(layer)
    x = torch.randn(2, 3, *shape, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x.float())
    torch.testing.assert_close(y.double(), lowpass(x, 4), atol=1e-5, rtol=0)
    with torch.no_grad():  # the channels-last layout is the same layer
        y_cl = layer(x.float().permute(0, 2, 3, 1), channels_last=True).permute(0, 3, 1, 2)
    torch.testing.assert_close(y_cl, y, atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(10, 10, 8), (11, 9, 7)])
def test_identity_weights_are_exact_lowpass_3d(shape):
    layer = SpectralConv3d(2, 2, 3, 3, 3)
    with torch.no_grad():
        layer.weight.zero_()
        for c in range(2):
            layer.weight[c, c] = 1.0
    x = torch.randn(1, 2, *shape, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x.float())
    torch.testing.assert_close(y.double(), lowpass(x, 3, ndim=3), atol=1e-5, rtol=0)


def _bandlimited(n):
    t = torch.arange(n, dtype=torch.float64) * 2 * math.pi / n
    z, x = torch.meshgrid(t, t, indexing="ij")
    return (torch.sin(3 * x + 2 * z) + torch.cos(5 * z) + 0.5 * torch.sin(x - 4 * z))[None, None]


def test_resolution_invariance():
    torch.manual_seed(1)
    layer = SpectralConv2d(1, 2, 6, 6).double()
    with torch.no_grad():
        y64, y128 = layer(_bandlimited(64)), layer(_bandlimited(128))
    torch.testing.assert_close(y128[..., ::2, ::2], y64, atol=1e-10, rtol=0)


def test_too_small_grid_is_an_error():
    layer = SpectralConv2d(1, 1, 8, 8)
    with pytest.raises(SeisfnoError, match="too small"):
        layer(torch.zeros(1, 1, 10, 20))


def test_model_shapes():
    x = torch.randn(2, 4, 17, 15)
    assert FNO2d(nt_out=6, width=8, modes=4, n_layers=2)(x).shape == (2, 6, 17, 15)
    net3 = FNO3d(nt_out=6, width=4, modes=3, n_layers=2, projection=8)
    assert net3(x).shape == (2, 6, 17, 15)


@pytest.mark.parametrize("norm", ["none", "group"])
def test_fno2d_layouts_agree(norm):
    """The CPU (channels-last) and GPU (channels-first) layouts compute the same function."""
    torch.manual_seed(2)
    net = FNO2d(nt_out=5, width=8, modes=4, n_layers=2, norm=norm).double()
    x = torch.randn(2, 4, 17, 14, dtype=torch.float64)
    out = []
    for cl in (True, False):
        net.channels_last = cl
        net.zero_grad()
        y = net(x)
        y.square().sum().backward()
        out.append((y.detach(), [p.grad.clone() for p in net.parameters()]))
    torch.testing.assert_close(out[0][0], out[1][0], atol=1e-12, rtol=0)
    for g_cl, g in zip(out[0][1], out[1][1], strict=True):
        torch.testing.assert_close(g_cl, g, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_output_scale_enters_the_last_gemm(channels_last, bias):
    """``FNO2d(x, scale=s)`` is ``s * FNO2d(x)``, gradients included; ``decoded`` uses it, and
    decodes a network without it (``paper3d``) by a multiplication."""
    from seisfno.operator.encoding import Normalization, decoded

    torch.manual_seed(3)
    net = FNO2d(nt_out=5, width=8, modes=4, n_layers=2).double()
    net.channels_last = channels_last
    if not bias:
        net.project[-1].bias = None
    s = 3.7e-9
    x = torch.randn(2, 4, 17, 14, dtype=torch.float64, requires_grad=True)
    ref = net(x) * s
    (gref,) = torch.autograd.grad(ref.square().sum(), x)
    y = net(x, scale=s)
    (g,) = torch.autograd.grad(y.square().sum(), x)
    tol = {"rtol": 1e-12, "atol": 1e-12 * float(ref.abs().max())}  # round-off only
    torch.testing.assert_close(y, ref, **tol)
    torch.testing.assert_close(g, gref, rtol=1e-10, atol=1e-10 * float(gref.abs().max()))
    norm = Normalization(3000.0, 300.0, 2000.0, 4000.0, s)
    scales = []
    net.register_forward_pre_hook(lambda m, args, kw: scales.append(kw.get("scale")),
                                  with_kwargs=True)
    torch.testing.assert_close(decoded(net, x, norm), ref, **tol)
    # a wrapper (as torch.compile's) is called with the scale when its module takes one
    torch.testing.assert_close(decoded(lambda x, **kw: net(x, **kw), x, norm, module=net), ref,
                               **tol)
    assert scales == [s, s]
    net3 = FNO3d(nt_out=5, width=4, modes=3, n_layers=1, projection=8).double()
    torch.testing.assert_close(decoded(net3, x, norm), net3(x) * s, rtol=0, atol=0)


@pytest.mark.parametrize("impl,channels_last", [("fftx", False),
                                                 ("matmul", False), ("fft", False),
                                                 ("fft", True)])
@pytest.mark.parametrize("size", [(24, 24, 6, 6), (23, 20, 5, 4), (11, 11, 6, 6),
                                  (16, 15, 5, 4, 4, 32)])  # 4 x 32: padded mix rows
@pytest.mark.parametrize("bias", [True, False])
def test_fast_spectral_paths_match_the_einsum_reference(impl, channels_last, size, bias):
    """Every implementation of the layer is the complex-einsum layer, values and gradients,
    with and without the pointwise branch (float64, so round-off of the DFT matrices is all
    that differs)."""
    from seisfno.operator.spectral import Pointwise

    n1, n2, m1, m2, batch, width = (*size, 2, 3)[:6]
    torch.manual_seed(3)
    layer = SpectralConv2d(width, 5, m1, m2)
    layer.double()
    pw = Pointwise(width, 5, bias=bias).double()
    x = torch.randn(batch, width, n1, n2, dtype=torch.float64, requires_grad=True)
    xin = x.permute(0, 2, 3, 1) if channels_last else x
    out = {}
    for name in (impl, "einsum"):
        layer.impl = name
        y = layer(xin, channels_last=channels_last)
        out[name] = (y, *torch.autograd.grad((y * torch.cos(y)).sum(), (x, layer.weight)))
        y = layer(xin, channels_last=channels_last, pointwise=pw)
        params = (x, layer.weight, pw.weight) + ((pw.bias,) if bias else ())
        out[name] += (y, *torch.autograd.grad((y * torch.cos(y)).sum(), params))
    for a, b in zip(out[impl], out["einsum"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12 * float(b.detach().abs().max()))


@pytest.mark.parametrize("impl", ["auto", "matmul"])
@pytest.mark.parametrize("size", [(24, 24, 6, 6), (23, 20, 5, 4)])
def test_frozen_weights_mix_by_blocks_and_match_the_reference(size, impl):
    """With the weights frozen (FWI) the channel mix runs on cached 2x2 real blocks: values and
    input gradients are the einsum layer's, and the blocks follow any change of the weights."""
    n1, n2, m1, m2 = size
    torch.manual_seed(4)
    layer = SpectralConv2d(3, 5, m1, m2).double().requires_grad_(False)
    layer.impl = impl
    ref = SpectralConv2d(3, 5, m1, m2).double().requires_grad_(False)
    ref.impl = "einsum"
    x = torch.randn(2, 3, n1, n2, dtype=torch.float64, requires_grad=True)
    for _ in range(2):  # before and after the weights change
        ref.load_state_dict(layer.state_dict())
        out = [(y, *torch.autograd.grad((y * torch.cos(y)).sum(), x))
               for y in (layer(x), ref(x))]
        assert layer._blocks is not None  # the block path ran
        for a, b in zip(*out, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12 * float(b.abs().max()))
        with torch.no_grad():
            layer.weight.mul_(-0.5)  # in place, as an optimizer or load_state_dict would
    layer.requires_grad_(True)
    assert layer._frozen_blocks(x.dtype) is None  # trainable weights mix without blocks


@pytest.mark.parametrize("frozen,x_grad,pointwise", [
    (False, True, "trainable"), (True, True, "trainable"), (False, False, "trainable"),
    (True, True, "frozen"), (False, True, "none"), (True, True, "no bias")])
def test_fftx_layer_passes_gradcheck(frozen, x_grad, pointwise):
    """Finite differences of the hand-written forward and backward (:class:`_SpectralFFTx`) in
    float64: input, weight (trainable) and the pointwise branch's weight and bias (trainable,
    frozen, none, or a weight without bias), the input also without a gradient; frozen
    weights mix by the 2x2 blocks. 128 channels of one sample: the mix's buffers get their
    padding row."""
    from seisfno.operator.spectral import _mode_rows, _SpectralFFTx, mix_blocks

    torch.manual_seed(6)
    cin, cout, m1, m2 = 128, 2, 3, 2
    assert _mode_rows(2, cin, 2 * cout) == 3 and _mode_rows(1, 2 * cin, 2 * cout) == 2
    w = torch.randn(2 * m1 - 1, m2, cin, 2, cout, dtype=torch.float64,
                    requires_grad=not frozen)
    x = torch.randn(1, cin, 6, 5, dtype=torch.float64, requires_grad=x_grad)
    pw = (None, None) if pointwise == "none" else tuple(
        torch.randn(*shape, dtype=torch.float64, requires_grad=pointwise != "frozen")
        for shape in ((cout, cin), (cout,)))
    if pointwise == "no bias":
        pw = (pw[0], None)
    blocks = mix_blocks(w.detach()) if frozen else None
    args = (x, w, *pw, m1, blocks)
    assert torch.autograd.gradcheck(_SpectralFFTx.apply, args)


def test_default_layer_on_cpu_is_fftx_and_falls_back(monkeypatch):
    """``impl="auto"`` runs :class:`_SpectralFFTx` on CPU, and the DFT-matmul path for an empty
    batch (an FFT of nothing fails in MKL) and under ``torch.compile``."""
    from seisfno.operator import spectral

    calls = []
    real = spectral._SpectralFFTx.apply
    monkeypatch.setattr(spectral._SpectralFFTx, "apply",
                        lambda *a: calls.append(1) or real(*a))
    layer = SpectralConv2d(3, 4, 3, 3)
    assert layer(torch.randn(2, 3, 9, 8)).shape == (2, 4, 9, 8) and len(calls) == 1
    assert layer(torch.randn(0, 3, 9, 8)).shape == (0, 4, 9, 8) and len(calls) == 1
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    layer(torch.randn(2, 3, 9, 8))
    assert len(calls) == 1


def test_frozen_weights_changed_before_the_backward():
    """FWI may reload or change frozen weights between a forward and its backward: the input
    gradient is the one of the weights the forward used, and no in-place error is raised."""
    torch.manual_seed(8)
    layer = SpectralConv2d(3, 4, 3, 3).double().requires_grad_(False)
    ref = SpectralConv2d(3, 4, 3, 3).double().requires_grad_(False)
    ref.impl = "einsum"
    ref.load_state_dict(layer.state_dict())
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    y = layer(x)
    with torch.no_grad():
        layer.weight.mul_(2.0)
    g = torch.autograd.grad(y.square().sum(), x)[0]
    torch.testing.assert_close(g, torch.autograd.grad(ref(x).square().sum(), x)[0])


def test_shipped_quick_model_unchanged_by_the_fast_layer():
    """The shipped weights give the same wavefields through the default layer (``fftx`` on
    CPU) as through the FFT + einsum reference (issue 12: scores kept to well within 1e-3)."""
    from seisfno.operator import load_model
    from seisfno.physics import sample_rng, von_karman

    m = load_model("quick")
    g = m.preset.grid
    v = torch.as_tensor(von_karman(g, sample_rng(seed=7, index=0),
                                   clip_mps=m.preset.velocity.clip_mps)).float()[None]
    src = [[2000.0, 6500.0]]
    with torch.no_grad():
        fast = m.predict(v, src)
        for layer in m.net.modules():
            if isinstance(layer, SpectralConv2d):
                layer.impl = "einsum"
        ref = m.predict(v, src)
    rel = float((fast - ref).norm() / ref.norm())
    assert 0 < rel < 1e-5, rel  # 0 would mean the reference path did not run


@pytest.mark.parametrize("impl", ["auto", "matmul"])
def test_backward_works_after_inference_mode(impl):
    """The DFT constants cached under ``inference_mode`` must not be inference tensors: a later
    training or FWI call on the same grid saves them for backward (``matmul`` builds its DFT
    matrices in the forward; ``fftx`` builds only its backward's scales, in the backward, and
    must work after an inference call all the same)."""
    from seisfno.operator.spectral import _dft_matrices, _fftx_scales

    _dft_matrices.cache_clear()
    _fftx_scales.cache_clear()
    net = FNO2d(nt_out=3, width=4, modes=3, n_layers=1)
    for layer in net.spectral:
        layer.impl = impl
    x = torch.randn(1, 4, 13, 13)
    with torch.inference_mode():
        net(x)
    net(x.requires_grad_()).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_weights_of_format_1_load_exactly():
    """Models saved before 2026-12-03 stored complex ``(cin, cout, k1, k2)`` weights; loading
    converts them to the real layout without changing a value, and the layer computes with them
    what the complex einsum reference computes."""
    from seisfno.operator.spectral import complex_layout, mix_layout

    torch.manual_seed(0)
    old = torch.randn(3, 2, 5, 3, dtype=torch.cfloat)  # cin 3, cout 2, modes 3 x 3
    layer = SpectralConv2d(3, 2, 3, 3)
    layer.load_state_dict({"weight": old})
    assert layer.weight.dtype == torch.float32 and layer.weight.shape == (5, 3, 3, 2, 2)
    assert torch.equal(layer.complex_weight(), old)
    assert torch.equal(layer.weight[1, 2, 0, 1, 1], old[0, 1, 1, 2].imag)
    assert torch.equal(complex_layout(mix_layout(old)), old)
    x = torch.randn(2, 3, 9, 8)
    ref = SpectralConv2d(3, 2, 3, 3)
    ref.impl = "einsum"
    ref.load_state_dict(layer.state_dict())  # the new format loads as it is
    with torch.no_grad():
        torch.testing.assert_close(layer(x), ref(x), rtol=1e-5, atol=1e-6)
