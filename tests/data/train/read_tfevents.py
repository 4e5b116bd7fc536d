#!/usr/bin/env python3
"""Reads a folder of TensorBoard event files with TensorBoard's own reader (EventAccumulator)
and prints what it found as JSON: {"scalars": {tag: [[step, value], ...]}, "images": {tag:
[[step, width, height], ...]}, "histograms": {tag: [[step, num, min, max], ...]}}.
Exit code 3 when the tensorboard package is missing (the C++ test then skips)."""
import json
import sys

try:
    from tensorboard.backend.event_processing import event_accumulator as ea
except ImportError:
    sys.exit(3)

acc = ea.EventAccumulator(sys.argv[1], size_guidance={ea.SCALARS: 0, ea.IMAGES: 0,
                                                      ea.HISTOGRAMS: 0})
acc.Reload()
tags = acc.Tags()
out = {
    "scalars": {t: [[e.step, e.value] for e in acc.Scalars(t)] for t in tags["scalars"]},
    "images": {t: [[e.step, e.width, e.height] for e in acc.Images(t)] for t in tags["images"]},
    "histograms": {t: [[e.step, e.histogram_value.num, e.histogram_value.min,
                        e.histogram_value.max] for e in acc.Histograms(t)]
                   for t in tags["histograms"]},
}
print(json.dumps(out))
