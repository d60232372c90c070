"""Which terms of the SDFlow objective pull the real LR's content E(y), and how hard?
(prints figures; not a test)

    python benchmarks/content_pulls.py MODEL [--data ../shared/data/RealSR_x4/train]
        [--batch 16] [--set loss.KEY=VALUE ...]

The model's own recorded training config (its last leg's, with ``--set`` overrides on top)
builds the objective; stage-2 terms are on. One batch of training crops (the trainer's
sampling at a fixed key) gives every generator term; for each term, weighted as in the
config, it prints the norm of its gradient on E(y) (the content latent of the real LR
crops) and on E's parameters, and the cosine between its gradient on E(y) and NLL_LR's.
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
    if not isinstance(cfg.loss.degradation_blur, float):
        raise SystemExit("the recorded loss.degradation_blur is not a number: "
                         "give it with --set loss.degradation_blur=SIGMA")
    task = build_task(cfg, torch.device("cpu"))
    task.model.load_state_dict(loaded.state_dict())
    objective = task.objective
    objective.degradation_sigma = cfg.loss.degradation_blur
    if isinstance(cfg.loss.degradation_colour_blur, float):
        objective.degradation_colour_sigma = cfg.loss.degradation_colour_blur
    dataset = UnpairedDataset(cfg.data.lr_dirs, cfg.data.hr_dirs, cfg.data.lr_crop,
                              task.model.scale, seed=cfg.run.seed)
    items = [dataset[(args.key, i)] for i in range(args.batch)]
    hr = torch.stack([item["hr"] for item in items])
    lr = torch.stack([item["lr"] for item in items])

    outputs: list[torch.Tensor] = []
    hook = task.model.content_extractor.register_forward_hook(
        lambda module, inputs, output: outputs.append(output))
    terms, _, _ = objective.generator_terms(hr, lr, iteration=cfg.loss.n_pre,
                                            generator=torch.Generator().manual_seed(1))
    hook.remove()
    z_c_y = outputs[0]  # the first call of E is on the real LR batch (encode_lr_parts)
    params = list(task.model.content_extractor.parameters())
    rows = []
    for name, term in terms.items():
        weight = getattr(cfg.loss, name, 0.0)
        if not weight or name in SKIPPED:
            continue
        (on_z,) = torch.autograd.grad(weight * term, z_c_y, retain_graph=True,
                                      allow_unused=True)
        on_params = torch.autograd.grad(weight * term, params, retain_graph=True,
                                        allow_unused=True)
        norm_params = sum(float(g.pow(2).sum()) for g in on_params if g is not None) ** 0.5
        rows.append((name, on_z if on_z is not None else torch.zeros_like(z_c_y),
                     norm_params))
    nll = dict((name, g) for name, g, _ in rows).get("nll_lr")
    print(f"{args.model}: {args.batch} training crops, loss config as recorded"
          + (f" + {' '.join(args.overrides)}" if args.overrides else ""))
    print(f"{'term':20s} {'|grad on E(y)|':>15s} {'|grad on E params|':>19s} "
          f"{'cos with nll_lr':>16s}")
    for name, on_z, norm_params in sorted(rows, key=lambda r: -r[2]):
        cos = float(torch.nn.functional.cosine_similarity(on_z.flatten(), nll.flatten(), dim=0)) \
            if nll is not None and on_z.abs().sum() > 0 and nll.abs().sum() > 0 else float("nan")
        print(f"{name:20s} {float(on_z.norm()):15.3e} {norm_params:19.3e} {cos:+16.3f}")


if __name__ == "__main__":
    main()
