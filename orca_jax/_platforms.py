"""Quiet CPU start on hosts that have libtpu installed but no TPU.

With the `[tpu]` extra (libtpu) on a machine without TPU chips -- a laptop, a CPU CI runner,
the AOT-compile host -- jax tries its TPU backend first when `JAX_PLATFORMS` is unset, and
libtpu prints `E0000 ... INVALID_ARGUMENT: unexpected worker hostname` with a "Source
Location Trace" before jax falls back to the CPU. Nothing failed, but the log says it did.

`default_to_cpu_without_tpu()` (run by `import orca_jax`, before any orca_jax module imports
jax) sets `JAX_PLATFORMS=cpu`, jax's documented switch for skipping the other backends, only
when all of these hold:

* jax has not been imported yet (jax reads `JAX_PLATFORMS` when it is imported);
* `JAX_PLATFORMS` is not set at all (a value the user set, even empty, is kept);
* libtpu is installed (without it there is nothing to probe and nothing is printed);
* no TPU chip is on the PCI bus (Google vendor id 0x1ae0 with a TPU device id: the check
  jax's own `hardware_utils.num_available_tpu_chips_and_device_id` makes on a TPU VM);
* no NVIDIA GPU is visible (a GPU host keeps jax's own choice of backend), and no TPU
  environment is configured by hand (`TPU_ACCELERATOR_TYPE`, `TPU_WORKER_HOSTNAMES`,
  `JAX_FORCE_TPU_INIT`).

On a TPU VM the chips are on the PCI bus, so nothing changes there. AOT compilation for a
TPU topology loads libtpu itself (`get_topology_desc`) and does not need the TPU backend.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pathlib
import sys

_GOOGLE_PCI_VENDOR_ID = "0x1ae0"
# PCI device ids of TPU chips (jax._src.hardware_utils._TPU_PCI_DEVICE_IDS): v3, plc, v4, v5p,
# v5e, v6e, tpu7x.
_TPU_PCI_DEVICE_IDS = frozenset({"0x0027", "0x0056", "0x005e", "0x0062", "0x0063", "0x006f", "0x0076"})
_NVIDIA_DEVICES = ("/dev/nvidia0", "/dev/nvidiactl", "/dev/dxg")
_TPU_ENV = ("TPU_ACCELERATOR_TYPE", "TPU_WORKER_HOSTNAMES", "JAX_FORCE_TPU_INIT")


def tpu_chips_on_pci(root: str = "/sys/bus/pci/devices") -> int:
    """Number of TPU chips attached through PCI."""
    count = 0
    for vendor in glob.glob(os.path.join(root, "*", "vendor")):
        try:
            if pathlib.Path(vendor).read_text().strip() != _GOOGLE_PCI_VENDOR_ID:
                continue
            device = pathlib.Path(os.path.dirname(vendor), "device").read_text().strip()
        except OSError:
            continue
        count += device in _TPU_PCI_DEVICE_IDS
    return count


def should_default_to_cpu(environ=os.environ, pci_root: str = "/sys/bus/pci/devices") -> bool:
    """All the conditions of the module docstring, except "jax not imported yet"."""
    if "JAX_PLATFORMS" in environ or any(name in environ for name in _TPU_ENV):
        return False
    if importlib.util.find_spec("libtpu") is None:
        return False
    if any(os.path.exists(d) for d in _NVIDIA_DEVICES):
        return False
    return tpu_chips_on_pci(pci_root) == 0


def default_to_cpu_without_tpu() -> bool:
    """Set JAX_PLATFORMS=cpu when `should_default_to_cpu()` and jax is not imported; True if set."""
    if "jax" in sys.modules or not should_default_to_cpu():
        return False
    os.environ["JAX_PLATFORMS"] = "cpu"
    return True
