"""Raw mode: run any model file and get its outputs as named arrays, no decoding.

For a model edgekit has no description of, or to inspect one: the image is stretched to the
input tensor's size, RGB, as [0, 1] floats (or raw uint8 / quantized integers when the input
is integer), laid out as the input's shape says (NCHW when dim 1 is 3, else NHWC). Quantized
outputs are dequantized. ``run([tensor])`` feeds a ready tensor instead.
"""

from __future__ import annotations

import numpy as np

from edgekit.runtime.model import RuntimeModel


class RawModel(RuntimeModel):
    """``predict(image) -> {output name: float array}``.

    Example:
        >>> m = load("model.onnx", raw=True)  # doctest: +SKIP
        >>> {k: v.shape for k, v in m.predict("image.jpg").items()}  # doctest: +SKIP
    """

    task = "raw"

    def __init__(self, backend):
        self.backend = backend
        self.input = backend.inputs[0]
        shape = tuple(int(d) for d in self.input.shape)
        self.layout = "NCHW" if len(shape) == 4 and shape[1] == 3 else "NHWC"
        self.size = shape[2:4] if self.layout == "NCHW" else shape[1:3]

    def tensor(self, image: np.ndarray) -> np.ndarray:
        """The image as this model's input tensor (see the module docstring)."""
        import cv2

        from edgekit.runtime.preprocess import to_tensor

        h, w = self.size
        img = cv2.resize(image, (int(w), int(h)), interpolation=cv2.INTER_LINEAR)
        dtype = self.input.dtype if self.input.dtype in ("float32", "float16", "int8", "uint8") else "float32"
        return to_tensor(img, self.layout, dtype, quant=self.input.quant)

    def run(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Run ready input tensors; outputs by name, dequantized when quantized."""
        out = {}
        for arr, info in zip(self.backend.run(inputs), self.backend.outputs):
            arr = np.asarray(arr)
            if info.quant is not None and arr.dtype.kind in "iu":
                scale, zero = info.quant
                arr = (arr.astype(np.float32) - zero) * scale
            out[info.name] = arr
        return out

    def predict_one(self, image: np.ndarray) -> dict[str, np.ndarray]:
        return self.run([self.tensor(image)])

    def describe(self) -> dict:
        return {"task": "raw", "artifact": str(self.backend.path),
                "input": {"shape": list(self.input.shape), "layout": self.layout, "dtype": self.input.dtype},
                **self.backend.describe()}
