"""Peak bf16 FLOP/s per accelerator and model FLOPs utilisation (MFU).

MFU = (model FLOPs per token, LlamaConfig.flops_per_token: 6N + attention) x (token slots
processed per second, padding included: the hardware computes on them) / (devices x peak).
"""

from __future__ import annotations

import os

import jax

# Nominal, not measured: this host's AVX-512 fp32 FMA peak (cores x 2.5 GHz x 64 FLOP/cycle),
# split over its (simulated) CPU devices. It lets CPU runs report an MFU that compares CPU runs
# with each other; it is not comparable to accelerator MFU.
CPU_HOST_PEAK = (os.cpu_count() or 1) * 2.5e9 * 64

# Dense bf16 peak FLOP/s per device (one chip; for TPU v4/v5p a "device" is one chip's
# megacore), matched as a case-insensitive substring of `device.device_kind`, first match wins.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("v6", 918e12),  # TPU v6e (Trillium)
    ("v5p", 459e12),  # TPU v5p
    ("v5 lite", 197e12),  # TPU v5e reports "TPU v5 lite"
    ("v5e", 197e12),
    ("v4", 275e12),  # TPU v4
    ("h200", 989e12),  # NVIDIA H200 SXM, dense
    ("h100", 989e12),  # NVIDIA H100 SXM, dense (PCIe is lower: 756e12)
    ("a100", 312e12),  # NVIDIA A100
    ("cpu", CPU_HOST_PEAK),  # nominal, see CPU_HOST_PEAK; shared by the host's CPU devices
)


def peak_flops_per_device(device: jax.Device | None = None) -> float | None:
    """Peak bf16 FLOP/s of `device` (default: the first device), or None if unknown."""
    device = device or jax.devices()[0]
    if device.platform == "cpu":
        return CPU_HOST_PEAK / len(jax.local_devices(backend="cpu"))
    return match_peak(device.device_kind)[1]


def match_peak(kind: str) -> tuple[str | None, float | None]:
    """(table key, peak bf16 FLOP/s) of a device kind or TPU family name ("v5p", "TPU v5 lite")."""
    lower = kind.lower()
    for key, flops in PEAK_BF16_FLOPS:
        if key in lower:
            return key, flops
    return None, None


def mfu(
    flops_per_token: float, slots_per_second: float, num_devices: int, peak_per_device: float | None
) -> float | None:
    """Model FLOPs utilisation in [0, 1], or None when the peak is unknown."""
    if not peak_per_device:
        return None
    return flops_per_token * slots_per_second / (num_devices * peak_per_device)
