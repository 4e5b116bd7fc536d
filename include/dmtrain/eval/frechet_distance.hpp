// frechet_distance: the Frechet distance between two Gaussians N(mu1, sigma1) and N(mu2, sigma2),
//     d^2 = |mu1 - mu2|^2 + tr(sigma1) + tr(sigma2) - 2 tr((sigma1 sigma2)^{1/2}),
// the number FID reports (pytorch-fid's calculate_frechet_distance, clean-fid's frechet_distance,
// guided-diffusion's evaluator) when the Gaussians are fitted to Inception pool features.
//
// How tr((sigma1 sigma2)^{1/2}) is computed, and why: the references call scipy.linalg.sqrtm on the
// non-symmetric product sigma1 sigma2 (a Schur decomposition), take the real part, and add eps*I
// to both covariances when the result is not finite. For symmetric positive semi-definite sigma1,
// sigma2 the eigenvalues of sigma1 sigma2 equal those of the symmetric PSD matrix
//     M = sigma1^{1/2} sigma2 sigma1^{1/2}
// (similar matrices), so tr((sigma1 sigma2)^{1/2}) = sum_i sqrt(lambda_i(M)). We take sigma1^{1/2}
// from a symmetric eigen-decomposition (at::linalg_eigh) and the eigenvalues of M from another,
// both in float64, clamping the tiny negative eigenvalues round-off produces to 0. Symmetric
// eigensolvers are backward stable and never return complex values, so this is well defined for
// the singular covariances that fewer samples than feature dimensions (N < 2048) give, where
// sqrtm on the product is ill-conditioned and needs the eps fallback; for well-conditioned inputs
// the two agree to round-off (the tests check closed forms). Inputs of any float dtype and device
// are moved to CPU float64.
#pragma once
#include <ATen/ATen.h>

namespace dmtrain::eval {

// mu: [D]; sigma: [D, D] symmetric PSD. TORCH_CHECKs shapes (D must agree). Returns d^2 >= 0 up to
// round-off (a tiny negative value is returned as is, not hidden).
double frechet_distance(const at::Tensor& mu1, const at::Tensor& sigma1, const at::Tensor& mu2,
                        const at::Tensor& sigma2);

// tr(sqrt(sigma1 sigma2)) as described above (exposed for tests and diagnostics).
double trace_sqrt_product(const at::Tensor& sigma1, const at::Tensor& sigma2);

}  // namespace dmtrain::eval
