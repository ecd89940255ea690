"""``--qat``: conv inputs rounded to 256 levels in training steps, straight-through gradient, float otherwise."""

from __future__ import annotations

import torch
from torch import nn

from edgekit.train.qat import Rounding, attach


def test_training_input_is_rounded_to_256_levels_with_a_straight_through_gradient():
    conv = nn.Conv2d(1, 1, 1, bias=False).train()
    nn.init.ones_(conv.weight)
    x = torch.linspace(-1.0, 3.0, 5000).view(1, 1, 1, 5000).requires_grad_(True)
    (rounded,) = Rounding().pre(conv, (x,))
    step = 4.0 / 255
    assert rounded.unique().numel() <= 256
    assert (rounded - x).abs().max() <= step / 2 + 1e-6
    assert (rounded == 0).any()  # zero stays exactly representable, as INT8 converters keep it
    rounded.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))  # inside the range the gradient passes unchanged


def test_eval_mode_is_untouched_and_ranges_follow_the_batches():
    conv = nn.Conv2d(1, 1, 1)
    hook = Rounding(momentum=0.5)
    assert hook.pre(conv.eval(), (torch.ones(1, 1, 2, 2),)) is None and hook.lo is None
    assert hook.post(conv, (), torch.ones(1, 1, 2, 2)) is None and hook.lo is None
    conv.train()
    hook.pre(conv, (torch.tensor([0.0, 2.0]).view(1, 1, 1, 2),))
    hook.pre(conv, (torch.tensor([0.0, 4.0]).view(1, 1, 1, 2),))
    assert (hook.lo, hook.hi) == (0.0, 3.0)


def test_attach_rounds_every_conv_input_and_output_in_training_only():
    from edgekit.models import create_model

    model = create_model("mobilenetv2_050-yolo", num_classes=2)
    norms = attach(model)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(norms) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 3
    seen_in, seen_out = [], []
    convs[2].register_forward_pre_hook(lambda m, a: seen_in.append(a[0].detach().clone()))
    norms[2].register_forward_hook(lambda m, a, o: seen_out.append(o.detach().clone()))
    x = torch.rand(2, 3, 64, 64)
    model.train()(x)
    model.eval()(x)
    assert seen_in[0].unique().numel() <= 256 < seen_in[1].unique().numel()
    assert seen_out[0].unique().numel() <= 256 < seen_out[1].unique().numel()
    assert set(model.state_dict()) == set(create_model("mobilenetv2_050-yolo", num_classes=2).state_dict())


def test_train_cli_qat_runs_and_is_recorded(tmp_path, sample_yaml):
    from edgekit.cli.main import main

    out = tmp_path / "run"
    assert main(["train", "--model", "yolo-lite", "--data", str(sample_yaml), "--imgsz", "64", "--epochs", "1",
                 "--batch", "8", "--qat", "--out", str(out), "--json"]) == 0
    ck = torch.load(out / "weights" / "best.pt", map_location="cpu", weights_only=True)
    assert ck["train_options"]["qat"] is True


def test_train_cli_refuses_qat_for_classifiers(tmp_path, capsys):
    from edgekit.cli.main import main

    assert main(["train", "--model", "mobilenetv2-cls", "--task", "classify", "--data", str(tmp_path),
                 "--qat", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "--qat" in err and "Traceback" not in err
