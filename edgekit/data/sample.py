"""The sample dataset that ships inside edgekit (a Fish4Knowledge subset, CC BY 4.0)."""

from __future__ import annotations

from pathlib import Path


def sample_data_yaml() -> Path:
    """Path of the embedded Fish4Knowledge sample's data.yaml (120 train / 40 val / 40 test).

    Example:
        >>> sample_data_yaml().name
        'data.yaml'
    """
    return Path(__file__).resolve().parents[1] / "assets" / "fish_sample" / "data.yaml"
