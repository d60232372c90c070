import torch
import torch.distributed as dist

from sdflow.flows import ActNorm, FlowSequence, all_initialized, data_init


def test_data_init_normalises_without_process_group():
    assert not (dist.is_available() and dist.is_initialized())
    layer = ActNorm(3)
    x = torch.randn(8, 3, 5, 5) * torch.tensor([2.0, 0.5, 3.0]).view(1, 3, 1, 1) + 4.0
    assert not layer.is_initialized
    with data_init(layer):
        y, _ = layer(x)
    assert layer.is_initialized
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4,
                               rtol=0)


def test_no_implicit_init_outside_context():
    layer = ActNorm(2)
    x = torch.randn(4, 2, 3, 3) + 5
    y, ld = layer(x)
    assert torch.equal(y, x) and torch.equal(ld, torch.zeros(4))
    assert not layer.is_initialized


def test_constant_channel_gets_unit_scale():
    layer = ActNorm(2)
    x = torch.randn(4, 2, 3, 3)
    x[:, 1] = 7.0
    with data_init(layer):
        layer(x)
    assert abs(layer.log_scale[0, 1].item()) < 1e-5  # variance floor: scale 1, not 1/eps
    assert layer.loc[0, 1].item() == -7.0


def test_loaded_layer_is_never_reinitialised():
    src = FlowSequence([ActNorm(3), ActNorm(3)])
    with data_init(src):
        src(torch.randn(4, 3, 4, 4) * 3 + 1)
    state = src.state_dict()
    assert state["layers.0.initialized"].item() == 1
    dst = FlowSequence([ActNorm(3), ActNorm(3)])
    dst.load_state_dict(state)
    assert all_initialized(dst)
    with data_init(dst):
        dst(torch.randn(4, 3, 4, 4) * 10 - 5)
    for k, v in state.items():
        assert torch.equal(dst.state_dict()[k], v), k


def _distributed_init_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    try:
        gen = torch.Generator().manual_seed(100 + rank)  # each rank sees different data
        x = torch.randn(4, 3, 5, 5, generator=gen) * (rank + 1) + 3 * rank
        layer = ActNorm(3)
        with data_init(layer):
            layer(x)
        torch.save({"x": x, "state": layer.state_dict()}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_data_init_pools_statistics_across_ranks(tmp_path):
    """Under a process group every rank gets the statistics of the union of all batches."""
    import torch.multiprocessing as mp

    world = 2
    mp.spawn(_distributed_init_worker, args=(world, str(tmp_path / "init"), str(tmp_path)),
             nprocs=world, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    for key in ("loc", "log_scale"):
        assert torch.equal(results[0]["state"][key], results[1]["state"][key])
    union = torch.cat([r["x"] for r in results])
    single = ActNorm(3)
    with data_init(single):
        single(union)
    torch.testing.assert_close(results[0]["state"]["loc"], single.loc.detach())
    torch.testing.assert_close(results[0]["state"]["log_scale"], single.log_scale.detach())
