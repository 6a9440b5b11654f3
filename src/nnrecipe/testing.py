"""Shared helpers for tests: small seeded tables and tensors (no downloads)."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch


def breast_cancer_csv(path: str | Path, target: str = "diagnosis") -> Path:
    """scikit-learn's bundled breast cancer data as a CSV with class names 'malignant'/'benign'."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame[target] = frame.pop("target").map({0: "malignant", 1: "benign"})
    path = Path(path)
    frame.to_csv(path, index=False)
    return path


def blobs(n: int = 512, features: int = 8, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable Gaussian blobs: (X float32 (n, features), y int64 (n,))."""
    g = np.random.default_rng(seed)
    centers = g.normal(0, 3, size=(classes, features))
    y = g.integers(0, classes, size=n)
    X = centers[y] + g.normal(0, 1, size=(n, features))
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y)


def small_table(n: int = 300, seed: int = 0, task: str = "binary") -> pd.DataFrame:
    """A mixed table: two numeric columns, a categorical one, and a target that depends on them."""
    g = np.random.default_rng(seed)
    a, b = g.normal(size=n), g.normal(size=n)
    color = g.choice(["red", "green", "blue"], size=n)
    signal = a + 0.5 * b + (color == "red")
    frame = pd.DataFrame({"a": a, "b": b, "color": color})
    if task == "regression":
        frame["y"] = 3 * signal + g.normal(0, 0.1, size=n)
    elif task == "multiclass":
        frame["y"] = np.digitize(signal, [-0.5, 0.5, 1.5])
    else:
        frame["y"] = np.where(signal > 0.3, "yes", "no")
    return frame


def states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Bit for bit: same keys, dtypes, shapes and values."""
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def _bits(t: torch.Tensor) -> bytes:
    return t.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def assert_identical(a: Any, b: Any, where: str = "state") -> None:
    """Same types all the way down (int keys stay ints, tuples stay tuples), tensors bit for bit."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert (a.dtype, a.shape, a.device.type) == (b.dtype, b.shape, "cpu"), where
        assert _bits(a) == _bits(b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where  # keys, their types and their order
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), f"{where}: {a!r} != {b!r}"  # -0.0, inf
    else:
        assert a == b, where


def assert_bad_input(result: tuple[int, str, str], message: str) -> None:
    """A CLI result (exit code, stdout, stderr) of bad input: exit code 2, nothing on stdout, and one error on
    stderr, its last line `message`, matched whole (the library's warnings, such as rows left out for an empty
    target, may come before it)."""
    code, out, err = result
    assert "Traceback" not in err
    lines = err.splitlines()
    assert (code, out) == (2, "") and lines[-1] == f"nnrecipe: error: {message}", err
    assert sum(line.startswith("nnrecipe: error:") for line in lines) == 1


def run_with_kills(argv: list[str], kills: int, seed: int, low: float = 1.0, high: float = 6.0,
                   env: dict[str, str] | None = None) -> list[str]:
    """Run the command `argv` again and again, killing it (SIGKILL, its whole process group: the workers it
    started too) `kills` times after seeded random delays in [low, high) seconds, then once more to its end.
    Returns what happened to each start ('killed after 2.31 s', 'ended with 0'). For the fault tests of
    resumable commands (tests/tune, benchmarks/tune_kills.py): the delays only pick where the kills land;
    what a test asserts is the state after the last run, whatever they were."""
    import random
    import signal
    import subprocess

    draws = random.Random(seed)
    log = []
    for k in range(kills + 1):
        last = k == kills  # only the last run's messages are read: a pipe no one reads could block the others
        proc = subprocess.Popen(argv, start_new_session=True, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE if last else subprocess.DEVNULL)
        if not last:
            delay = draws.uniform(low, high)
            try:
                proc.wait(timeout=delay)
                log.append(f"ended with {proc.returncode} before its kill at {delay:.2f} s")
                continue
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                log.append(f"killed after {delay:.2f} s")
                continue
        _, err = proc.communicate()
        log.append(f"ended with {proc.returncode}")
        if proc.returncode != 0:
            raise AssertionError(f"the last run of {argv} ended with {proc.returncode}:\n{err.decode()[-3000:]}")
    return log


def write_image_folder(out: str | Path, pixels_uint8: Any, labels: Any, fmt: str = "png") -> Path:
    """Images as files in a folder with a subfolder per class (the layout `read_images` reads): image i of
    `pixels_uint8` ((N, H, W) grey or (N, H, W, 3) colour, uint8 array or tensor) goes to
    OUT/<labels[i]>/<i, 4 digits or more>.<fmt>. Returns `out`."""
    from PIL import Image

    out = Path(out)
    pixels = np.asarray(pixels_uint8)
    if pixels.dtype != np.uint8 or pixels.ndim not in (3, 4):
        raise ValueError(f"pixels_uint8: uint8 (N, H, W) or (N, H, W, 3) expected, got {pixels.dtype} {pixels.shape}")
    width = max(4, len(str(len(pixels) - 1)))
    for label in sorted({str(c) for c in labels}):
        (out / label).mkdir(parents=True, exist_ok=True)
    for i, (image, label) in enumerate(zip(pixels, labels)):
        Image.fromarray(image).save(out / str(label) / f"{i:0{width}d}.{fmt}")
    return out


def shape_images(n: int, side: int = 32, seed: int = 0,
                 classes: tuple[str, ...] = ("circle", "square")) -> tuple[np.ndarray, list[str]]:
    """n seeded colour images, (n, side, side, 3) uint8, each a filled circle or square (by its class, in
    turn) of random size, place and colour on a random background with pixel noise: every image distinct,
    no two alike enough to be near duplicates. Classes other than circle and square are drawn as triangles."""
    from PIL import Image, ImageDraw

    g = np.random.default_rng(seed)
    out = np.empty((n, side, side, 3), dtype=np.uint8)
    labels = [classes[i % len(classes)] for i in range(n)]
    for i, label in enumerate(labels):
        img = Image.new("RGB", (side, side), tuple(int(v) for v in g.integers(0, 256, 3)))
        draw = ImageDraw.Draw(img)
        r = g.uniform(0.2, 0.4) * side
        cx, cy = g.uniform(r, side - r, 2)
        box = (cx - r, cy - r, cx + r, cy + r)
        fill = tuple(int(v) for v in g.integers(0, 256, 3))
        if label == "circle":
            draw.ellipse(box, fill=fill)
        elif label == "square":
            draw.rectangle(box, fill=fill)
        else:
            draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
        noisy = np.asarray(img, dtype=np.int16) + g.integers(-4, 5, (side, side, 3))
        out[i] = np.clip(noisy, 0, 255).astype(np.uint8)
    return out, labels


DOCSTRING_MODULES = ("math", "os", "inspect", "pathlib", "tarfile", "datetime", "decimal", "calendar", "logging",
                     "socket", "sqlite3", "threading")


def docstring_table(modules: tuple[str, ...] = DOCSTRING_MODULES, per_module: int = 40, seed: int = 0) -> pd.DataFrame:
    """A table whose only informative column is text: the first paragraph of the docstrings of the Python
    standard library's public functions, classes and methods (at least 3 words), the module as the label
    (at most `per_module` a module, a seeded sample), beside a column of noise and a row ID. The case of issue
    21: a text column the recipe once dropped as free text."""
    import importlib
    import inspect

    rows = []
    for name in modules:
        mod = importlib.import_module(name)
        docs: set[str] = set()
        for attr, obj in sorted(vars(mod).items()):
            if attr.startswith("_") or getattr(obj, "__module__", None) not in (name, None) and not inspect.isbuiltin(obj):
                continue
            members = [obj] + ([v for k, v in sorted(vars(obj).items()) if not k.startswith("_")]
                               if inspect.isclass(obj) else [])
            for member in members:
                doc = inspect.getdoc(member) if callable(member) or inspect.isclass(member) else None
                if doc and len(doc.split()) >= 3:
                    docs.add(doc.split("\n\n")[0])
        picked = sorted(docs)
        picked = [picked[i] for i in np.sort(np.random.default_rng(seed).permutation(len(picked))[:per_module])]
        rows += [(doc, name) for doc in picked]
    g = np.random.default_rng(seed)
    frame = pd.DataFrame(rows, columns=["doc", "module"]).iloc[g.permutation(len(rows))].reset_index(drop=True)
    frame.insert(0, "id", np.arange(len(frame)))
    frame.insert(2, "noise", np.round(g.normal(size=len(frame)), 4))
    return frame


def pendulum(n: int, seed: int = 0, dt: float = 0.01) -> pd.DataFrame:
    """A simulator's table (T15's demo): a damped pendulum, theta'' = -(g / L) sin(theta) - c theta', g/L = 9.81,
    integrated with fourth-order Runge-Kutta at step `dt` from a random start (theta0 in [-pi/2, pi/2] rad,
    omega0 in [-1, 1] rad/s, damping c in [0.05, 0.5] 1/s) to a random time t in [0, 5] s; the target is
    theta(t). Deterministic given the inputs: the kind of table a surrogate learns."""
    g = np.random.default_rng(seed)
    frame = pd.DataFrame({"theta0": g.uniform(-np.pi / 2, np.pi / 2, n), "omega0": g.uniform(-1, 1, n),
                          "damping": g.uniform(0.05, 0.5, n), "t": g.uniform(0, 5, n)})
    frame["theta"] = simulate_pendulum(frame[["theta0", "omega0", "damping", "t"]].to_numpy(), dt)
    return frame


def simulate_pendulum(rows: np.ndarray, dt: float = 0.01) -> np.ndarray:
    """theta(t) of each row (theta0, omega0, damping, t) of `rows`, all rows integrated together (RK4), each
    stopped at its own t (the last step shortened to land on it)."""
    theta, omega, c, t_end = (rows[:, i].astype(np.float64) for i in range(4))

    def accel(th: np.ndarray, om: np.ndarray) -> np.ndarray:
        return -9.81 * np.sin(th) - c * om

    t = np.zeros_like(t_end)
    while (t < t_end).any():
        h = np.clip(t_end - t, 0.0, dt)  # 0 for rows that arrived
        k1t, k1o = omega, accel(theta, omega)
        k2t, k2o = omega + h / 2 * k1o, accel(theta + h / 2 * k1t, omega + h / 2 * k1o)
        k3t, k3o = omega + h / 2 * k2o, accel(theta + h / 2 * k2t, omega + h / 2 * k2o)
        k4t, k4o = omega + h * k3o, accel(theta + h * k3t, omega + h * k3o)
        theta = theta + h / 6 * (k1t + 2 * k2t + 2 * k3t + k4t)
        omega = omega + h / 6 * (k1o + 2 * k2o + 2 * k3o + k4o)
        t = t + h
    return theta
