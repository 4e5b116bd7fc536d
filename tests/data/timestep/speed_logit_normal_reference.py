#!/usr/bin/env python3
"""Expected values for tests/timestep/speed_logit_normal_test.cpp, standard library only.

SpeeD: the formulas of NUS-HPC-AI-Lab/SpeeD's Speed_IDDPM (speed/diffusion/speed/__init__.py),
re-typed with numpy.gradient spelt out, for a hand-picked abar with T = 10, tau = 7 steps, k = 5,
lambda = 0.6 and the threshold 1e-4 * 1000 / T per step (dmtrain's threshold 0.1 in t/T).
Logit-normal: P(floor(T sigmoid(n)) = t), n ~ N(mean, std^2), through math.erf.
"""
import math

abar = [0.99, 0.95, 0.88, 0.75, 0.55, 0.35, 0.2, 0.1, 0.09, 0.088]
T, tau, k, lam = len(abar), 7, 5.0, 0.6


def gradient(f):
    n = len(f)
    return [f[1] - f[0]] + [(f[i + 1] - f[i - 1]) / 2 for i in range(1, n - 1)] + [f[-1] - f[-2]]


p = [k] * tau + [1.0] * (T - tau)
p = [x / math.fsum(p) for x in p]
grad = gradient([math.sqrt(1 - a) for a in abar])
m = next((i for i, g in enumerate(grad) if g < 1e-4 * 1000 / T), 0) + 1
g = gradient([1 - a for a in abar])
c = 1 - lam
w = [c + (1 - 2 * c) * (x - min(g)) / (max(g) - min(g)) for x in g]
w = w[:tau] + [1.0] * (T - tau)
print("speed p", [repr(x) for x in p])
print("speed m", m)
print("speed w", [repr(x) for x in w])


def logit_normal(T, mean, std):
    def cdf(i):
        if i <= 0:
            return 0.0
        if i >= T:
            return 1.0
        u = i / T
        z = (math.log(u / (1 - u)) - mean) / std
        return 0.5 * (1 + math.erf(z / math.sqrt(2)))
    return [cdf(t + 1) - cdf(t) for t in range(T)]


print("logit-normal T=8 (0, 1)", [repr(x) for x in logit_normal(8, 0.0, 1.0)])
print("logit-normal T=8 (0.5, 0.7)", [repr(x) for x in logit_normal(8, 0.5, 0.7)])
