"""Darknet .cfg/.weights loader: layer semantics, errors, shipped cfgs, and parity with OpenCV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgekit.errors import EdgekitError
from edgekit.models import count_params, create_model, load_darknet
from edgekit.models.darknet import build_darknet, reference_cfg, save_darknet_weights
from edgekit.models.darknet_cfg import parse_cfg_text
from edgekit.models.layers import DarknetMaxPool
from edgekit.runtime.boxes import nms
from edgekit.runtime.decode import decode_dense, decode_yolo_outputs

SHARED = (Path(__file__).parents[2] / ".." / "shared").resolve()
FASTEST = SHARED / "models" / "yolo-fastest-1.1"
DOG = SHARED / "images" / "dog.jpg"

HEAD = "[yolo]\nmask=0,1,2\nanchors=10,10, 20,20, 30,30\nclasses=1\nnum=3\n"


def cfg(body: str, size: int = 32, channels: int = 3) -> str:
    return f"[net]\nwidth={size}\nheight={size}\nchannels={channels}\n{body}"


def write(tmp_path: Path, text: str, name: str = "m.cfg") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def darknet_maxpool_reference(x: np.ndarray, size: int, stride: int, padding: int) -> np.ndarray:
    """Darknet's forward_maxpool_layer, loop for loop (cells outside the input are skipped)."""
    h, w = x.shape
    oh, ow = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    off = -(padding // 2)
    out = np.full((oh, ow), -np.inf)
    for i in range(oh):
        for j in range(ow):
            for n in range(size):
                for m in range(size):
                    y, xx = off + i * stride + n, off + j * stride + m
                    if 0 <= y < h and 0 <= xx < w:
                        out[i, j] = max(out[i, j], x[y, xx])
    return out


@pytest.mark.parametrize("size,stride,padding,n", [(2, 1, 1, 13), (2, 2, 1, 13), (2, 2, 1, 12),
                                                   (3, 1, 2, 10), (5, 1, 4, 10), (3, 2, 2, 9), (4, 1, 3, 7)])
def test_maxpool_matches_darknet(size, stride, padding, n):
    x = np.random.default_rng(0).normal(size=(n, n)) - 1.0  # mostly negative: a zero pad would show
    ours = DarknetMaxPool(size, stride, padding)(torch.tensor(x)[None, None])[0, 0].numpy()
    np.testing.assert_array_equal(ours, darknet_maxpool_reference(x, size, stride, padding))


def test_route_groups_shortcut_and_upsample():
    body = ("[convolutional]\nfilters=8\nsize=1\nactivation=linear\n"      # 0
            "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n"                   # 1: channels 4..7 of 0
            "[convolutional]\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"  # 2
            "[shortcut]\nfrom=-2\nactivation=linear\n"                     # 3: 2 + 1
            "[maxpool]\nsize=2\nstride=2\n"                                # 4
            "[upsample]\nstride=2\n"                                       # 5
            "[route]\nlayers=5,0\n"                                        # 6: absolute indices
            "[convolutional]\nfilters=18\nsize=1\nactivation=linear\n" + HEAD)
    m = build_darknet(parse_cfg_text(cfg(body, 16))).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        l0 = m.layers[0](x)
        l2 = m.layers[2](l0[:, 4:])
        l5 = m.layers[5](m.layers[4](l2 + l0[:, 4:]))
        want = m.layers[7](torch.cat([l5, l0], 1))
        (out,) = m(x)
    torch.testing.assert_close(out, want)
    assert m.head_spec["strides"] == [1] and m.head_spec["anchors"] == [[[10, 10], [20, 20], [30, 30]]]


def test_avgpool_dropout_and_activations():
    body = ("[convolutional]\nfilters=18\nsize=3\npad=1\nactivation=mish\n"
            "[avgpool]\n[dropout]\nprobability=.5\n" + HEAD)
    m = build_darknet(parse_cfg_text(cfg(body, 32))).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        y = m.layers[0].conv(x)
        (out,) = m(x)
    torch.testing.assert_close(out, (y * torch.tanh(torch.nn.functional.softplus(y))).mean((2, 3), keepdim=True))
    assert m.head_spec["strides"] == [32]


def test_weights_round_trip_and_layout(tmp_path):
    body = ("[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\npad=1\nactivation=leaky\n"
            "[convolutional]\nfilters=4\ngroups=4\nsize=3\npad=1\nactivation=relu6\n"
            "[convolutional]\nfilters=18\nsize=1\nactivation=linear\n" + HEAD)
    c = write(tmp_path, cfg(body))
    n_bn = 4 * 4 + 4 * 3 * 9          # beta, gamma, mean, var + weights
    n_dw = 4 + 4 * 1 * 9              # depthwise: c/groups = 1 input channel per filter
    n_out = 18 + 18 * 4
    values = np.arange(n_bn + n_dw + n_out, dtype="<f4") / 1000 + 0.5
    header = np.array([0, 2, 5], "<i4").tobytes() + np.array([123], "<i8").tobytes()
    w = tmp_path / "m.weights"
    w.write_bytes(header + values.tobytes())
    m = load_darknet(c, w)
    assert m.weights_header == {"major": 0, "minor": 2, "revision": 5, "seen": 123, "layers": 3}
    bn = m.layers[0].bn
    np.testing.assert_allclose(bn.bias.detach().numpy(), values[0:4])          # beta first
    np.testing.assert_allclose(bn.weight.detach().numpy(), values[4:8])        # then gamma
    np.testing.assert_allclose(bn.running_var.numpy(), values[12:16])
    np.testing.assert_allclose(m.layers[0].conv.weight.detach().numpy().ravel(), values[16:n_bn])
    np.testing.assert_allclose(m.layers[1].conv.bias.detach().numpy(), values[n_bn:n_bn + 4])
    save_darknet_weights(m, tmp_path / "again.weights", seen=123)
    again = (tmp_path / "again.weights").read_bytes()
    assert again[20:] == w.read_bytes()[20:] and load_darknet(c, tmp_path / "again.weights").weights_header["seen"] == 123
    # version 0.1 headers keep "seen" as int32
    w.write_bytes(np.array([0, 1, 0, 7], "<i4").tobytes() + values.tobytes())
    assert load_darknet(c, w).weights_header["seen"] == 7


def test_weights_size_mismatch_is_one_clear_line(tmp_path):
    c = write(tmp_path, cfg("[convolutional]\nfilters=18\nsize=1\nactivation=linear\n" + HEAD))
    header = np.array([0, 2, 0], "<i4").tobytes() + np.zeros(1, "<i8").tobytes()
    good = np.zeros(18 + 18 * 3, "<f4").tobytes()
    w = tmp_path / "m.weights"
    for data, what in [(good[:-4], "truncated"), (good + b"\0" * 4, "longer than the cfg needs"),
                       (header[:10], "too short")]:
        w.write_bytes(header + data if what != "too short" else data)
        with pytest.raises(EdgekitError, match=what) as e:
            load_darknet(c, w)
        assert "\n" not in str(e.value)
    with pytest.raises(EdgekitError, match="not found"):
        load_darknet(c, tmp_path / "nope.weights")


@pytest.mark.parametrize("text,match", [
    ("[convolutional]\nfilters=4\n", "first section must be \\[net\\]"),
    (cfg("[convolutional]\nfilters=4\nthis line is wrong\n"), "line 7: expected \\[section\\] or key=value"),
    (cfg("[convolutional]\nfilters=four\n"), "'filters=four' is not a number"),
    (cfg("[route]\nlayers=3\n"), "layers=3 points to layer 3"),
    (cfg("[convolutional]\nfilters=17\nsize=1\n" + HEAD), "needs? 18.*set filters=18"),
    (cfg("[local]\nsize=3\n"), "\\[local\\] is not supported"),
    (cfg("[convolutional]\nfilters=4\nactivation=sparkle\n"), "unsupported activation 'sparkle'"),
    (cfg("[convolutional]\nfilters=4\nsize=1\n"), "no \\[yolo\\] or \\[region\\] layer"),
    (cfg("[convolutional]\nfilters=4\nsize=3\nstride=2\n" * 6 + HEAD), "too small"),
    (cfg("[convolutional]\nfilters=4\ngroups=3\n"), "do not fit 3 input channels"),
    ("[net]\nwidth=32\n[convolutional\n", "malformed section header"),
])
def test_bad_cfg_is_one_clear_line(tmp_path, text, match):
    with pytest.raises(EdgekitError, match=match) as e:
        load_darknet(write(tmp_path, text))
    assert "\n" not in str(e.value)


def test_bad_files(tmp_path):
    with pytest.raises(EdgekitError, match="not found"):
        load_darknet(tmp_path / "missing.cfg")
    binary = tmp_path / "b.cfg"
    binary.write_bytes(b"\xff\xfe\x00\x01" * 10)
    with pytest.raises(EdgekitError, match="not a text file"):
        load_darknet(binary)


def _copy_convs(src: list, dst_model) -> None:
    dst = [m for m in dst_model.layers if hasattr(m, "conv")]
    assert len(src) == len(dst)
    for a, b in zip(src, dst):
        b.load_state_dict(a.state_dict() if hasattr(a, "conv") else {"conv." + k: v for k, v in a.state_dict().items()})


def _randomise_bn(model) -> None:
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 2, generator=g)
            m.bias.data.normal_(0, 0.2, generator=g)


