#include "dmtrain/eval/nll.hpp"

#include <ATen/core/grad_mode.h>

#include "dmtrain/diffusion/bpd.hpp"
#include "dmtrain/diffusion/noise_source.hpp"
#include "dmtrain/util/error.hpp"

namespace dmtrain::eval {

NllResult image_nll(const diffusion::GaussianDiffusion& diffusion, const diffusion::ModelFn& model,
                    const at::Tensor& images, const at::Tensor& labels, const NllOptions& o) {
  if (!images.defined() || images.dim() != 4 || images.size(0) == 0 ||
      images.scalar_type() != at::kByte) {
    throw Error("nll: expected a non-empty uint8 N,H,W,C image set");
  }
  if (o.batch < 1) throw Error(c10::str("nll: batch must be >= 1, got ", o.batch));
  const int64_t n = images.size(0);
  if (labels.defined() && (labels.dim() != 1 || labels.size(0) != n)) {
    throw Error(c10::str("nll: labels have shape ", labels.sizes(), ", expected [", n, "]"));
  }
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> total, prior, vb;
  for (int64_t start = 0, b = 0; start < n; start += o.batch, ++b) {
    const int64_t bs = std::min(o.batch, n - start);
    const at::Tensor x = images.narrow(0, start, bs)
                             .permute({0, 3, 1, 2})
                             .to(o.device, at::kFloat)
                             .div(127.5)
                             .sub(1.0)
                             .contiguous();
    const at::Tensor y = labels.defined() ? labels.narrow(0, start, bs).to(o.device) : at::Tensor();
    diffusion::NoiseSource noise(o.seed + static_cast<uint64_t>(b), x.sizes().vec());
    const auto r = diffusion::calc_bpd_loop(diffusion, model, x, y, o.clip_denoised, noise);
    total.push_back(r.total_bpd.to(at::kCPU, at::kDouble));
    prior.push_back(r.prior_bpd.to(at::kCPU, at::kDouble));
    vb.push_back(r.vb.sum(1).to(at::kCPU, at::kDouble));
    if (o.progress) o.progress(start + bs, n);
  }
  NllResult r;
  r.total_bpd = at::cat(total);
  r.prior_bpd = at::cat(prior);
  r.vb_bpd = at::cat(vb);
  if (labels.defined()) r.labels = labels.to(at::kCPU, at::kLong);
  r.mean_bpd = r.total_bpd.mean().item<double>();
  return r;
}

void write_nll_csv(std::ostream& os, const NllResult& r) {
  const auto old_precision = os.precision(17);
  os << "index,label,total_bpd,prior_bpd,vb_bpd\n";
  const int64_t n = r.total_bpd.size(0);
  for (int64_t i = 0; i < n; ++i) {
    os << i << ',' << (r.labels.defined() ? r.labels[i].item<int64_t>() : -1) << ','
       << r.total_bpd[i].item<double>() << ',' << r.prior_bpd[i].item<double>() << ','
       << r.vb_bpd[i].item<double>() << '\n';
  }
  os.precision(old_precision);
}

}  // namespace dmtrain::eval
