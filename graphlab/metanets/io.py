"""Loading and saving network weights without executing untrusted code.

Only safetensors files and ``torch.load(..., weights_only=True)`` checkpoints are read: a pickled
``nn.Module`` or arbitrary object cannot run code on load.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["load_state_dict_safe", "save_state_dict_safe"]


def save_state_dict_safe(net: nn.Module | dict[str, Tensor], path: str | Path,
                         metadata: dict[str, str] | None = None) -> None:
    """Save a module's ``state_dict`` (or a dict of tensors) as safetensors.

    Tied weights are stored once per name (as independent copies), which is what
    ``load_state_dict`` expects.
    """
    from safetensors.torch import save_file

    sd = net.state_dict() if isinstance(net, nn.Module) else net
    save_file({k: v.detach().contiguous().clone() for k, v in sd.items()}, str(path),
              metadata=metadata)


def load_state_dict_safe(path: str | Path, device: str = "cpu") -> dict[str, Tensor]:
    """Read a ``state_dict`` from ``.safetensors`` or from a ``weights_only=True`` torch file.

    Raises ``ValueError`` when the file holds anything other than tensors (e.g. a pickled
    module), instead of executing it.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device=device)
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the unpickler's refusal is re-raised clearly
        raise ValueError(f"{path} is not a weights-only checkpoint ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0]}); refusing to unpickle it") from exc
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(f"{path} does not hold a flat dict of tensors")
    return obj
