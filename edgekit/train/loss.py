"""YOLO losses for the two head types, decoding exactly as ``edgekit.runtime.decode`` does.

Per output map with anchors (pixels) and stride s, a prediction at cell (i, j), anchor a is

    region (YOLOv2): xy = (cell + sigmoid(t_xy)) * s,  wh = exp(t_wh) * anchor,  classes: softmax
    yolo   (YOLOv3): xy = (cell + sigmoid(t_xy) * k - (k - 1) / 2) * s,  wh = exp(t_wh) * anchor,
                     classes: sigmoid, k = scale_x_y

Assignment (YOLOv5's): a target goes to every anchor whose width and height ratios to it are
below ``anchor_t``, in the cell holding its centre, and, when ``scale_x_y >= 2`` lets a cell
reach its neighbours, also in the two nearest neighbouring cells. Losses: 1 - CIoU for the
boxes, BCE for objectness against the (detached) IoU, BCE (yolo) or cross-entropy (region)
for the classes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from edgekit.runtime.decode import anchors_in_pixels


def bbox_ciou(b1: torch.Tensor, b2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of matching rows of two (n, 4) cxcywh box tensors."""
    (x1, y1, w1, h1), (x2, y2, w2, h2) = b1.unbind(-1), b2.unbind(-1)
    b1x1, b1x2, b1y1, b1y2 = x1 - w1 / 2, x1 + w1 / 2, y1 - h1 / 2, y1 + h1 / 2
    b2x1, b2x2, b2y1, b2y2 = x2 - w2 / 2, x2 + w2 / 2, y2 - h2 / 2, y2 + h2 / 2
    inter = (torch.min(b1x2, b2x2) - torch.max(b1x1, b2x1)).clamp(0) * (torch.min(b1y2, b2y2) - torch.max(b1y1, b2y1)).clamp(0)
    union = w1 * h1 + w2 * h2 - inter + eps
    iou = inter / union
    cw = torch.max(b1x2, b2x2) - torch.min(b1x1, b2x1)
    ch = torch.max(b1y2, b2y2) - torch.min(b1y1, b2y1)
    c2 = cw ** 2 + ch ** 2 + eps
    rho2 = (x2 - x1) ** 2 + (y2 - y1) ** 2
    v = (4 / math.pi ** 2) * (torch.atan(w2 / (h2 + eps)) - torch.atan(w1 / (h1 + eps))) ** 2
    with torch.no_grad():
        alpha = v / (v - iou + (1 + eps))
    return iou - (rho2 / c2 + v * alpha)


