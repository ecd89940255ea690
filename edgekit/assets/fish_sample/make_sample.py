"""Regenerate this sample from the full Fish4Knowledge export (run from the repo root).

    python edgekit/assets/fish_sample/make_sample.py ../shared/data/fish4knowledge

Per split, a seeded draw that first takes up to 4 images containing each minority class
(so every species appears), then fills up with random images: 120 train / 40 val / 40 test.
"""

import random
import shutil
import sys
from pathlib import Path

SIZES = {"train": 120, "valid": 40, "test": 40}


def main(src: Path, dst: Path) -> None:
    rng = random.Random(0)
    for split, n in SIZES.items():
        labels = sorted((src / split / "labels").glob("*.txt"))
        classes = {p: {ln.split()[0] for ln in p.read_text().splitlines() if ln.strip()} for p in labels}
        chosen: list[Path] = []
        for c in sorted({c for cs in classes.values() for c in cs} - {"0"}):
            having = [p for p in labels if c in classes[p] and p not in chosen]
            chosen += rng.sample(having, min(4, len(having)))
        rest = [p for p in labels if p not in chosen]
        chosen += rng.sample(rest, n - len(chosen))
        for sub in ("images", "labels"):
            (dst / split / sub).mkdir(parents=True, exist_ok=True)
        for lab in sorted(chosen):
            img = src / split / "images" / f"{lab.stem}.jpg"
            shutil.copy(img, dst / split / "images" / img.name)
            shutil.copy(lab, dst / split / "labels" / lab.name)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent)
