"""Run folders as `nnrecipe train` leaves them (train_table writes the journal, the prediction watch,
the validation predictions and samples, and the report), plus an HTML reader built on the standard
library's parser."""

from __future__ import annotations

import base64
import io
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import torch

from nnrecipe import TrainConfig, train_table
from nnrecipe.testing import small_table


def integrated_run(out: Path, df: pd.DataFrame, *, note: str = "", parent: Path | None = None,
                   lr_find: str = "off", **train: object) -> Path:
    """train_table's own run folder, report included."""
    tcfg = TrainConfig(**{"seed": 0, "epochs": 4, **train})
    return train_table(df, "y", out=out, train_config=tcfg, note=note, lr_find=lr_find, parent=parent).run_dir


@pytest.fixture(scope="session")
def classification_run(tmp_path_factory) -> Path:
    """Multiclass, with the LR range test and a note that holds markup."""
    torch.set_num_threads(1)
    return integrated_run(tmp_path_factory.mktemp("runs"), small_table(240, task="multiclass"), lr_find="on",
                          note="first <b>try</b> & see")


@pytest.fixture(scope="session")
def regression_run(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    return integrated_run(tmp_path_factory.mktemp("runs"), small_table(160, task="regression"), epochs=3)


class Page(HTMLParser):
    """Every tag with its attributes, the ids of the sections in order, the text."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.sections: list[str] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "section":
            self.sections.append(attrs.get("id"))

    def handle_data(self, data):
        self.text.append(data)

    @property
    def images(self) -> list[str]:
        return [a["src"] for t, a in self.tags if t == "img"]

    def links(self) -> list[str]:
        """Every attribute that can load or point to something."""
        return [v for _, a in self.tags for k, v in a.items() if k in ("src", "href", "action", "srcset", "data")
                and v is not None]


@pytest.fixture
def page():
    return lambda path: Page(Path(path).read_text())


@pytest.fixture
def check_images():
    def check(page: Page, at_least: int) -> None:
        """Each image is a PNG data URI that decodes and opens; no link goes off the page."""
        from PIL import Image

        assert len(page.images) >= at_least
        for src in page.images:
            assert src.startswith("data:image/png;base64,")
            data = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            with Image.open(io.BytesIO(data)) as im:
                im.verify()
        for link in page.links():
            assert not link.lower().startswith(("http:", "https:", "//", "ftp:")), link

    return check
