#!/usr/bin/env python3
"""What TensorBoard shows of a run, as one PNG: reads <run_dir>/tensorboard with TensorBoard's
own reader and plots the loss (and per-quartile losses), lr and beta1, img/s, the newest sample
grid and the timestep distribution p_k(t) at each sample point.

Usage: scripts/plot_tensorboard.py RUN_DIR OUT.png   (needs tensorboard and matplotlib)
"""
import io
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.image as mpimg  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing import event_accumulator as ea  # noqa: E402


def main():
    run, out = sys.argv[1], sys.argv[2]
    acc = ea.EventAccumulator(f"{run}/tensorboard",
                              size_guidance={ea.SCALARS: 0, ea.IMAGES: 0, ea.HISTOGRAMS: 0})
    acc.Reload()
    tags = acc.Tags()

    def series(tag):
        ev = acc.Scalars(tag) if tag in tags["scalars"] else []
        return [e.step for e in ev], [e.value for e in ev]

    fig, ax = plt.subplots(2, 3, figsize=(14, 7.5))
    a = ax[0][0]
    a.plot(*series("train/loss"), label="train/loss", lw=2)
    for q in range(4):
        a.plot(*series(f"loss_by_t/loss_q{q}"), label=f"loss_by_t/loss_q{q}", lw=0.8)
    a.set_yscale("log")
    a.set_title("loss (and per quartile of t)")
    a.legend(fontsize=7)
    a = ax[0][1]
    a.plot(*series("train/lr"), color="C1")
    a.set_title("train/lr (MDLRC compensation)")
    b = a.twinx()
    b.plot(*series("train/beta1"), color="C2")
    b.set_ylabel("train/beta1", color="C2")
    a = ax[0][2]
    a.plot(*series("perf/img_per_s"), color="C3")
    a.set_title("perf/img_per_s")
    a = ax[1][0]
    a.plot(*series("train/grad_norm"), color="C4")
    a.set_title("train/grad_norm")
    a = ax[1][1]
    for tag in tags["histograms"]:
        for e in acc.Histograms(tag):
            h = e.histogram_value
            a.step(h.bucket_limit, h.bucket, where="post", label=f"step {e.step}")
        a.set_title(f"{tag}: p_k(t) per bucket of t")
        a.set_xlabel("t")
        a.legend(fontsize=7)
    a = ax[1][2]
    a.axis("off")
    for tag in tags["images"]:
        last = acc.Images(tag)[-1]
        a.imshow(mpimg.imread(io.BytesIO(last.encoded_image_string), format="png"), cmap="gray")
        a.set_title(f"{tag} at step {last.step}")
    for row in ax:
        for a in row:
            if a.get_xlabel() == "" and a.axison:
                a.set_xlabel("iteration")
    fig.suptitle(f"TensorBoard event file of {run}")
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
