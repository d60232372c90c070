"""Which terms of the SDFlow objective pull the real LR's content E(y), and which shrink the
spread of the downscaling samples? (prints figures; not a test)

    python benchmarks/content_pulls.py MODEL [--data ../shared/data/RealSR_x4/train]
        [--batch 16] [--set loss.KEY=VALUE ...]

The model's own recorded training config (its last leg's, with ``--set`` overrides on top)
builds the objective; stage-2 terms are on. One batch of training crops (the trainer's
sampling at a fixed key) gives every generator term, each weighted as in the config.

Table 1, pulls on the content: for each term the norm of its gradient on E(y) (the content
latent of the real LR crops) and on E's parameters, and the cosine between its gradient on
E(y) and NLL_LR's.

Table 2, pulls on the spread: ``spread`` is the mean |s1 - s2| (grey levels) of two DS
samples at tau_train of the same HR crops, with fixed draws. For each term and parameter
group, -<grad term, grad spread>: the first-order change of the spread under a plain
gradient step on that term (positive: the term widens the samples' spread; Adam rescales
steps per parameter, so read signs and orders of magnitude, not exact ratios).

The adversarial and domain terms are left out: they need the trained discriminators, which
an exported model does not carry. Training folders only: no ``val/`` image is used.
"""

from __future__ import annotations

import argparse

import torch

import sdflow
from sdflow.config import apply_overrides
from sdflow.training.config import build_config
from sdflow.training.data import UnpairedDataset
from sdflow.training.tasks import build_task

SKIPPED = ("adversarial", "domain")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--data", default="../shared/data/RealSR_x4/train")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--key", type=int, default=777, help="the sampling key of the crops")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    metavar="SECTION.KEY=VALUE")
    args = ap.parse_args()
    torch.manual_seed(0)
    loaded = sdflow.load(args.model)
    recorded = loaded.checkpoint_info.extra["train_config"]
    data = apply_overrides(recorded, [
        f'data.lr_dirs=["{args.data}/LR"]', f'data.hr_dirs=["{args.data}/HR"]',
        "data.val_dir=null", "run.init_from=null", "loss.n_pre=0", *args.overrides])
    cfg = build_config(data)
    if "auto" in (cfg.loss.degradation_blur, cfg.loss.degradation_colour_blur):
        raise SystemExit("the loss config's degradation blur is 'auto', not a fitted number: "
                         "give it with --set loss.degradation_blur=SIGMA")
    task = build_task(cfg, torch.device("cpu"))  # the objective takes the recorded sigmas
    task.model.load_state_dict(loaded.state_dict())
    dataset = UnpairedDataset(cfg.data.lr_dirs, cfg.data.hr_dirs, cfg.data.lr_crop,
                              task.model.scale, seed=cfg.run.seed)
    items = [dataset[(args.key, i)] for i in range(args.batch)]
    hr = torch.stack([item["hr"] for item in items])
    lr = torch.stack([item["lr"] for item in items])

    print(f"{args.model}: {args.batch} training crops, loss config as recorded"
          + (f" + {' '.join(args.overrides)}" if args.overrides else ""))
    terms, z_c_y = _terms_and_content(task, hr, lr, cfg.loss.n_pre)
    weighted = {name: getattr(cfg.loss, name) * term for name, term in terms.items()
                if getattr(cfg.loss, name, 0.0) and name not in SKIPPED}
    content_table(task.model, weighted, z_c_y)
    spread_table(task.model, weighted, hr, cfg.loss.tau_train)


def _terms_and_content(task, hr, lr, iteration):
    """The generator terms and E(y), the output of E's first call (on the real LR batch)."""
    outputs: list[torch.Tensor] = []
    hook = task.model.content_extractor.register_forward_hook(
        lambda module, inputs, output: outputs.append(output))
    terms, _, _ = task.objective.generator_terms(hr, lr, iteration=iteration,
                                                 generator=torch.Generator().manual_seed(1))
    hook.remove()
    return terms, outputs[0]


def _grads(term, inputs):
    return torch.autograd.grad(term, inputs, retain_graph=True, allow_unused=True)


def content_table(model, weighted, z_c_y) -> None:
    params = list(model.content_extractor.parameters())
    rows = []
    for name, term in weighted.items():
        (on_z,) = _grads(term, z_c_y)
        norm_params = sum(float(g.pow(2).sum()) for g in _grads(term, params)
                          if g is not None) ** 0.5
        rows.append((name, on_z if on_z is not None else torch.zeros_like(z_c_y),
                     norm_params))
    nll = dict((name, g) for name, g, _ in rows).get("nll_lr")
    print(f"\n{'term':20s} {'|grad on E(y)|':>15s} {'|grad on E params|':>19s} "
          f"{'cos with nll_lr':>16s}")
    for name, on_z, norm_params in sorted(rows, key=lambda r: -r[2]):
        cos = float(torch.nn.functional.cosine_similarity(on_z.flatten(), nll.flatten(), dim=0)) \
            if nll is not None and on_z.abs().sum() > 0 and nll.abs().sum() > 0 else float("nan")
        print(f"{name:20s} {float(on_z.norm()):15.3e} {norm_params:19.3e} {cos:+16.3f}")


#: Parameter groups of table 2, by parameter-name prefix (the rest: f_HR, f_HF and E).
SPREAD_GROUPS = {"f_Deg+mixture": ("deg_flow", "deg_prior"), "f_LR": ("lr_flow",)}


def spread_table(model, weighted, hr, tau: float) -> None:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    z_c_x = model.encode_hr(hr)[0]
    shape = model.ds_latent_shape(hr.shape[-2], hr.shape[-1], batch=hr.shape[0])
    draws = torch.Generator().manual_seed(5)
    z1, z2 = (model.deg_prior.sample(shape, tau, generator=draws, device=hr.device,
                                     dtype=hr.dtype) for _ in range(2))
    spread = (model.decode_lr(z_c_x, z1) - model.decode_lr(z_c_x, z2)).abs().mean() * 127.5
    on_spread = _grads(spread, params)

    def group(name: str) -> str:
        return next((g for g, prefixes in SPREAD_GROUPS.items() if name.startswith(prefixes)),
                    "f_HR+f_HF+E")

    groups = [*SPREAD_GROUPS, "f_HR+f_HF+E"]
    print(f"\nspread of two tau {tau} DS samples: {float(spread.detach()):.3f} grey levels "
          "(mean |s1 - s2|)")
    print(f"{'term':20s} " + " ".join(f"{g:>14s}" for g in groups))
    for name, term in weighted.items():
        change = dict.fromkeys(groups, 0.0)
        for (pname, _), g_t, g_s in zip(named, _grads(term, params), on_spread, strict=True):
            if g_t is not None and g_s is not None:
                change[group(pname)] -= float((g_t * g_s).sum())
        if any(change.values()):
            print(f"{name:20s} " + " ".join(f"{change[g]:+14.3e}" for g in groups))


if __name__ == "__main__":
    main()
