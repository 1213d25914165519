"""How many drawings an int8 export needs to calibrate on: top-1 agreement with fp32 against
the number of calibration drawings (the figures behind ``export.INT8_MIN_CALIBRATION``).

For each count N, the exported fp32 model is quantised (``export.quantize_int8``, the same
static QDQ scheme ``quicksketch export --int8`` uses) on N of the checkpoint's held-out
drawings and checked on the same ``--check`` other held-out drawings::

    .venv/bin/python scripts/int8_calibration.py pretrained --data DIR_WITH_THE_TEN

Prints one line per N: agreement with fp32 and held-out accuracy of the int8 model. Outputs go
to a temporary folder.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from quicksketch_lib.checkpoint import load_checkpoint
from quicksketch_lib.data import normalize_batch
from quicksketch_lib.evaluation import evaluation_set, load_for_checkpoint
from quicksketch_lib.export import export_onnx, quantize_int8
from quicksketch_lib.inference import OnnxModel


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="checkpoint .pt or 'pretrained'")
    p.add_argument("--data", required=True, help="the folder it was trained on (its held-out split is used)")
    p.add_argument("--counts", type=int, nargs="+", default=[1, 3, 10, 30, 100, 300, 512])
    p.add_argument("--check", type=int, default=2000, help="held-out drawings the agreement is measured on")
    args = p.parse_args()
    torch.set_num_threads(1)
    ckpt = load_checkpoint(args.checkpoint)
    images, labels, subset = evaluation_set(ckpt, load_for_checkpoint(ckpt, args.data))
    order = np.random.default_rng(0).permutation(len(images))
    check, pool = order[:args.check], order[args.check:]
    to_input = lambda idx: normalize_batch(torch.from_numpy(np.ascontiguousarray(images[idx]))).numpy()  # noqa: E731
    print(f"{len(images):,} drawings ({subset}); agreement and accuracy on {len(check):,} of them")
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(ckpt, Path(tmp) / "fp32.onnx").path
        reference = OnnxModel(fp32).logits(to_input(check)).argmax(1)
        print(f"fp32: held-out accuracy {np.mean(reference == labels[check]):.2%}")
        for n in args.counts:
            int8 = quantize_int8(fp32, to_input(pool[:n]), Path(tmp) / f"int8_{n}.onnx")
            answer = OnnxModel(int8).logits(to_input(check)).argmax(1)
            print(f"calibrated on {n:>4} drawings: top-1 agreement with fp32 {np.mean(answer == reference):.2%}, "
                  f"held-out accuracy {np.mean(answer == labels[check]):.2%}", flush=True)


if __name__ == "__main__":
    main()