@pytest.mark.parametrize("cfg_name,seed_name,nc,published_m", [
    ("yolov2-tiny-voc.cfg", "tiny-yolov2", 20, 15.86),
    ("yolov3-tiny.cfg", "tiny-yolov3", 80, 8.86),
    ("yolo-lite-voc.cfg", "yolo-lite", 20, 0.57),
])
def test_shipped_cfgs_build_the_seed_models(cfg_name, seed_name, nc, published_m):
    dk = load_darknet(reference_cfg(cfg_name)).eval()
    seed = create_model(seed_name, num_classes=nc).eval()
    assert count_params(dk) == count_params(seed)
    assert abs(count_params(dk) / (published_m * 1e6) - 1) < 0.005
    ds, ss = dk.head_spec, seed.head_spec
    for key in ("type", "num_classes", "imgsz", "strides", "anchor_units", "scale_x_y", "new_coords"):
        assert ds[key] == ss[key], key
    np.testing.assert_allclose(np.array(ds["anchors"]), np.array(ss["anchors"]), rtol=1e-6)
    # same weights, same numbers: the topologies (pool padding included) are the same
    if seed_name == "tiny-yolov3":  # the cfg's order: head 32 comes before the stride-16 branch
        n = seed.neck
        convs = list(seed.backbone.layers) + [n.reduce, n.p5, seed.head.convs[0], n.lateral, n.p4, seed.head.convs[1]]
    else:
        convs = list(seed.backbone.layers) + list(getattr(seed.neck, "__iter__", lambda: [])()) + list(seed.head.convs)
    _randomise_bn(seed)
    _copy_convs([m for m in convs if hasattr(m, "conv") or isinstance(m, torch.nn.Conv2d)], dk)
    x = torch.rand(1, 3, 96, 96)
    with torch.no_grad():
        a, b = dk(x), seed(x)
    assert [o.shape for o in a] == [o.shape for o in b]
    for oa, ob in zip(a, b):
        torch.testing.assert_close(oa, ob, rtol=1e-4, atol=1e-4)


