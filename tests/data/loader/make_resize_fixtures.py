# Makes resize_fixtures.npz for tests/loader/resize_test.cpp: random uint8 RGB images passed
# through guided-diffusion's own center_crop_arr (imported from /work/refs, with its unused
# mpi4py/blobfile imports stubbed) and through Pillow's resize with BOX and BICUBIC.
# Made with Pillow 13.0.0, numpy 2.4: python3 make_resize_fixtures.py
import sys, types
import numpy as np
from PIL import Image

for name in ("mpi4py", "blobfile"):
    sys.modules[name] = types.ModuleType(name)
sys.modules["mpi4py"].MPI = None
sys.path.insert(0, "/work/refs/guided-diffusion")
from guided_diffusion.image_datasets import center_crop_arr  # noqa: E402

rng = np.random.default_rng(1234)
out = {}
# center_crop_arr cases: (H, W, size). 130x97 takes one BOX halving, 140x130 two (then no bicubic change: 35x32), 20x25 upscales.
for i, (h, w, size) in enumerate([(70, 50, 32), (130, 97, 32), (140, 130, 32), (20, 25, 32),
                                   (32, 32, 32), (33, 64, 32)]):
    img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    out[f"crop{i}_in"] = img
    out[f"crop{i}_size"] = np.array([size], dtype=np.int64)
    out[f"crop{i}_out"] = center_crop_arr(Image.fromarray(img), size)
# Plain resizes: (H, W) -> (out H, out W) with each filter.
for i, (h, w, oh, ow) in enumerate([(17, 23, 9, 11), (9, 11, 17, 23), (40, 40, 13, 29)]):
    img = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    out[f"rs{i}_in"] = img
    out[f"rs{i}_box"] = np.array(Image.fromarray(img).resize((ow, oh), resample=Image.BOX))
    out[f"rs{i}_bicubic"] = np.array(Image.fromarray(img).resize((ow, oh), resample=Image.BICUBIC))
np.savez("resize_fixtures.npz", **out)
