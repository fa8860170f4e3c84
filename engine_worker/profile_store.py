"""A measured cost profile on disk: where it is cached (per model, dtype and CPU/GPU model, under
~/.cache/augserve/profiles) and how it is written and read.

Apart from cost_profile.py (which measures one) so that what only reads a profile (engine.py's
path for the plugins, the engine-core plugins, the simulator, the benchmark) does not import the
profiling code, which builds an engine.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from engine_worker.policies.cost_model import CostModel
from stack.models import cache_dir


@dataclass(frozen=True)
class Fit:
    slope: float
    intercept: float
    max_rel_error: float
    """Largest |fit - measured| / measured over the samples."""


@dataclass(frozen=True)
class Profile:
    cost_model: CostModel
    forward_fit: Fit
    swap_fit: Fit
    forward_samples: list[tuple[int, float]]
    swap_samples: list[tuple[int, float]]
    hardware: str


def hardware_name() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    cpu = platform.processor() or platform.machine()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return cpu


def cache_path(model_path: str, dtype: str) -> Path:
    key = hashlib.sha256(f"{Path(model_path).resolve()}|{dtype}|{hardware_name()}".encode()).hexdigest()[:16]
    return cache_dir() / "profiles" / f"{Path(model_path).name}-{dtype}-{key}.json"


def save(profile: Profile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(profile), indent=2))


def load(path: Path) -> Profile | None:
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return Profile(CostModel(**raw["cost_model"]), Fit(**raw["forward_fit"]), Fit(**raw["swap_fit"]),
                   [tuple(s) for s in raw["forward_samples"]], [tuple(s) for s in raw["swap_samples"]],
                   raw["hardware"])