class YoloLoss:
    """Loss of a raw-output detector against (n, 6) targets [batch index, class, x1, y1, x2, y2] (pixels).

    Example:
        >>> from edgekit.models import create_model
        >>> m = create_model("yolo-lite", num_classes=2)
        >>> loss = YoloLoss(m.head_spec)
        >>> total, parts = loss(m(torch.zeros(1, 3, 64, 64)), torch.tensor([[0, 1, 8., 8., 40., 40.]]))
        >>> total.shape, sorted(parts)
        (torch.Size([]), ['box', 'cls', 'obj'])
    """

    def __init__(self, head_spec: dict, box: float = 0.05, obj: float = 1.0, cls: float = 0.5, anchor_t: float = 4.0,
                 iou_ratio: float = 0.5):
        self.spec = head_spec
        self.region = head_spec["type"] == "region"
        self.nc = head_spec["num_classes"]
        self.anchors = [torch.from_numpy(a) for a in anchors_in_pixels(head_spec)]
        self.strides = head_spec["strides"]
        self.sxy = head_spec.get("scale_x_y", [1.0] * len(self.strides))
        nl = len(self.strides)
        # objectness weight per output: fine maps have many more empty cells (YOLOv5's balance)
        self.balance = [{8: 4.0, 16: 1.0, 32: 0.4}.get(s, 1.0) if nl > 1 else 1.0 for s in self.strides]
        imgsz = (head_spec["imgsz"][0] * head_spec["imgsz"][-1]) ** 0.5  # the side of a square of the same area
        self.w_box = box * 3 / nl
        self.w_obj = obj * (imgsz / 640) ** 2 * 3 / nl
        self.w_cls = cls * self.nc / 80 * 3 / nl
        self.anchor_t = anchor_t
        # objectness target of a positive = (1 - r) + r * IoU. YOLOv5 uses r = 1, but with
        # objects of a few pixels the early IoUs are ~0 and objectness learns "nothing anywhere"
        self.iou_ratio = iou_ratio

    def decode_cells(self, p: torch.Tensor, k: int, gi: torch.Tensor, gj: torch.Tensor, anchor: torch.Tensor):
        """Predicted (cx, cy, w, h) in grid units for gathered raw rows ``p`` (n, 5 + C)."""
        s = self.strides[k]
        sxy = self.sxy[k]
        xy = torch.sigmoid(p[:, :2]) * sxy - (sxy - 1) / 2 + torch.stack([gi, gj], 1)
        wh = torch.exp(p[:, 2:4].clamp(max=6.0)) * anchor / s
        return torch.cat([xy, wh], 1)

    def build_targets(self, k: int, t: torch.Tensor, shape: tuple[int, int]):
        """(batch idx, anchor idx, gj, gi, target cxcywh in grid units, class) for output ``k``."""
        h, w = shape
        s = self.strides[k]
        anchors = self.anchors[k].to(t.device)
        if t.shape[0] == 0:
            e = torch.zeros(0, dtype=torch.long, device=t.device)
            return e, e, e, e, torch.zeros(0, 4, device=t.device), e
        cxcywh = torch.cat([(t[:, 2:4] + t[:, 4:6]) / 2, t[:, 4:6] - t[:, 2:4]], 1) / s
        r = (t[None, :, 4:6] - t[None, :, 2:4]) / anchors[:, None]  # (na, n, 2)
        match = torch.max(r, 1 / r.clamp(min=1e-9)).max(2).values < self.anchor_t  # (na, n)
        a_idx, t_idx = match.nonzero(as_tuple=True)
        g = cxcywh[t_idx]
        offsets = [torch.zeros(len(t_idx), 2, device=t.device)]
        keep = [torch.ones(len(t_idx), dtype=torch.bool, device=t.device)]
        if self.sxy[k] >= 2.0:  # neighbours are reachable: add the two nearest
            gxy = g[:, :2]
            frac = gxy % 1
            for dim, hi in enumerate((w, h)):
                left = (frac[:, dim] < 0.5) & (gxy[:, dim] > 1)
                right = (frac[:, dim] > 0.5) & (gxy[:, dim] < (hi - 1))
                for mask, step in ((left, -1.0), (right, 1.0)):
                    off = torch.zeros(len(t_idx), 2, device=t.device)
                    off[:, dim] = step
                    offsets.append(off)
                    keep.append(mask)
        a_all, t_all, off_all = [], [], []
        for off, m in zip(offsets, keep):
            a_all.append(a_idx[m])
            t_all.append(t_idx[m])
            off_all.append(off[m])
        a_idx, t_idx, off = torch.cat(a_all), torch.cat(t_all), torch.cat(off_all)
        g = cxcywh[t_idx]
        gij = (g[:, :2] + off).long()
        gi = gij[:, 0].clamp(0, w - 1)
        gj = gij[:, 1].clamp(0, h - 1)
        # both the target and the decoded prediction are in absolute grid units
        return t[t_idx, 0].long(), a_idx, gj, gi, g, t[t_idx, 1].long()

    def __call__(self, outputs: list[torch.Tensor], targets: torch.Tensor):
        """Total loss (scaled by batch size, as YOLOv5) and its detached parts."""
        dev = outputs[0].device
        targets = targets.to(dev)
        lbox = torch.zeros((), device=dev)
        lobj = torch.zeros((), device=dev)
        lcls = torch.zeros((), device=dev)
        bs = outputs[0].shape[0]
        for k, out in enumerate(outputs):
            n, _, h, w = out.shape
            na = len(self.anchors[k])
            p = out.view(n, na, 5 + self.nc, h, w).permute(0, 1, 3, 4, 2)  # (n, a, h, w, 5 + C)
            tobj = torch.zeros(p.shape[:4], device=dev)
            b, a, gj, gi, tbox, tcls = self.build_targets(k, targets, (h, w))
            if len(b):
                ps = p[b, a, gj, gi]
                pbox = self.decode_cells(ps, k, gi.float(), gj.float(), self.anchors[k].to(dev)[a])
                ciou = bbox_ciou(pbox, tbox)
                lbox = lbox + (1.0 - ciou).mean()
                tobj[b, a, gj, gi] = ((1 - self.iou_ratio) + self.iou_ratio * ciou.detach().clamp(0)).to(tobj.dtype)
                if self.nc > 1:
                    if self.region:
                        lcls = lcls + F.cross_entropy(ps[:, 5:], tcls)
                    else:
                        onehot = torch.zeros_like(ps[:, 5:])
                        onehot[torch.arange(len(tcls), device=dev), tcls] = 1.0
                        lcls = lcls + F.binary_cross_entropy_with_logits(ps[:, 5:], onehot)
            lobj = lobj + F.binary_cross_entropy_with_logits(p[..., 4], tobj) * self.balance[k]
        lbox, lobj, lcls = lbox * self.w_box, lobj * self.w_obj, lcls * self.w_cls
        total = (lbox + lobj + lcls) * bs
        return total, {"box": lbox.item(), "obj": lobj.item(), "cls": lcls.item()}
