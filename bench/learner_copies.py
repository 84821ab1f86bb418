"""How many copies of its network the continuous learner holds, in bytes of tensors.

The learner needs the weights it trains, the moving average it scores and adopts (its own
copy of what training changes: with FC6/FC7 frozen, 12 % of FCN-8s), the model in use to
score against (the same share), the optimizer's moments, and, for a moment at each adoption,
the copy it hands over. This builds a learner on two nuclei tiles, lets it adopt once, and
adds up every distinct tensor storage reachable from it and from what it handed over.

    python bench/learner_copies.py [--variant fcn8s unet]
"""

from __future__ import annotations

import argparse
import gc
import types
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.io.images import read_image
from core.io.labels import classes_from_names
from core.model.checkpoints import ModelInfo, new_model
from core.training.learner import Adopted, ContinuousLearner, LearnerConfig
from core.training.sampling import Example

DATA = Path(__file__).parents[1] / "tests" / "data" / "nuclei"
SKIP = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, np.ndarray, str, bytes)


def storages(root: object) -> dict[int, int]:
    """``{storage address: bytes}`` of every tensor reachable from ``root``."""
    found, seen, stack = {}, set(), [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, SKIP):
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            found[storage.data_ptr()] = storage.nbytes()
            continue
        stack.extend(gc.get_referents(obj))
    return found


def measure(variant: str) -> None:
    image = read_image(DATA / "nuclei.tif")
    truth = (np.asarray(Image.open(DATA / "nuclei_instances.tif")) > 0).astype(np.uint8)
    cols = [slice(i * 64, i * 64 + 64) for i in range(2)]
    tiles = [Example(f"t{i}", image[:64, c], truth[:64, c]) for i, c in enumerate(cols)]
    torch.manual_seed(0)
    model = new_model(ModelInfo(variant=variant, classes=classes_from_names(["background", "nucleus"])))
    one = sum(p.numel() * 4 for p in model.module.state_dict().values() if p.is_floating_point())
    config = LearnerConfig(crop=64, batch_size=2, device="cpu", precision="fp32", budget_steps=0)
    learner = ContinuousLearner(model, config)
    del model  # the caller's model is the caller's: only what the learner keeps counts
    for example in tiles:
        learner.add(example)
    run = learner.run()
    adopted = next(e for e in run if isinstance(e, Adopted))
    held = storages(learner)
    handed = storages(adopted.model)
    run.close()
    print(
        f"{variant}: one copy {one / 2**20:.0f} MB; the learner holds {sum(held.values()) / 2**20:.0f} MB "
        f"({sum(held.values()) / one:.2f} copies) and hands over {sum(handed.values()) / 2**20:.0f} MB "
        f"({len(set(handed) & set(held))} tensors shared with it)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", nargs="+", default=["fcn8s", "unet"])
    for variant in parser.parse_args().variant:
        measure(variant)


if __name__ == "__main__":
    main()
