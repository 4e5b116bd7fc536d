"""Reference numbers for dmtrain's diffusion tests, computed with openai/improved-diffusion (ID).

Run:  /root/.local/share/dmtrain/venv/bin/python3 tests/data/diffusion/make_fixtures.py
Writes fixtures.npz (np.savez; keys like "loss.mse_linear.loss") beside this script.

The "model" is a fixed, deterministic toy that the C++ test reimplements op for op:
    out = (x.flatten(1) @ W[:C_out*H*W].T).view(N, C_out, H, W)
          + 0.1 * sin(t.float().view(N,1,1,1) * 0.013 * c),   c = 1..C_out per channel
          + 0.05 * y.float().view(N,1,1,1)                     (only when labels are given)
with W stored in the fixture. Noise for the samplers and calc_bpd_loop comes from
torch.Generator().manual_seed(seed): first the initial noise, then torch.randn_like is replaced by
a draw of the same shape from that generator, so every randn_like ID makes (one per step, in
order) is reproducible from the seed alone.
"""
import os
import sys
import types

import numpy as np
import torch as th

sys.modules.setdefault("mpi4py", types.ModuleType("mpi4py"))  # not needed by these modules
sys.path.insert(0, os.environ.get("ID_ROOT", "/work/refs/improved-diffusion"))
from improved_diffusion import gaussian_diffusion as gd  # noqa: E402
from improved_diffusion.respace import SpacedDiffusion, space_timesteps  # noqa: E402

N, C, H, W_ = 4, 3, 4, 4
D = C * H * W_
out = {}

g0 = th.Generator().manual_seed(20240407)
weight = th.randn(2 * D, D, generator=g0) * (0.5 / D ** 0.5)
out["model/W"] = weight
# x0 on the uint8 grid rescaled to [-1, 1], with exact -1 and 1 present (edge bins)
x0 = th.randint(0, 256, (N, C, H, W_), generator=g0).float() / 127.5 - 1.0
x0[0, 0, 0, 0] = -1.0
x0[1, 1, 1, 1] = 1.0
out["x0"] = x0
labels = th.tensor([3, 0, 7, 1])
out["y"] = labels


def make_model(c_out):
    def model(x, t, y=None):
        n = x.shape[0]
        lin = (x.flatten(1) @ weight[: c_out * H * W_].T).view(n, c_out, H, W_)
        cvec = th.arange(1, c_out + 1, dtype=th.float32).view(1, c_out, 1, 1)
        res = lin + 0.1 * th.sin(t.float().view(n, 1, 1, 1) * 0.013 * cvec)
        if y is not None:
            res = res + 0.05 * y.float().view(n, 1, 1, 1)
        return res

    return model


MEAN = {"epsilon": gd.ModelMeanType.EPSILON, "x0": gd.ModelMeanType.START_X}
VAR = {
    "fixed_small": gd.ModelVarType.FIXED_SMALL,
    "fixed_large": gd.ModelVarType.FIXED_LARGE,
    "learned": gd.ModelVarType.LEARNED,
    "learned_range": gd.ModelVarType.LEARNED_RANGE,
}
LOSS = {
    "mse": gd.LossType.MSE,
    "rescaled_mse": gd.LossType.RESCALED_MSE,
    "kl": gd.LossType.KL,
    "rescaled_kl": gd.LossType.RESCALED_KL,
}


def make_diffusion(schedule, steps, mean, var, loss, rescale, respacing):
    # As ID's script_util.create_gaussian_diffusion: always a SpacedDiffusion.
    return SpacedDiffusion(
        use_timesteps=space_timesteps(steps, respacing or [steps]),
        betas=gd.get_named_beta_schedule(schedule, steps),
        model_mean_type=MEAN[mean],
        model_var_type=VAR[var],
        loss_type=LOSS[loss],
        rescale_timesteps=rescale,
    )


class SeededRandnLike:
    """Replaces th.randn_like with draws from one generator, in call order."""

    def __init__(self, gen):
        self.gen = gen
        self.saved = th.randn_like
        self.draws = []

    def __enter__(self):
        def draw(x):
            z = th.randn(x.shape, generator=self.gen, dtype=th.float32)
            self.draws.append(z)
            return z

        th.randn_like = draw
        return self

    def __exit__(self, *exc):
        th.randn_like = self.saved


def c_out_of(var):
    return 2 * C if var in ("learned", "learned_range") else C


