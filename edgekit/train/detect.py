"""Detection as a training task: data.yaml records, k-means anchors, ``--weights``, YOLO loss, mAP.

The hooks of :class:`edgekit.train.task.TrainTask` for the registered detectors; the epoch
loop, optimizer, EMA, checkpoints and resume are :mod:`edgekit.train.engine`'s.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.input_size import input_hw, stored_size
from edgekit.runtime.decode import anchors_in_pixels
from edgekit.train.augment import AugmentOptions
from edgekit.train.loader import DetectionTrainSet, collate
from edgekit.train.task import LossFn, TrainTask


@dataclass
class TrainOptions:
    """Everything ``edgekit train`` takes. Example: ``TrainOptions("yolo-lite", "data.yaml", imgsz=128, epochs=2)``."""

    model: str
    data: str
    imgsz: int | list[int] = 320  # square, or [h, w] for wide frames (edgekit.input_size)
    epochs: int = 50
    batch: int = 16
    out: str | None = None
    device: str = "cpu"
    resume: bool = False
    workers: int = 1
    threads: int | None = None  # torch intra-op threads; None: torch's default
    bf16: bool = False  # forward + loss under bf16 autocast (a CPU with AVX-512 BF16 or AMX steps faster)
    freeze: int | str | None = None  # first N Darknet cfg layers or 'backbone' not trained (edgekit.train.freeze)
    qat: bool = False  # conv inputs rounded to 256 levels in training steps, as INT8 will (edgekit.train.qat)
    lr: float = 0.002
    weight_decay: float = 0.0005
    warmup_epochs: float = 2.0
    # "kmeans" on the training labels or the family's "default"; None: k-means for a new model, the
    # --weights checkpoint's own anchors when fine-tuning the same model (and a note saying so)
    anchors: str | None = None
    model_kwargs: dict = field(default_factory=dict)
    augment: AugmentOptions = field(default_factory=AugmentOptions)
    seed: int = 0
    progress: bool = True
    max_train_images: int | None = None  # a quick subset, for smoke tests
    weights: str | None = None  # start from this checkpoint's weights and anchors (fine-tuning)

    def __post_init__(self):
        # one form everywhere (checkpoint, saved options, resume): an int when square, else [h, w]
        self.imgsz = stored_size(self.imgsz)


def data_hash(records) -> str:
    """A short hash of a split's image names and labels: which data a checkpoint saw.

    Example:
        >>> from edgekit.data import load_dataset, sample_data_yaml
        >>> len(data_hash(load_dataset(sample_data_yaml()).split("val")))
        16
    """
    h = hashlib.sha256()
    for r in records:
        h.update(r.path.name.encode())
        h.update(r.boxes.tobytes())
        h.update(r.classes.tobytes())
    return h.hexdigest()[:16]


def fit_anchors(records, imgsz, n: int, seed: int = 0, resize: str = "letterbox") -> list[list[float]]:
    """k-means anchors (input pixels at ``imgsz``, an int or (h, w)) from the training boxes, resized as the model's input is
    (``stretch``: width and height scaled apart, as a Darknet cfg without ``letterbox=1`` sees them).

    Example:
        >>> from edgekit.data import load_dataset, sample_data_yaml
        >>> len(fit_anchors(load_dataset(sample_data_yaml()).split("train"), 64, 5))
        5
    """
    from edgekit.models.anchors import kmeans_anchors

    wh = []
    h, w = input_hw(imgsz)
    for r in records:
        # letterbox: one scale for both sides; stretch: each side to the input on its own
        scale = min(h / r.height, w / r.width) if resize == "letterbox" else np.array([w / r.width, h / r.height])
        b = r.boxes[r.valid_mask()]
        wh.append((b[:, 2:] - b[:, :2]) * scale)
    wh = np.concatenate(wh) if wh else np.zeros((0, 2))
    if len(wh) < n:
        raise EdgekitError(f"only {len(wh)} training boxes, fewer than the {n} anchors to fit: use --anchors default")
    return np.asarray(kmeans_anchors(wh, n, seed=seed)).round(2).tolist()


def load_fitting(model: nn.Module, state_dict: dict) -> int:
    """Load the tensors whose names and shapes match ``model``'s; returns how many.

    Example:
        >>> load_fitting(nn.Linear(2, 3), nn.Linear(2, 4).state_dict())  # the weight and bias shapes differ
        0
    """
    own = model.state_dict()
    fits = {k: v for k, v in state_dict.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fits, strict=False)
    return len(fits)


def read_weights(path: str, opts=None) -> dict:
    """The ``--weights`` checkpoint, which must hold a detector.

    Darknet weights (``.weights``, or a ``darknet partial`` backbone such as ``yolov4-tiny.conv.29``)
    are read against the cfg of a ``darknet`` ``opts.model`` as written, and their tensors transfer
    like a backbone's (the heads, fitted to the data's classes, start fresh when their shapes differ).

    Example:
        >>> read_weights("runs/train/yolo-lite/weights/best.pt")["model"]  # doctest: +SKIP
        'yolo-lite'
    """
    from edgekit.models.checkpoint import FORMAT, checked_checkpoint, load_file
    from edgekit.models.darknet_model import darknet_weights_state, is_darknet_weights

    if is_darknet_weights(path):
        kw = getattr(opts, "model_kwargs", None) or {}
        if getattr(opts, "model", None) != "darknet" or not kw.get("cfg"):
            raise EdgekitError(f"--weights {path} is Darknet weights: give the .cfg they belong to as --model")
        sd, report = darknet_weights_state(kw["cfg"], path, kw.get("cfg_name", "cfg"))
        print(f"{path}: Darknet weights for {report['layers']} of the cfg's {report['of']} conv layers", file=sys.stderr)
        return {"model": "darknet-weights", "state_dict": sd, "pretrained": "darknet"}
    obj = load_file(path)  # once: a downloaded state dict and an edgekit checkpoint are told apart after loading
    ck = _pretrained_backbone(obj, path, FORMAT)
    if ck is not None:
        return ck
    ck = checked_checkpoint(obj, path)
    if ck.get("task", "detect") != "detect":
        raise EdgekitError(f"--weights {path} holds a {ck.get('task')} model, not a detector: "
                           f"start from scratch, or give a detector checkpoint")
    return ck


def _pretrained_backbone(obj, path: str, edgekit_format: str) -> dict | None:
    """A downloaded torchvision/timm MobileNetV2 state dict as a ``--weights`` source (keys mapped onto
    edgekit's backbone, :mod:`edgekit.models.pretrained`), or None for anything else (an edgekit checkpoint)."""
    from edgekit.models.pretrained import map_state_dict, unwrap_state_dict

    if isinstance(obj, dict) and obj.get("format") == edgekit_format:
        return None
    sd = unwrap_state_dict(obj)
    if sd is None:
        return None
    fmt, mapped, report = map_state_dict(sd)
    print(f"--weights {path}: {fmt} state dict, {report['mapped']} tensors mapped onto the backbone "
          f"(not used: {', '.join(report['unused'][:6]) or 'none'}{' ...' if len(report['unused']) > 6 else ''})",
          file=sys.stderr)
    return {"model": fmt, "state_dict": mapped, "pretrained": report}


class DetectionTask(TrainTask):
    """The detection hooks: boxes from a data.yaml, YOLO loss, mAP through ``edgekit.validate``.

    Fitness is YOLOv5's, ``0.1 * mAP50 + 0.9 * mAP50-95``. The checkpoint adds ``anchors``
    (pixels) and ``metrics: {"val": {map50, map50_95}}`` to the engine's keys; it has no
    ``task`` key (readers take a missing one for ``"detect"``).

    Example:
        >>> from edgekit.data import sample_data_yaml
        >>> task = DetectionTask(TrainOptions("yolo-lite", str(sample_data_yaml()), imgsz=64))
        >>> task.load_data(); len(task.names)
        7
    """

    name = "detect"
    betas = (0.937, 0.999)  # YOLOv5's momentum for AdamW
    channels_last = True
    collate_fn = staticmethod(collate)
    nan_hint = "check the labels with `edgekit data check`"
    pruned: dict | None = None  # channel counts of a pruned model, carried into its checkpoints

    def load_data(self) -> None:
        from edgekit.data import load_dataset

        opts = self.opts
        ds = load_dataset(opts.data)
        # images whose boxes are all invalid would train "nothing here"; background images (no boxes) stay
        recs = [r for r in ds.split("train") if r.valid_mask().any() or len(r.classes) == 0]
        self.train_records = recs[:opts.max_train_images] if opts.max_train_images else recs
        self.val_records = ds.split("val")
        self.names = list(ds.names)
        self.data_info = {"source": str(opts.data), "train_hash": data_hash(self.train_records)}

    def build_model(self, resume: dict | None) -> nn.Module:
        from edgekit.models.checkpoint import model_from_checkpoint

        if resume is not None:
            self.model_kwargs, self.anchors_px = resume["model_kwargs"], resume["anchors"]
            self.pruned = resume.get("pruned")
            model = model_from_checkpoint(resume).train()
        else:
            opts = self.opts
            ck = read_weights(opts.weights, opts) if opts.weights else None
            same = ck is not None and ck["model"] == opts.model and self._same_build(ck)
            model = self._fine_tune(ck) if same else self._fresh(ck)
            self.anchors_px = [a.tolist() for a in anchors_in_pixels(model.head_spec)]
        # the model's own resize (a Darknet cfg's stretch or letterbox=1): the training set, validation and
        # the checkpoint all use it, so export and the board see the pixels the model was trained on
        self.resize = getattr(model, "resize", "letterbox")
        return model

    def _same_build(self, ck: dict) -> bool:
        """Whether the ``--weights`` checkpoint of this family is the model asked for: the same cfg layers (class
        counts and anchors aside) for a Darknet cfg, the same ``--width`` where one is given. A cfg with layers
        added (a third head, say) is another model: its checkpoint lends the layers that fit (:meth:`_fresh`)
        instead of silently replacing the cfg given as ``--model``."""
        asked, own = self.opts.model_kwargs, ck.get("model_kwargs", {})
        if asked.get("cfg") is not None and own.get("cfg") is not None:
            from edgekit.models.darknet_model import adapt_cfg

            def layers(text: str, name: str) -> list:
                return [(s.kind, {k: v for k, v in s.options.items() if k != "anchors"})
                        for s in adapt_cfg(text, len(self.names), source=name)[1:]]

            if layers(asked["cfg"], asked.get("cfg_name", "cfg")) != layers(own["cfg"], own.get("cfg_name", "cfg")):
                print(f"--weights {self.opts.weights} is a model of another cfg ({own.get('cfg_name', 'cfg')}): "
                      f"the tensors that fit {asked.get('cfg_name', '--model')} are transferred, the rest start fresh",
                      file=sys.stderr)
                return False
        if asked.get("width") is not None and own.get("width", asked["width"]) != asked["width"]:
            print(f"--weights {self.opts.weights} has width {own['width']}, not --width {asked['width']}: the tensors "
                  "that fit are transferred, the rest start fresh", file=sys.stderr)
            return False
        return True

    def _fine_tune(self, ck: dict) -> nn.Module:
        """The model, options and anchors of the ``--weights`` checkpoint ``ck``; a head whose class
        count differs from the data's is re-initialised (its shapes no longer fit)."""
        from edgekit.models import create_model

        self.model_kwargs = {**ck.get("model_kwargs", {}), "imgsz": self.opts.imgsz}
        anchors = ck["anchors"]
        if self.opts.anchors is None:
            print(f"fine-tuning keeps the anchors of {self.opts.weights}; --anchors kmeans re-fits them on "
                  f"{self.opts.data}", file=sys.stderr)
        else:  # asked for: the same number of anchors per head, so every weight still fits
            n = sum(len(g) for g in ck["head_spec"]["anchors"])
            anchors = None
            if self.opts.anchors == "kmeans":  # boxes resized as this model's input is (a cfg may stretch)
                probe = create_model(self.opts.model, num_classes=len(self.names), **self.model_kwargs)
                anchors = fit_anchors(self.train_records, self.opts.imgsz, n, self.opts.seed,
                                      getattr(probe, "resize", "letterbox"))
            print(f"fine-tuning with {self.opts.anchors} anchors instead of those of {self.opts.weights}", file=sys.stderr)
        model = create_model(self.opts.model, num_classes=len(self.names), anchors=anchors, **self.model_kwargs)
        if ck.get("pruned"):  # a pruned checkpoint keeps its channel counts (edgekit.models.channels)
            from edgekit.models.channels import apply_channel_counts

            apply_channel_counts(model, ck["pruned"])
            self.pruned = ck["pruned"]
        model.head_spec["scale_x_y"] = list(ck["head_spec"].get("scale_x_y", model.head_spec["scale_x_y"]))
        load_fitting(model, ck["state_dict"])
        return model

    def _fresh(self, ck: dict | None) -> nn.Module:
        """A new model with k-means (or default) anchors; with ``ck`` (another model's checkpoint),
        the tensors that fit are transferred."""
        from edgekit.models import create_model

        opts, nc = self.opts, len(self.names)
        kwargs = dict(opts.model_kwargs)
        probe = create_model(opts.model, num_classes=nc, imgsz=opts.imgsz, **kwargs)
        n_anchors = sum(len(g) for g in probe.head_spec["anchors"])
        resize = getattr(probe, "resize", "letterbox")  # boxes resized as this model's input is (a cfg may stretch)
        anchors = fit_anchors(self.train_records, opts.imgsz, n_anchors, opts.seed, resize) \
            if opts.anchors != "default" else None
        model = create_model(opts.model, num_classes=nc, anchors=anchors, imgsz=opts.imgsz, **kwargs)
        self.model_kwargs = {**kwargs, "imgsz": opts.imgsz}
        if model.head_spec["type"] == "yolo":
            # grid sensitivity: a cell may predict centres up to half a cell outside it, so the
            # loss can assign each box to neighbouring cells too (3x the positives)
            model.head_spec["scale_x_y"] = [2.0] * len(model.head_spec["strides"])
        if ck is not None:  # another model sharing layers (e.g. the backbone): transfer what fits
            n = load_fitting(model, ck["state_dict"])
            if n == 0 and ck.get("pretrained"):
                raise EdgekitError(f"--weights {opts.weights} ({ck['model']}) fits no layer of '{opts.model}': its "
                                   "channel counts differ; use the model of the same width (e.g. mobilenetv2-yolo "
                                   "--width 1.0 for torchvision's mobilenet_v2)")
            if n == 0:
                raise EdgekitError(f"--weights {opts.weights} ('{ck['model']}') shares no layer with '{opts.model}': "
                                   f"start from scratch, or use a checkpoint of a model with the same backbone")
            print(f"transferred {n} of {len(model.state_dict())} tensors from {opts.weights} ('{ck['model']}')",
                  file=sys.stderr)  # what the start did, beside the other --weights notes: stdout is results only
        return model

    def get_loss(self, model: nn.Module) -> LossFn:
        from edgekit.train.loss import YoloLoss

        yolo = YoloLoss(model.head_spec)

        def loss_fn(net, batch, device):
            x, targets = batch
            return yolo(net(x.to(device, memory_format=torch.channels_last)), targets)

        return loss_fn

    def get_dataset(self) -> DetectionTrainSet:
        return DetectionTrainSet(self.train_records, self.opts.imgsz, augment=self.opts.augment, seed=self.opts.seed,
                                 resize=self.resize)

    def train_columns(self, sums: dict[str, float], batches: int) -> dict:
        # mean of the per-batch losses (each already a mean over its boxes)
        return {f"loss_{k}": round(sums.get(k, 0.0) / max(batches, 1), 5) for k in ("box", "obj", "cls")}

    def evaluate(self, model: nn.Module, device: torch.device) -> dict:
        from edgekit.validate import validate

        return validate(model, self.val_records, self.names, self.opts.imgsz, device=str(device), resize=self.resize)

    def fitness(self, metrics: dict) -> float:
        return 0.1 * metrics["map50"] + 0.9 * metrics["map50_95"]

    def val_columns(self, metrics: dict) -> dict:
        return {"map50": round(metrics["map50"], 5), "map50_95": round(metrics["map50_95"], 5)}

    def checkpoint_extras(self, metrics: dict) -> dict:
        return {"anchors": self.anchors_px, "resize": self.resize,
                "metrics": {"val": {"map50": metrics["map50"], "map50_95": metrics["map50_95"]}},
                **({"pruned": self.pruned} if self.pruned else {})}

    def epoch_line(self, row: dict) -> str:
        return (f"loss box {row['loss_box']:.4f} obj {row['loss_obj']:.4f} cls {row['loss_cls']:.4f}  "
                f"val mAP50 {row['map50']:.4f} mAP50-95 {row['map50_95']:.4f}")
