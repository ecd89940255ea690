"""What ``edgekit prune`` takes, as one typed dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekit.errors import EdgekitError

IMPORTANCES = ("l1", "l2", "taylor", "bn-scale")


@dataclass
class PruneOptions:
    """Options of one pruning run; exactly one of ``ratio``, ``target_macs``, ``target_latency_ms``.

    ``ratio`` is the fraction of each prunable layer's channels removed in the end (Torch-Pruning's
    ``pruning_ratio``); ``target_macs`` a MAC budget at the checkpoint's input size;
    ``target_latency_ms`` a measured latency of the exported ONNX model on this host, or, with
    ``board``, the latency :func:`edgekit.estimate.estimate` predicts on that board profile (an
    estimate with a stated interval, for a board you do not have at hand).

    Example:
        >>> PruneOptions("best.pt", "data.yaml", ratio=0.3).mode
        'ratio'
    """

    weights: str  # an edgekit checkpoint (.pt) or a Darknet .cfg
    data: str
    ratio: float | None = None
    target_macs: int | None = None
    target_latency_ms: float | None = None
    board: str | None = None  # with target_latency_ms: estimate on this board profile instead of measuring here
    board_runtime: str | None = None  # the estimator's runtime (None: its default, ncnn)
    board_precision: str | None = None  # fp32 | fp16 | int8 (None: fp32)
    importance: str = "l2"
    steps: int = 3
    finetune_epochs: int = 1
    final_epochs: int | None = None  # fine-tuning after the last step; None: finetune_epochs
    round_to: int = 8
    ignore: list[str] = field(default_factory=list)  # module-name patterns (fnmatch) that keep their shape
    out: str | None = None
    darknet_weights: str | None = None  # with a .cfg: its .weights (None: the cfg's random init)
    imgsz: int | None = None  # None: the checkpoint's
    batch: int = 16
    lr: float = 0.001
    workers: int = 1
    threads: int | None = None
    bf16: bool = False  # fine-tuning under bf16 autocast (as `edgekit train --bf16`)
    seed: int = 0
    max_train_images: int | None = None
    measure: bool = True  # before/after test mAP and artifact latency (onnx, tflite-int8)
    latency_targets: tuple = ("onnx", "tflite-int8")
    bench_frames: int = 100
    progress: bool = True

    @property
    def mode(self) -> str:
        given = [n for n, v in (("ratio", self.ratio), ("target_macs", self.target_macs),
                                ("target_latency", self.target_latency_ms)) if v is not None]
        if len(given) != 1:
            raise EdgekitError("give exactly one of --ratio, --target-macs, --target-latency "
                               f"(got {', '.join(given) or 'none'})")
        return given[0]

    def check(self) -> None:
        """One-line errors for values no run can use."""
        self.mode  # noqa: B018 (raises when not exactly one target)
        if self.ratio is not None and not 0.0 < self.ratio < 1.0:
            raise EdgekitError(f"--ratio {self.ratio} is outside (0, 1): give the fraction of channels to remove, e.g. 0.3")
        if self.importance not in IMPORTANCES:
            raise EdgekitError(f"unknown --importance '{self.importance}': use one of {', '.join(IMPORTANCES)}")
        if self.board is not None and self.target_latency_ms is None:
            raise EdgekitError("--board names where --target-latency is estimated: give --target-latency MS with it, "
                               "or drop --board")
        if self.board is not None:
            from edgekit.boards.profiles import load_profile

            load_profile(self.board)  # an unknown board fails here, before anything is written
        if self.steps < 1 or self.round_to < 1 or self.finetune_epochs < 0:
            raise EdgekitError("--steps and --round-to must be >= 1 and --finetune-epochs >= 0")