# ---- training losses: (name, schedule, T, mean, var, loss, rescale, respacing, labels?)
LOSS_CASES = [
    ("mse_linear", "linear", 1000, "epsilon", "fixed_small", "mse", False, "", False),
    ("rmse_cosine_lr", "cosine", 4000, "epsilon", "learned_range", "rescaled_mse", True, "", False),
    ("kl_linear_lr_y", "linear", 1000, "epsilon", "learned_range", "kl", False, "", True),
    ("rkl_cosine_fl", "cosine", 100, "epsilon", "fixed_large", "rescaled_kl", True, "", False),
    ("mse_x0_learned_y", "linear", 1000, "x0", "learned", "mse", False, "", True),
    ("rmse_cosine_lr_spaced", "cosine", 1000, "epsilon", "learned_range", "rescaled_mse", True,
     "100", False),
]
noise = th.randn(N, C, H, W_, generator=g0)
out["loss_noise"] = noise
for name, sched, T, mean, var, loss, rescale, resp, use_y in LOSS_CASES:
    d = make_diffusion(sched, T, mean, var, loss, rescale, resp)
    t = th.tensor([0, 1, d.num_timesteps // 2, d.num_timesteps - 1])
    kwargs = {"y": labels} if use_y else {}
    terms = d.training_losses(make_model(c_out_of(var)), x0, t, model_kwargs=kwargs, noise=noise)
    out[f"loss/{name}/t"] = t
    for k, v in terms.items():
        out[f"loss/{name}/{k}"] = v.detach()

# ---- samplers: (name, kind, eta, schedule, T, mean, var, rescale, respacing, clip, labels?, seed)
SAMPLE_CASES = [
    ("ddim_eta0", "ddim", 0.0, "cosine", 1000, "epsilon", "learned_range", True, "ddim10", True,
     False, 11),
    ("ddim_eta1", "ddim", 1.0, "cosine", 1000, "epsilon", "learned_range", True, "ddim10", True,
     False, 12),
    ("ddpm_lr_y", "ddpm", 0.0, "linear", 1000, "epsilon", "learned_range", False, "20", True,
     True, 13),
    ("ddpm_fl_noclip", "ddpm", 0.0, "cosine", 400, "epsilon", "fixed_large", True, "10", False,
     False, 14),
    # x0 prediction as the study's x0 arm samples it (cosine, learned_range, DDIM and DDPM)
    ("ddim_x0", "ddim", 0.0, "cosine", 4000, "x0", "learned_range", True, "ddim25", True,
     False, 15),
    ("ddpm_x0", "ddpm", 0.0, "cosine", 4000, "x0", "learned_range", True, "25", True, False, 16),
]
for name, kind, eta, sched, T, mean, var, rescale, resp, clip, use_y, seed in SAMPLE_CASES:
    d = make_diffusion(sched, T, mean, var, "mse", rescale, resp)
    gen = th.Generator().manual_seed(seed)
    init = th.randn((N, C, H, W_), generator=gen)
    kwargs = {"y": labels} if use_y else {}
    with SeededRandnLike(gen) as rl:
        if kind == "ddim":
            s = d.ddim_sample_loop(make_model(c_out_of(var)), (N, C, H, W_), noise=init,
                                   clip_denoised=clip, model_kwargs=kwargs, device="cpu", eta=eta)
        else:
            s = d.p_sample_loop(make_model(c_out_of(var)), (N, C, H, W_), noise=init,
                                clip_denoised=clip, model_kwargs=kwargs, device="cpu")
    out[f"sample/{name}"] = s
    if name == "ddpm_lr_y":
        out["sample/ddpm_lr_y/draws"] = th.stack([init] + rl.draws)

# ---- calc_bpd_loop: (name, schedule, T, var, rescale, clip, seed)
BPD_CASES = [
    ("linear50_lr", "linear", 50, "learned_range", True, True, 21),
    ("cosine20_fl", "cosine", 20, "fixed_large", False, False, 22),
]
for name, sched, T, var, rescale, clip, seed in BPD_CASES:
    d = make_diffusion(sched, T, "epsilon", var, "mse", rescale, "")
    with SeededRandnLike(th.Generator().manual_seed(seed)):
        m = d.calc_bpd_loop(make_model(c_out_of(var)), x0, clip_denoised=clip)
    for k, v in m.items():
        out[f"bpd/{name}/{k}"] = v

# ---- losses.py helpers on random inputs
a = th.randn(5, 7, generator=g0)
b = th.randn(5, 7, generator=g0)
lv1 = th.randn(5, 7, generator=g0)
lv2 = th.randn(5, 7, generator=g0)
out["helpers/a"], out["helpers/b"], out["helpers/lv1"], out["helpers/lv2"] = a, b, lv1, lv2
from improved_diffusion.losses import discretized_gaussian_log_likelihood, normal_kl  # noqa: E402

out["helpers/normal_kl"] = normal_kl(a, lv1, b, lv2)
xs = (th.randint(0, 256, (5, 7), generator=g0).float() / 127.5 - 1.0)
xs[0, :2] = th.tensor([-1.0, 1.0])
out["helpers/x"] = xs
out["helpers/dgll"] = discretized_gaussian_log_likelihood(xs, means=a * 0.5, log_scales=lv1 * 0.5 - 2)

# np.savez (uncompressed) so the C++ side reads it with dmtrain::util::read_npz; member names
# use "." where the keys above use "/" (kept flat inside the ZIP).
np.savez(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures.npz"),
         **{k.replace("/", "."): v.contiguous().numpy() for k, v in out.items()})
print(f"wrote {len(out)} tensors")
