"""Reads a run's metrics.jsonl (one JSON object a line, as dmtrain's MetricsLog writes it) for the
scripts under scripts/: a torn last line, as a run killed mid-write leaves, is skipped."""
import json


def records(path, missing_ok=False):
    """Every record of the file, in order; [] for a missing file when missing_ok."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a torn last line
    except OSError:
        if not missing_ok:
            raise
    return out
