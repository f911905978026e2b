"""Writes the small PyTorch archives that tests/evaluation/test_torch_archive.py reads without torch.

    PYTHON_WITH_TORCH tests/evaluation/make_torch_fixtures.py [OUTPUT_DIR]

Needs torch (the fixtures were written with torch 2.13.0+cpu). Writes into OUTPUT_DIR (default
tests/evaluation/data/): `torch_state_dict.pt` (`torch.save` of a state dict with float32,
float64, float16, bfloat16, int64 and bool tensors, a transposed view, a view at a storage offset,
two tensors sharing a storage, a 0-d tensor and a parameter), `torch_script.pt`
(`torch.jit.save` of a small scripted module with submodules, parameters and a buffer) and
`torch_expected.npz`: every tensor as torch itself reads it back (`torch.load` / `torch.jit.load`
then `.numpy()`; bfloat16 widened to float32), keyed "state_dict/NAME" and "script/NAME".
"""

import os
import sys

import numpy as np
import torch


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, bias=False)
        self.register_buffer("mean", torch.arange(3, dtype=torch.float32))

    def forward(self, x):
        return self.conv(x) - self.mean[None, :, None, None]


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(Block(), torch.nn.ReLU(), Block2())

    def forward(self, x):
        return self.layers(x)


class Block2(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor([1.5, -2.0, 0.25]))

    def forward(self, x):
        return x * self.scale[None, :, None, None]


def _numpy(tensor):
    tensor = tensor.detach()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def main(output_dir):
    torch.manual_seed(0)
    base = torch.randn(4, 5)
    shared = torch.arange(12, dtype=torch.float32)
    state = {
        "float32": torch.randn(2, 3),
        "float64": torch.randn(3, dtype=torch.float64),
        "float16": torch.randn(2, 2).half(),
        "bfloat16": torch.randn(3).bfloat16(),
        "int64": torch.arange(-3, 3),
        "bool": torch.tensor([True, False, True]),
        "transposed": base.t(),
        "offset_view": base[1:3, 2:],
        "shared_a": shared[:6].view(2, 3),
        "shared_b": shared[6:],
        "scalar": torch.tensor(3.5),
        "parameter": torch.nn.Parameter(torch.randn(2)),
    }
    torch.save(state, os.path.join(output_dir, "torch_state_dict.pt"))
    torch.manual_seed(1)
    script = torch.jit.script(Net().eval())
    script_path = os.path.join(output_dir, "torch_script.pt")
    torch.jit.save(script, script_path)
    expected = {f"state_dict/{k}": _numpy(v)
                for k, v in torch.load(os.path.join(output_dir, "torch_state_dict.pt")).items()}
    expected.update({f"script/{k}": _numpy(v)
                     for k, v in torch.jit.load(script_path).state_dict().items()})
    np.savez(os.path.join(output_dir, "torch_expected.npz"), **expected)
    print(f"torch {torch.__version__}: wrote {len(expected)} expected tensors to {output_dir}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "data"))
