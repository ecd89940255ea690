"""One wrapper for every converter: a model that always returns a tuple, optionally fed NHWC.

Detectors return a list of head maps and classifiers one tensor; converters (the ONNX
exporter, pnnx's trace, litert-torch) want a tuple. TFLite models take NHWC input, so the
permute to NCHW becomes part of the converted graph.
"""

from __future__ import annotations


def as_list(out):
    """A model's output as a list (classifiers return one tensor, detectors a list).

    Example:
        >>> as_list((1, 2)), as_list(3)
        ([1, 2], [3])
    """
    return list(out) if isinstance(out, (list, tuple)) else [out]


def tuple_outputs(module, nhwc: bool = False):
    """``module`` wrapped to return a tuple; with ``nhwc`` it takes (N, H, W, C) input.

    Example:
        >>> from edgekit.models import create_model  # doctest: +SKIP
        >>> tuple_outputs(create_model("mobilenetv2-cls", num_classes=2), nhwc=True)  # doctest: +SKIP
    """
    import torch

    class TupleOutputs(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return tuple(as_list(self.inner(x.permute(0, 3, 1, 2) if nhwc else x)))

    return TupleOutputs(module).eval()
