"""Generates the FID fixture of tests/eval/fid_test.cpp (run from this folder):

    PYTHONPATH=<dir with scipy> /root/.local/share/dmtrain/venv/bin/python3 make_fid_fixture.py

Two sets of 16-dimensional "features" -- a (40 vectors, full-rank covariance) and b (10 vectors,
so its covariance has rank 9 < 16, the N < D case of small FID runs) -- saved as FID statistics
(mu, sigma = numpy.cov(rowvar=False)) in the pytorch-fid .npz layout, plus the raw features, and
the FID between them computed exactly as pytorch-fid's calculate_frechet_distance does (scipy
sqrtm of the product, eps offset when not finite, real part), written to fid_reference.txt.
"""
import numpy as np
from scipy import linalg


def calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    # Same steps as pytorch-fid's fid_score.calculate_frechet_distance (written out, not imported).
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(sigma1.dot(sigma2), disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)


rng = np.random.default_rng(20240509)
mix = rng.normal(size=(16, 16))
a = rng.normal(size=(40, 16)) @ mix * 0.5 + 3.0
b = rng.normal(size=(10, 16)) * 1.3 + rng.normal(size=16)
stats = {}
for name, x in (("a", a), ("b", b)):
    mu, sigma = x.mean(axis=0), np.cov(x, rowvar=False)
    np.savez(f"stats_{name}.npz", mu=mu, sigma=sigma)
    np.save(f"features_{name}.npy", x)
    stats[name] = (mu, sigma)
fid = calculate_frechet_distance(*stats["a"], *stats["b"])
with open("fid_reference.txt", "w") as f:
    f.write(f"{fid:.17g}\n")
print("fid", fid)
