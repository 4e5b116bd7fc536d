#!/usr/bin/env python3
"""Makes the models-area fixtures from the reference UNets (read-only clones in /work/refs).

Run from anywhere (needs torch; numpy and safetensors optional, see README.md):
    PYTHONPATH=<dir with safetensors> python3 tests/data/models/make_fixtures.py

Writes next to this script:
  id_small.pt            ID-flavour state_dict (float16 values), torch.save(dict)
  id_small_io.pt         {"x", "t", "out"}: fixed input, fractional timesteps, fp32 output
  gd_small.safetensors   GD-flavour state_dict (F16), via the safetensors package
  gd_small_keys.txt      the GD model's state_dict keys in PyTorch order
  gd_small_io.pt         {"x", "t", "y", "out"}
  mixed_dtypes.safetensors  four small tensors of dtypes F32/BF16/I64/F16 plus __metadata__
"""
import os
import sys
import types

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, "/work/refs/improved-diffusion")
sys.path.insert(0, "/work/refs/guided-diffusion")
try:
    import numpy  # noqa: F401  (the reference unet.py imports it, only for FLOP counting)
except ImportError:
    stub = types.ModuleType("numpy")
    stub.prod = lambda xs: int(torch.tensor(list(xs)).prod())
    sys.modules["numpy"] = stub

from improved_diffusion.unet import UNetModel as IDUNet  # noqa: E402
from guided_diffusion.unet import UNetModel as GDUNet  # noqa: E402


def randomize(model, seed):
    """Replaces every parameter (the references zero some convs) by fp16-representable random
    values of a scale that keeps activations O(1), so that every layer shapes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=g) * (1.0 / fan_in ** 0.5)
            elif "norm" in name or "in_layers.0" in name or "out_layers.0" in name or name.startswith("out.0"):
                v = (1.0 + 0.2 * torch.randn(p.shape, generator=g)) if name.endswith("weight") \
                    else 0.2 * torch.randn(p.shape, generator=g)
            else:
                v = 0.2 * torch.randn(p.shape, generator=g)
            p.copy_(v.half().float())


def main():
    torch.manual_seed(0)
    # ID flavour: unconditional, legacy attention order with 2 heads at ds 2 (8x8 of 16x16),
    # scale-shift norm, learn_sigma (6 outputs), conv resampling.
    idm = IDUNet(in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
                 attention_resolutions=(2,), dropout=0.0, channel_mult=(1, 1), num_heads=2,
                 use_scale_shift_norm=True)
    randomize(idm, 1)
    idm.eval()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([0.0, 123.25, 999.75])  # fractional, as with rescale_timesteps
    with torch.no_grad():
        out = idm(x, t)
    torch.save({k: v.half() for k, v in idm.state_dict().items()}, os.path.join(HERE, "id_small.pt"))
    torch.save({"x": x, "t": t, "out": out}, os.path.join(HERE, "id_small_io.pt"))

    # GD flavour: 10 classes, BigGAN up/down ResBlocks, 8 channels per head, new qkv order.
    gdm = GDUNet(image_size=16, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=1,
                 attention_resolutions=(2,), dropout=0.0, channel_mult=(1, 1), num_classes=10,
                 num_head_channels=8, use_scale_shift_norm=True, resblock_updown=True,
                 use_new_attention_order=True)
    randomize(gdm, 3)
    gdm.eval()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    t = torch.tensor([0, 500, 999], dtype=torch.long)
    y = torch.tensor([0, 3, 9], dtype=torch.long)
    with torch.no_grad():
        out = gdm(x, t, y)
    torch.save({"x": x, "t": t, "y": y, "out": out}, os.path.join(HERE, "gd_small_io.pt"))
    with open(os.path.join(HERE, "gd_small_keys.txt"), "w") as f:
        f.write("\n".join(gdm.state_dict().keys()) + "\n")
    try:
        from safetensors.torch import save_file
    except ImportError:
        print("safetensors not installed: skipping the .safetensors fixtures")
        return
    save_file({k: v.half().contiguous() for k, v in gdm.state_dict().items()},
              os.path.join(HERE, "gd_small.safetensors"))
    save_file({"a_f32": torch.arange(6, dtype=torch.float32).reshape(2, 3),
               "b_bf16": torch.tensor([1.5, -2.25], dtype=torch.bfloat16),
               "c_i64": torch.tensor([-3, 2 ** 40], dtype=torch.int64),
               "d_f16": torch.tensor([[0.5]], dtype=torch.float16)},
              os.path.join(HERE, "mixed_dtypes.safetensors"), metadata={"format": "pt"})


if __name__ == "__main__":
    main()
