"""Raw mode: run any model file and get its outputs as named arrays, no decoding.

For a model edgekit has no description of, or to look inside one. ``predict(image)`` turns
the image into the input tensor by the input's own shape and dtype:

- stretched (not letterboxed) to the input's height and width, or to ``size=`` for a
  model whose input size is dynamic;
- RGB; NCHW when the input's dim 1 is 3, else NHWC;
- ``float32``/``float16`` inputs get [0, 1] pixels; ``uint8`` inputs without quantization
  get the raw pixels; quantized ``int8``/``uint8`` inputs get the [0, 1] pixels quantized
  with the input's scale and zero point.

Outputs come back as ``{output name: array}`` in the interpreter's shapes, quantized ones
dequantized to float32. When that preprocessing is not what the model wants, build the
tensor yourself and call :meth:`RawModel.run`.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.runtime.model import RuntimeModel
from edgekit.runtime.preprocess import to_tensor


class RawModel(RuntimeModel):
    """``predict(image) -> {output name: array}``; ``run([tensor]) -> {output name: array}``.

    Example:
        >>> m = load("model.onnx", raw=True)  # doctest: +SKIP
        >>> {k: v.shape for k, v in m.predict("image.jpg").items()}  # doctest: +SKIP
        {'scores': (1, 4420, 2), 'boxes': (1, 4420, 4)}
        >>> m.run([np.zeros(m.input.shape, np.float32)])["boxes"].shape  # doctest: +SKIP
        (1, 4420, 4)
    """

    task = "raw"

    def __init__(self, backend):
        self.backend = backend
        self.input = backend.inputs[0]
        self.names = []
        shape = tuple(int(d) for d in self.input.shape)
        self.layout = "NCHW" if len(shape) == 4 and shape[1] == 3 else "NHWC"
        self.size = (shape[2:4] if self.layout == "NCHW" else shape[1:3]) if len(shape) == 4 else None

    def tensor(self, image: np.ndarray, size: int | tuple[int, int] | None = None) -> np.ndarray:
        """The BGR image as this model's input tensor (see the module docstring).

        Example:
            >>> m.tensor(np.zeros((480, 640, 3), np.uint8)).shape  # doctest: +SKIP
            (1, 3, 240, 320)
        """
        import cv2


        if self.size is None or len(self.backend.inputs) != 1:
            raise EdgekitError(f"{self.backend.path}: its inputs {[list(i.shape) for i in self.backend.inputs]} are not "
                               "one image tensor: build the tensors yourself and call run([...])")
        h, w = (size, size) if isinstance(size, int) else (size or self.size)
        if min(int(h), int(w)) < 2:  # onnxruntime reports a dynamic dimension as 1
            raise EdgekitError(f"{self.backend.path}: the input size is dynamic ({list(self.input.shape)}): "
                               "pass size=(height, width)")
        img = cv2.resize(image, (int(w), int(h)), interpolation=cv2.INTER_LINEAR)
        dtype = self.input.dtype if self.input.dtype in ("float32", "float16", "int8", "uint8") else "float32"
        return to_tensor(img, self.layout, dtype, quant=self.input.quant)

    def run(self, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Run ready input tensors; outputs by name, dequantized when quantized.

        Example:
            >>> m.run([np.zeros((1, 3, 240, 320), np.float32)])["scores"].shape  # doctest: +SKIP
            (1, 4420, 2)
        """
        out = {}
        for arr, info in zip(self.backend.run(inputs), self.backend.outputs):
            arr = np.asarray(arr)
            if info.quant is not None and arr.dtype.kind in "iu":
                scale, zero = info.quant
                arr = (arr.astype(np.float32) - zero) * np.float32(scale)
            out[info.name] = arr
        return out

    def predict_one(self, image: np.ndarray, size: int | tuple[int, int] | None = None) -> dict[str, np.ndarray]:
        return self.run([self.tensor(image, size)])

    def describe(self) -> dict:
        return {"task": "raw", "kind": "raw", "artifact": str(self.backend.path),
                "input": {"shape": list(self.input.shape), "layout": self.layout, "dtype": self.input.dtype,
                          "quant": list(self.input.quant) if self.input.quant else None, "resize": "stretch"},
                **self.backend.describe()}
