"""Tiled inference: exactness against untiled runs, seams, noise consistency, memory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sdflow.errors import is_oom
from sdflow.imageio import from_array, image_to_tensor
from sdflow.inference import pipeline, tiling
from sdflow.inference.tiling import plan_tiles, split_axis

from helpers import tiny_model
from inference_helpers import one_thread, real_pixels

LEVEL = 2.0 / 255.0  # one 8-bit grey level in [-1, 1] units

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


@pytest.fixture(scope="module")
def lite(shared):
    return tiny_model(shared)


@pytest.mark.parametrize("length,tile,overlap,align", [(50, 16, 4, 1), (136, 32, 64, 8),
                                                       (17, 4, 0, 1), (40, 0, 8, 8)])
def test_split_axis_cores_partition_the_axis(length, tile, overlap, align):
    tiles = split_axis(length, tile, overlap, align, min_region=2 * align)
    cores = [(c0, c1) for _, _, c0, c1 in tiles]
    assert cores[0][0] == 0 and cores[-1][1] == length
    assert all(a[1] == b[0] for a, b in zip(cores, cores[1:], strict=False))
    for r0, r1, c0, c1 in tiles:
        assert r0 <= c0 < c1 <= r1 and 0 <= r0 and r1 <= length
        assert c0 % align == 0 and r0 % align == 0
        assert c1 - c0 <= max(tile, align) or tile == 0
        assert r1 - r0 >= min(2 * align, length)


def test_plan_tiles_counts():
    assert len(plan_tiles(48, 40, 16, 8)) == 9
    assert len(plan_tiles(48, 40, 0, 8)) == 1


def _sr(model, arr, **kw):
    res = pipeline.process(model, from_array(arr), "sr", generator=torch.Generator()
                           .manual_seed(5), **kw)
    return res


def test_sr_tiled_equals_untiled_at_tau0(lite, shared):
    """3x3 tiles of 16 LR pixels with the default overlap: within 1/255 everywhere."""
    arr = real_pixels(shared, 48, 44)
    y = image_to_tensor(arr)
    with torch.no_grad():
        ref = lite.sr(y, 0.0)
        out = tiling.tiled_sr(lite, y, 0.0, tile=16)
    assert len(plan_tiles(48, 44, 16, tiling.DEFAULT_SR_OVERLAP)) == 9
    assert (out - ref).abs().max().item() <= LEVEL / 2  # [-1,1] units: 1/255 of the range
    # and the same through the image pipeline (8-bit outputs)
    a = _sr(lite, arr, tau=0.0, tile=16).outputs[0].astype(int)
    b = _sr(lite, arr, tau=0.0, tile=0).outputs[0].astype(int)
    assert np.abs(a - b).max() <= 1


def test_sr_tiled_uses_the_same_noise_field(lite, shared):
    """At tau = 0.8 the tiles cut one noise field: tiled and untiled agree within 1/255
    (with independent noise per tile they would differ by tens of grey levels)."""
    arr = real_pixels(shared, 40, 40)
    y = image_to_tensor(arr)
    with torch.no_grad():
        ref = lite.sr(y, 0.8, generator=torch.Generator().manual_seed(3))
        out = tiling.tiled_sr(lite, y, 0.8, generator=torch.Generator().manual_seed(3),
                              tile=16)
    assert (out - ref).abs().max().item() <= LEVEL / 2


def test_ds_tiled_equals_untiled_at_tau0(lite, shared):
    """HR 180x172 (padded to 184x176) in 3x3 tiles of 64 HR pixels, default overlap."""
    hr = torch.nn.functional.interpolate(image_to_tensor(real_pixels(shared, 45, 43)),
                                         scale_factor=4, mode="bicubic").clamp(-1, 1)
    with torch.no_grad():
        ref = lite.downscale(hr, 0.0, component=2)
        out = tiling.tiled_downscale(lite, hr, 0.0, component=2, tile=64)
        ref8 = lite.downscale(hr, 0.8, component=2, generator=torch.Generator().manual_seed(1))
        out8 = tiling.tiled_downscale(lite, hr, 0.8, component=2, tile=64,
                                      generator=torch.Generator().manual_seed(1))
    assert out.shape == ref.shape == (1, 3, 45, 43)
    assert (out - ref).abs().max().item() <= LEVEL / 2
    assert (out8 - ref8).abs().max().item() <= LEVEL / 2


def _seam_ratio(img: np.ndarray, borders: list[int], period: int) -> float:
    """Mean |gradient| across tile borders / mean |gradient| across the other lines of
    the same phase (mod ``period``), over both axes. ``img``: H x W x C floats."""
    ratios = []
    for axis in (0, 1):
        a = np.moveaxis(img, axis, 0)
        grad = np.abs(np.diff(a, axis=0)).mean(axis=tuple(range(1, a.ndim)))  # per line
        at = [b - 1 for b in borders if 0 < b < a.shape[0]]
        phase = {b % period for b in at}
        others = [i for i in range(len(grad)) if (i + 1) % period in
                  {p % period for p in {b + 1 for b in at}} and i not in at]
        assert phase and others
        ratios.append(grad[at].mean() / grad[others].mean())
    return max(ratios, key=lambda r: abs(r - 1.0))


def test_seams_at_tau08_are_invisible(lite, shared):
    """Gradient across tile borders within 10% of the gradient across other lines."""
    arr = real_pixels(shared, 64, 64, top=200, left=200)
    res = _sr(lite, arr, tau=0.8, tile=16)
    assert res.tiles == 16
    out = res.outputs[0].astype(np.float64)
    borders = [16 * 4 * k for k in range(1, 4)]
    ratio = _seam_ratio(out, borders, period=4)
    assert abs(ratio - 1.0) < 0.10, ratio


def test_out_of_memory_falls_back_to_smaller_tiles(lite, shared, monkeypatch):
    arr = real_pixels(shared, 36, 36)
    ref = _sr(lite, arr, tau=0.5, tile=18, tile_overlap=4)
    original = type(lite).sr_condition
    seen = []

    def limited(self, y):
        seen.append(tuple(y.shape[2:]))
        if y.shape[2] * y.shape[3] > 30 * 30:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: "
                               "can't allocate memory: you tried to allocate 123 bytes")
        return original(self, y)

    monkeypatch.setattr(type(lite), "sr_condition", limited)
    messages = []
    res = pipeline.process(lite, from_array(arr), "sr", tau=0.5, tile=0, tile_overlap=4,
                           generator=torch.Generator().manual_seed(5),
                           message=messages.append)
    assert res.tile == 18 and res.tiles == 4
    assert any("out of memory" in m and "tile 18" in m for m in messages)
    assert np.abs(res.outputs[0].astype(int) - ref.outputs[0].astype(int)).max() <= 1


def test_out_of_memory_at_the_smallest_tile_is_an_error(lite, shared, monkeypatch):
    def broke(self, y):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(type(lite), "sr_condition", broke)
    with pytest.raises(tiling.TileOutOfMemoryError, match="out of memory"):
        pipeline.process(lite, from_array(real_pixels(shared, 20, 20)), "sr", tau=0.0,
                         tile=0)


def test_memory_budget_picks_the_tile(lite):
    bpp = tiling.bytes_per_pixel(lite, "sr")
    assert tiling.choose_tile(lite, "sr", 100, 100, int(bpp * 100 * 100) + 1, 16) == 0
    t = tiling.choose_tile(lite, "sr", 1000, 1000, int(bpp * 200 * 200), 16)
    assert t == 200 - 32
    t = tiling.choose_tile(lite, "ds", 4000, 4000, 50 * 2**20, 64, align=8)
    assert t % 8 == 0 and t >= tiling.MIN_DS_TILE
    assert tiling.choose_tile(lite, "sr", 1000, 1000, 10, 16) == tiling.MIN_SR_TILE
    assert tiling.parse_memory("2G") == 2 * 2**30
    assert tiling.parse_memory("1.5GB") == 1_500_000_000
    assert tiling.parse_memory("512MiB") == 512 * 2**20
    with pytest.raises(ValueError, match="memory size"):
        tiling.parse_memory("lots")


def test_is_oom_recognises_allocation_failures():
    assert is_oom(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_oom(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert is_oom(MemoryError())
    assert not is_oom(RuntimeError("shape mismatch"))


def test_tiled_tensor_functions_handle_batches(shared):

    m = tiny_model(shared)
    y = torch.stack([image_to_tensor(real_pixels(shared, 20, 18, top=t))[0] for t in (0, 40)])
    with torch.no_grad():
        ref = m.sr(y, 0.6, num_samples=2, generator=torch.Generator().manual_seed(0))
        out = tiling.tiled_sr(m, y, 0.6, num_samples=2, tile=8,
                              generator=torch.Generator().manual_seed(0))
        hr = torch.nn.functional.interpolate(y, scale_factor=4)
        dref = m.downscale(hr, 0.6, generator=torch.Generator().manual_seed(0))
        dout = tiling.tiled_downscale(m, hr, 0.6, tile=32,
                                      generator=torch.Generator().manual_seed(0))
    assert out.shape == ref.shape == (2, 2, 3, 80, 72)
    assert (out - ref).abs().max().item() <= LEVEL / 2
    assert dout.shape == dref.shape == (2, 3, 20, 18)
    assert (dout - dref).abs().max().item() <= LEVEL / 2


def test_every_sampling_path_draws_the_same_samples(lite, shared):
    """One draw plan: for N = 3 samples with components drawn (not fixed), model.downscale,
    tiled_downscale and sdflow.downscale give the same samples for one seed, sample 0
    included (they used to draw in two orders); and so do model.sr, tiled_sr and
    sdflow.super_resolve."""
    import sdflow

    arr = real_pixels(shared, 40, 36)
    hr_arr = np.repeat(np.repeat(arr, 4, axis=0), 4, axis=1)
    hr = image_to_tensor(hr_arr)
    with torch.no_grad():
        ref = lite.downscale(hr, 0.8, num_samples=3, seed=11)
        tiled = tiling.tiled_downscale(lite, hr, 0.8, num_samples=3, tile=64,
                                       generator=torch.Generator().manual_seed(11))
    pil = sdflow.downscale(lite, hr_arr, tau=0.8, num_samples=3, seed=11)
    assert ref.shape == tiled.shape == (1, 3, 3, 40, 36)
    for i in range(3):
        assert (tiled[:, i] - ref[:, i]).abs().max().item() <= LEVEL / 2
        ours = np.asarray(pil[i], np.int16)
        expected = ((ref[0, i].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
        assert np.abs(ours - expected).max() <= 1
    comps, _ = lite.draw_ds_latents((160, 144), 1, 0.8, 3, None,
                                    torch.Generator().manual_seed(11))
    assert len({int(c) for c in comps}) > 1, "the test needs samples of other components"
    y = image_to_tensor(arr[:24, :20])
    with torch.no_grad():
        ref = lite.sr(y, 0.8, num_samples=3, generator=torch.Generator().manual_seed(4))
        tiled = tiling.tiled_sr(lite, y, 0.8, num_samples=3, tile=16,
                                generator=torch.Generator().manual_seed(4))
    pil = sdflow.super_resolve(lite, arr[:24, :20], tau=0.8, num_samples=3, seed=4)
    for i in range(3):
        assert (tiled[:, i] - ref[:, i]).abs().max().item() <= LEVEL / 2
        expected = ((ref[0, i].clamp(-1, 1) + 1) * 127.5).round().permute(1, 2, 0).numpy()
        assert np.abs(np.asarray(pil[i], np.int16) - expected).max() <= 1