def assert_matches_opencv(tmp_path: Path, cfg_path: Path, size: int) -> None:
    """Random BN statistics, weights written as Darknet .weights, decoded rows vs OpenCV DNN's on one input."""
    cv2 = pytest.importorskip("cv2")
    m = load_darknet(cfg_path).eval()
    _randomise_bn(m)
    w = save_darknet_weights(m, tmp_path / "t.weights")
    net = cv2.dnn.readNetFromDarknet(str(cfg_path), str(w))
    blob = np.random.default_rng(0).uniform(0, 1, (1, 3, size, size)).astype(np.float32)
    net.setInput(blob)
    ref = np.concatenate(net.forward(net.getUnconnectedOutLayersNames()), 0)
    with torch.no_grad():
        rows = decode_dense([o.numpy() for o in m(torch.from_numpy(blob))], m.head_spec)[0]
    rows[:, :4] /= size
    np.testing.assert_allclose(rows[:, :5], ref[:, :5], atol=1e-4)


def test_region_head_and_stride1_pool_match_opencv(tmp_path):
    text = reference_cfg("yolov2-tiny-voc.cfg").read_text().replace("width=416", "width=160").replace(
        "height=416", "height=160")
    assert_matches_opencv(tmp_path, write(tmp_path, text), 160)


