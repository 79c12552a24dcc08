"""HEALTHBOT_EVAL_THRESHOLDS: the minimum each evaluation metric must reach for the checklist's
`evaluation` item. Pure: settings validate the file with it at start."""

from __future__ import annotations

from pathlib import Path

import yaml


def load_thresholds(path: str | None) -> dict[str, float]:
    """HEALTHBOT_EVAL_THRESHOLDS: a YAML file `{metric_name: minimum}`; ValueError names what is wrong."""
    if not path:
        return {}
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"HEALTHBOT_EVAL_THRESHOLDS {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"HEALTHBOT_EVAL_THRESHOLDS {path}: expected a mapping of metric name to minimum")
    thresholds = {}
    for name, minimum in data.items():
        if isinstance(minimum, bool) or not isinstance(minimum, (int, float)):
            raise ValueError(f"HEALTHBOT_EVAL_THRESHOLDS {path}: the minimum of {name!r} is not a number")
        thresholds[str(name)] = float(minimum)
    return thresholds
