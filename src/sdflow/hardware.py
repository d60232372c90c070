"""What this machine's CPU can do, for choices and warnings that depend on it (speed
switches measured to win on one CPU class and lose on another) and for benchmark headers."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch


@dataclass(frozen=True)
class CPUFeatures:
    avx2: bool
    avx512: bool
    avx512_bf16: bool
    amx: bool
    cores: int

    @property
    def bf16_matrix_units(self) -> bool:
        """Native bfloat16 dot products (AVX512-BF16 or AMX); without them PyTorch emulates
        bf16 convolutions, which can be several times slower than fp32."""
        return self.avx512_bf16 or self.amx

    def describe(self) -> str:
        flags = [name for name, on in (("AVX2", self.avx2), ("AVX-512", self.avx512),
                                       ("AVX512-BF16", self.avx512_bf16), ("AMX", self.amx))
                 if on]
        return (f"{self.cores} cores, {platform.machine()}, "
                f"{', '.join(flags) or 'no AVX2/AVX-512/AMX'}")


def _proc_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _torch_probe(name: str) -> bool | None:
    probe = getattr(torch.cpu, name, None)  # private helpers of recent PyTorch builds
    try:
        return bool(probe()) if probe is not None else None
    except Exception:  # a build without the probe compiled in
        return None


def cpu_features() -> CPUFeatures:
    """The CPU's vector and matrix extensions: PyTorch's own probes where this build has
    them, else the flags of /proc/cpuinfo (Linux), else none."""
    flags = _proc_flags()

    def has(probe: str, *proc_names: str) -> bool:
        found = _torch_probe(probe)
        return found if found is not None else any(n in flags for n in proc_names)

    return CPUFeatures(avx2=has("_is_avx2_supported", "avx2"),
                       avx512=has("_is_avx512_supported", "avx512f"),
                       avx512_bf16=has("_is_avx512_bf16_supported", "avx512_bf16"),
                       amx=has("_is_amx_tile_supported", "amx_tile"),
                       cores=os.cpu_count() or 1)


def available_ram() -> int | None:
    """Bytes of RAM available to a new allocation (Linux ``MemAvailable``; None where it
    cannot be read)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


#: What ``--device`` takes in every command (sr, downscale, make-pairs, eval, train).
DEVICE_HELP = "auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps"


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for a ``--device`` value, checked against this machine.

    ``auto`` is cuda if available, else mps, else cpu; ``cuda`` without an index (and
    ``auto`` on a CUDA machine) is ``cuda:local_rank`` (torchrun's local rank; 0 alone);
    ``cuda:N`` must exist. Raises :class:`~sdflow.errors.SDFlowError` with one line."""
    from sdflow.errors import SDFlowError

    mps = getattr(torch.backends, "mps", None)
    has_mps = mps is not None and mps.is_available()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("mps") if has_mps else torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise SDFlowError(f"--device {name}: not a device; use {DEVICE_HELP}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SDFlowError(f"--device {name}: no CUDA device is available; use --device "
                              "cpu")
        index = local_rank if device.index is None else device.index
        if index >= count:
            raise SDFlowError(f"--device {name}: this machine has {count} CUDA device(s), "
                              f"cuda:0..cuda:{count - 1}")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not has_mps:
            raise SDFlowError(f"--device {name}: MPS is not available; use --device cpu")
        return device
    if device.type != "cpu":
        raise SDFlowError(f"--device {name}: unsupported; use {DEVICE_HELP}")
    return device