@pytest.mark.shared
@pytest.mark.skipif(not (FASTEST / "yolo-fastest-1.1.weights").is_file() or not DOG.is_file(),
                    reason=f"needs ../shared with models/yolo-fastest-1.1 and images/dog.jpg ({SHARED} absent)")
def test_yolo_fastest_matches_opencv_dnn():
    cv2 = pytest.importorskip("cv2")
    cfg_path, w_path = FASTEST / "yolo-fastest-1.1.cfg", FASTEST / "yolo-fastest-1.1.weights"
    names = (FASTEST / "coco.names").read_text().splitlines()
    model = load_darknet(cfg_path, w_path)
    assert model.head_spec["imgsz"] == [320, 320] and model.head_spec["num_classes"] == 80
    # OpenCV DNN's own preprocessing: plain resize to 320x320, RGB, /255
    blob = cv2.dnn.blobFromImage(cv2.imread(str(DOG)), 1 / 255.0, (320, 320), swapRB=True, crop=False)
    net = cv2.dnn.readNetFromDarknet(str(cfg_path), str(w_path))
    net.setInput(blob)
    ref = np.concatenate(net.forward(net.getUnconnectedOutLayersNames()), 0)  # cx, cy, w, h (relative), obj, scores
    with torch.no_grad():
        outs = [o.numpy() for o in model(torch.from_numpy(blob))]
    rows = decode_dense(outs, model.head_spec)[0]
    assert rows.shape == ref.shape == (3 * 10 * 10 + 3 * 20 * 20, 85)
    rows[:, :4] /= 320
    # the issue asks for 1e-3; the loader is exact up to float32 summation order
    np.testing.assert_allclose(rows[:, :5], ref[:, :5], atol=1e-5)
    # OpenCV reports obj x class probability, zeroed below its threshold of 0.2
    scores = rows[:, 4:5] * rows[:, 5:]
    clear = np.abs(scores - 0.2) > 1e-3
    np.testing.assert_allclose(np.where(scores > 0.2, scores, 0)[clear], ref[:, 5:][clear], atol=1e-5)
    assert (ref[:, 5:] > 0).sum() > 10  # real detections were compared, not only zeros

    boxes, conf, ids = decode_yolo_outputs(outs, model.head_spec, conf=0.25, iou=0.45)
    found = [names[i] for i in ids]
    assert found[:5].count("dog") and found[:5].count("bicycle") and {"car", "truck"} & set(found[:3])
    dog = boxes[found.index("dog")]
    assert 30 < dog[0] < 80 and 100 < dog[1] < 150 and 130 < dog[2] < 180 and 260 < dog[3] < 310  # 320 px input
    # the same detections from OpenCV's rows
    r_scores = ref[:, 5:].max(1)
    r_ids = ref[:, 5:].argmax(1)
    r_boxes = np.concatenate([ref[:, :2] - ref[:, 2:4] / 2, ref[:, :2] + ref[:, 2:4] / 2], 1) * 320
    keep = r_scores > 0.25
    order = nms(r_boxes[keep], r_scores[keep], r_ids[keep], 0.45)
    assert [names[i] for i in r_ids[keep][order]] == found
    np.testing.assert_allclose(r_boxes[keep][order], boxes, atol=320 * 1e-3)


