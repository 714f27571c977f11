"""Starting weights for a fit-prior recipe from weights trained without it.

    python scripts/fit_prior_init.py resources/weights/cest_default.safetensors runs/init/conditional.safetensors

The encoders are kept; the viewpoint and shape heads are zeroed, so the first estimate is the
landmark fit itself and training learns the corrections (engine/model/chain.py, ``fit_prior``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from engine.model.chain import CestModel


def main(source: str, target: str) -> None:
    old = CestModel.load(source)
    model = CestModel(dataclasses.replace(old.config, fit_prior=True), old.face_model)
    model.load_state_dict(old.state_dict())
    with torch.no_grad():
        for head in (model.viewpoint.head, model.shape.head):
            head.weight.zero_()
            head.bias.zero_()
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    model.save(target)
    print(f"{source} -> {target} (fit_prior, viewpoint and shape heads zeroed)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
