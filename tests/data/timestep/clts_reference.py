"""Independent CLTS reference values for tests/timestep/clts_test.cpp (standard library only).

Eq. 7-8 of docs/method.md, written straight from the formulas:
  G(t) = exp(-(t/T - mu)^2 / (2 sigma^2)), Ghat = G / sum G, lam = min(1, k/K),
  p_k(t) = (1 - lam)/T + lam Ghat(t).
Run: python3 tests/data/timestep/clts_reference.py
"""
import math


def p(T, k, mu, sigma, K):
    g = [math.exp(-((t / T - mu) ** 2) / (2 * sigma ** 2)) for t in range(T)]
    s = math.fsum(g)
    lam = min(1.0, k / K)
    return [(1 - lam) / T + lam * gi / s for gi in g]


for (T, mu, sigma, K) in [(10, 0.3, 1.0, 100000), (10, 0.3, 0.1, 1000)]:
    for k in [0, K // 2, K, 3 * K]:
        vals = p(T, k, mu, sigma, K)
        print(f"T={T} mu={mu} sigma={sigma} K={K} k={k}:")
        print("  {" + ", ".join(repr(v) for v in vals) + "}")