def darknet_reorg_reference(x: np.ndarray, s: int) -> np.ndarray:
    """Darknet's reorg_cpu(x, w, h, c, batch, stride, forward=0, out) line by line (src/blas.c)."""
    b, c, h, w = x.shape
    flat, out = x.reshape(-1), np.zeros(x.size, x.dtype)
    out_c = c // (s * s)
    for k in range(c):
        for j in range(h):
            for i in range(w):
                c2, offset = k % out_c, k // out_c
                w2, h2 = i * s + offset % s, j * s + offset // s
                out[i + w * (j + h * k)] = flat[w2 + w * s * (h2 + h * s * c2)]
    return out.reshape(b, c * s * s, h // s, w // s)


@pytest.mark.parametrize("shape, s", [((1, 8, 4, 6), 2), ((1, 18, 6, 3), 3)])
def test_reorg_is_darknets_element_order(shape, s):
    from edgekit.models.darknet import Reorg

    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    got = Reorg(s)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(got, darknet_reorg_reference(x, s))
    plain = torch.nn.functional.pixel_unshuffle(torch.from_numpy(x), s).numpy()
    assert not np.array_equal(got, plain)  # Darknet's order is not a plain space-to-depth


REORG_NET = """[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\nstride=1\npad=1\nactivation=leaky
[maxpool]\nsize=2\nstride=2
[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky
[maxpool]\nsize=2\nstride=2
[convolutional]\nbatch_normalize=1\nfilters=16\nsize=3\nstride=1\npad=1\nactivation=leaky
[route]\nlayers=-3
[reorg]\nstride=2
[route]\nlayers=-1,-3
[convolutional]\nfilters=30\nsize=1\nstride=1\npad=1\nactivation=linear
[region]\nanchors=1,1, 2,2, 3,3, 4,4, 5,5\nclasses=1\ncoords=4\nnum=5\nsoftmax=1
"""


def test_reorg_net_matches_opencv(tmp_path):
    assert_matches_opencv(tmp_path, write(tmp_path, cfg(REORG_NET)), 32)


def test_full_yolov2_builds_with_darknets_flops():
    from edgekit.models.complexity import count_flops

    text = reference_cfg("yolov2-voc.cfg").read_text()
    m = build_darknet(parse_cfg_text(text))
    assert m.head_spec["strides"] == [32] and m.head_spec["num_classes"] == 20
    assert count_flops(m, 416) == pytest.approx(29.36e9, rel=1e-3)
    # the first release (yolo-voc.2.0.cfg): reorg straight on the 512-channel layer; 34.90 Bn published
    passthrough = "[route]\nlayers=-9\n\n[convolutional]\nbatch_normalize=1\nfilters=64\nsize=1\nstride=1\npad=1\n" \
                  "activation=leaky\n\n[reorg]\nstride=2\n\n[route]\nlayers=-1,-4\n"
    assert passthrough in text
    v2_0 = text.replace(passthrough, "[route]\nlayers=-9\n\n[reorg]\nstride=2\n\n[route]\nlayers=-1,-3\n")
    assert count_flops(build_darknet(parse_cfg_text(v2_0)), 416) == pytest.approx(34.90e9, rel=1e-3)


def test_bad_reorg_is_one_clear_line(tmp_path):
    with pytest.raises(EdgekitError, match=r"line \d+ \[reorg\]: reorg stride=3 needs"):
        load_darknet(write(tmp_path, cfg("[convolutional]\nfilters=8\nsize=1\n[reorg]\nstride=3\n" + HEAD)))


def test_yolo_fastest_with_a_stride_8_head_keeps_every_layer_of_yolo_fastest():
    """edgekit/models/cfg/yolo-fastest-1.1-s8.cfg: Yolo-Fastest 1.1 unchanged, then a third head at stride 8; every
    tensor of the original (COCO weights or a fine-tuned checkpoint) lends itself by name and shape."""
    s8 = load_darknet(reference_cfg("yolo-fastest-1.1-s8.cfg")).eval()
    base = load_darknet(FASTEST / "yolo-fastest-1.1.cfg", FASTEST / "yolo-fastest-1.1.weights").eval()
    assert s8.head_spec["strides"] == [32, 16, 8] and [len(a) for a in s8.head_spec["anchors"]] == [3, 3, 3]
    own, lent = s8.state_dict(), base.state_dict()
    assert all(k in own and own[k].shape == v.shape for k, v in lent.items())
    s8.load_state_dict(lent, strict=False)
    x = torch.rand(1, 3, 320, 320)
    with torch.no_grad():
        new, old = s8(x), base(x)
    assert [tuple(o.shape) for o in new] == [(1, 255, 10, 10), (1, 255, 20, 20), (1, 255, 40, 40)]
    assert all(torch.equal(a, b) for a, b in zip(new[:2], old))  # the first two heads are Yolo-Fastest's own
