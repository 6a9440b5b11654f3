"""D8/D9/D10: preprocessing fitted on the training split only, stored as JSON with the model, applied
identically at prediction time.

- numeric: standardized (default), scaled to [-1, 1] ('minmax', the article "Tips and tricks for Neural
  Networks"), or centred on the median and divided by the interquartile range ('robust', for heavy
  outliers); empty cells take the training centre and, when training had any, an indicator column
  `COL__missing` is added.
- boolean: 0/1 (empty cells take the training share of true).
- datetime: the time itself (days since 1970, fractional, standardized: a trend such as an era of a
  treatment or a rising price is one feature, not a year and a month apart) and the day of month
  standardized, month and weekday one-hot (D9: "arbitrary indices such as the weekday"), the hour when
  training saw times of day; an indicator when training had empty cells. (Runs saved before the time
  feature have the year in its place, and keep it.)
- categorical: one-hot over the training categories (empty cells are a category); unseen: all zeros.
- embedding: an integer code per category for a learned embedding (D10); 0 is the unseen-category code.
- text: the cell's first word tokens as TF-IDF over word 1-2-grams, packed as term ids and weights
  (data/text/bag.py; `text_inputs`), the vocabulary and idf fitted on the training rows.
Cells outside what training saw (unseen categories, empty cells without an indicator) are counted.

Numbers in text cells are read as people write them too: '1,234' (thousands separators, groups of three
digits), '12%' (read as 12) and '$3.50' or '3.50 EUR' (a currency sign), beside plain numbers. They are
parsed where numbers are parsed (here, for training and prediction alike, and by the schema), never when the
file is read: `clean` writes the cells as they were, and a stray cell is named like any typo."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, shorten
from .text.bag import TextEncoder, fit_text_column
from .text.encoder import encoded

MISSING = "<missing>"
SCALINGS = ("standard", "minmax", "robust")


def _as_categories(s: pd.Series) -> pd.Series:
    return s.astype("string").fillna(MISSING)


def _category_codes(s: pd.Series, categories: list[str]) -> np.ndarray:
    """The position of each cell's category in `categories`, -1 for one not there (a hash lookup in C:
    a Python dict per cell took 1 s per million cells)."""
    if isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow":  # read_table's text: in Arrow
        import pyarrow as pa
        import pyarrow.compute as pc

        found = pc.index_in(pc.fill_null(pa.array(s.array), MISSING), value_set=pa.array(categories, pa.string()))
        return pc.fill_null(found, -1).to_numpy()
    return pd.Index(categories, dtype=object).get_indexer(_as_categories(s).to_numpy(dtype=object))


def _as_numbers(s: pd.Series, boolean: bool = False) -> np.ndarray:
    if boolean and not pd.api.types.is_bool_dtype(s):  # 'true' / 'false' text
        lower = s.astype("string").str.strip().str.lower()
        return np.where(lower.isna(), np.nan, (lower == "true").fillna(False).to_numpy(dtype=np.float64))
    if pd.api.types.is_bool_dtype(s):
        return s.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
    if pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    return to_numbers(s)


# Numbers as people write them (see the module's docstring). A thousands group starts with 1-9 ('0,237' is a
# decimal comma or a code, not 237); the sign goes before the currency sign or after it ('-$18.54', and
# '$-18.54' as Python's f"${x:,.2f}" and many exports write a negative amount).
NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
THOUSANDS = r"[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?"
CURRENCY = "$\u20ac\u00a3\u00a5"
WRITTEN = {  # how they are written: the pattern of a whole cell
    "thousands separators": re.compile(rf"[-+]?{THOUSANDS}"),
    "a percent sign": re.compile(rf"[-+]?(?:{THOUSANDS}|{NUMBER})\s?%"),
    "a currency sign": re.compile(rf"(?:[-+]?[{CURRENCY}]\s?|[{CURRENCY}]\s?[-+])(?:{THOUSANDS}|{NUMBER})|[-+]?(?:{THOUSANDS}|{NUMBER})\s?[{CURRENCY}]"),
    # typeset minus (U+2212: Word, LaTeX and Wikipedia tables) and accounting negatives '(1,234.50)'
    "a minus sign (\u2212)": re.compile(rf"\u2212\s?[{CURRENCY}]?(?:{THOUSANDS}|{NUMBER})"),
    "parentheses for negatives": re.compile(rf"\(\s?[{CURRENCY}]?\s?(?:{THOUSANDS}|{NUMBER})\s?\)"),
}
MARKS = re.compile(rf"[,%\s{CURRENCY}]")
NEGATIVE = re.compile(r"^[(\u2212]")  # how the last two write the sign: read as '-'


def to_numbers(s: pd.Series) -> np.ndarray:
    """The numbers a column of text holds, plain or written (WRITTEN), float64; NaN where a cell is empty
    or not a number."""
    text = s.astype("string").str.strip()
    values = pd.to_numeric(text, errors="coerce")
    failed = values.isna() & text.notna() & (text != "")
    if failed.any():
        rest = text[failed]
        written = np.zeros(len(rest), dtype=bool)
        for pattern in WRITTEN.values():
            written |= rest.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)
        if written.any():
            plain = rest[written].str.replace(MARKS, "", regex=True).str.replace(NEGATIVE, "-", regex=True)\
                .str.rstrip(")")
            values = values.astype("float64")
            values.loc[plain.index] = pd.to_numeric(plain, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def written_as(sample: pd.Series) -> tuple[str, str] | None:
    """How numbers are written in a sample of text cells ('thousands separators', an example), when one is."""
    text = sample.astype("string").str.strip().dropna()
    for what, pattern in WRITTEN.items():
        matched = text[text.str.fullmatch(pattern).fillna(False).to_numpy(dtype=bool)]
        if len(matched):
            return what, str(matched.iloc[0])
    return None


# a date written with numbers and separators, day and month in either order: 31/12/2020, 1.2.21, 05-06-2021
_NUMERIC_DATE = r"^\s*(\d{1,2})[/.\-](\d{1,2})[/.\-]\d{2,4}\b"


def writes_day_first(text: pd.Series, parts: pd.DataFrame | None = None) -> bool:
    """Whether a column's numeric dates put the day first: some first field above 12 and no second one.
    `parts`: the column's fields by _NUMERIC_DATE, when the caller has them."""
    parts = text.astype("string").str.extract(_NUMERIC_DATE) if parts is None else parts
    first, second = (pd.to_numeric(parts[k], errors="coerce") for k in (0, 1))
    return bool((first > 12).any()) and not bool((second > 12).any())


def day_first(text: pd.Series, parsed: pd.Series, utc: bool = False, first: bool | None = None) -> pd.Series:
    """`parsed` (the column's cells read by pandas) with its numeric dates read day first when the column
    writes the day first (`first`; None: judged from `text` by writes_day_first). Read cell by cell, pandas
    takes 01/02/2020 as 2 January and 13/02/2020 as 13 February, and a column of British dates comes out half
    month-first. Cells in other formats (ISO 2020-02-01) keep their reading."""
    if first is False:
        return parsed
    parts = text.astype("string").str.extract(_NUMERIC_DATE)  # one pass over the cells for both questions
    if first is None and not writes_day_first(text, parts):
        return parsed
    cells = parts[0].notna().to_numpy(dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = pd.to_datetime(text[cells].astype("string"), errors="coerce", format="mixed", dayfirst=True, utc=utc)
    out = parsed.copy()
    out.iloc[np.flatnonzero(cells)] = again.array  # by position: an index may repeat
    return out


def _as_dates(s: pd.Series, first: bool | None = None) -> pd.Series:
    """A column's dates; `first`: its numeric dates day first (None: judged from the column itself)."""
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.tz_localize(None) if getattr(s.dt, "tz", None) is not None else s
    parsed = parse_dates(s.astype("string"))
    return day_first(s, parsed, utc=getattr(parsed.dt, "tz", None) is not None, first=first)


def parse_dates(cells: pd.Series) -> pd.Series:
    """Dates of any written form, NaT where a cell is none; times with different offsets ('Z' beside
    '+10:00') in UTC, as pandas will not hold several zones in one column (it raised)."""
    with warnings.catch_warnings():  # pandas warns when it has to guess the format per element
        warnings.simplefilter("ignore")
        try:
            return pd.to_datetime(cells, errors="coerce", format="mixed")
        except (ValueError, TypeError):
            return pd.to_datetime(cells, errors="coerce", format="mixed", utc=True)


def _days(d: pd.Series) -> np.ndarray:
    """Days since 1970-01-01 (fractional; NaN for an empty cell), whatever the datetime unit."""
    # through whole seconds since the epoch: a Timestamp difference is in nanoseconds, which overflow past
    # the year 2262 (a placeholder such as 9999-12-31 is a date people write)
    if getattr(d.dt, "tz", None) is not None:  # '2020-01-01T00:00:00Z' parses with a timezone: its UTC time
        d = d.dt.tz_convert("UTC").dt.tz_localize(None)
    v = d.to_numpy()
    seconds = v.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    seconds[np.isnat(v)] = np.nan
    return seconds / 86400.0


def embedding_dim(n_categories: int) -> int:
    """D10: fastai's rule of thumb (`emb_sz_rule`, fitted on many tabular tasks): min(600, 1.6 n^0.56)."""
    return int(min(600, round(1.6 * n_categories ** 0.56)))


def _scale(x: np.ndarray, how: str) -> tuple[float, float]:
    """(centre, scale) of the finite values of x, so that (x - centre) / scale is the scaled feature. Values
    near the float64 limits (1e308: their sum or square overflows, and the mean and std came out NaN, every
    feature with them) or below its normal range (1e-320: squares underflow to 0) are scaled by the largest
    magnitude first."""
    ok = x[np.isfinite(x)]  # inf is refused before (schema.numeric_problems); NaN is imputed
    if len(ok) == 0:
        return 0.0, 1.0
    with np.errstate(over="ignore", invalid="ignore"):
        centre, scale = _plain_scale(ok, how)
    top = float(np.abs(ok).max())
    if np.isfinite(centre) and np.isfinite(scale) and (scale != 1.0 or top == 0 or top >= 1e-150):
        return centre, scale
    centre, scale = _plain_scale(ok / top, how)  # in [-1, 1]: nothing overflows
    return centre * top, min(scale * top, float(np.finfo(np.float64).max)) or 1.0


def mean_std(x: np.ndarray) -> tuple[float, float]:
    """The mean and std of finite values, without overflow for values near 1e308 (their sum and squares
    pass the float64 limit): computed in units of the largest magnitude when the plain ones are not finite."""
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(x.mean()), float(x.std())
    if np.isfinite(mean) and np.isfinite(std) or not len(x):
        return mean, std
    top = float(np.abs(x).max())
    u = x / top
    return float(u.mean()) * top, min(float(u.std()) * top, float(np.finfo(np.float64).max))


def _plain_scale(ok: np.ndarray, how: str) -> tuple[float, float]:
    if how == "minmax":
        lo, hi = float(ok.min()), float(ok.max())
        return (lo + hi) / 2, ((hi - lo) / 2) or 1.0
    if how == "robust":
        q1, med, q3 = np.percentile(ok, [25, 50, 75])
        return float(med), float(q3 - q1) or float(ok.std()) or 1.0
    return float(ok.mean()), float(ok.std()) or 1.0


def _fits_float32(scaled: np.ndarray, x: np.ndarray, df: pd.DataFrame, col: str) -> None:
    """A value the training rows' scaling leaves beyond float32 (a 1e300 among values of 10) became inf in
    the model's inputs and NaN in its output, with a class beside it: refused, naming the cell."""
    far = np.abs(scaled) > np.finfo(np.float32).max
    if far.any():
        at = int(np.flatnonzero(far)[0])
        row = df.index[at] if isinstance(df.index[at], (int, np.integer)) else at  # the file's 0-based data row
        raise DataError(f"column '{shorten(col)}', data row {row + 1} (line {row + 2} of a CSV with a header): the "
                        f"value {x[at]:g} is beyond what the "
                        f"model takes (after the training rows' scaling it passes float32's {np.finfo(np.float32).max:.1e}; "
                        f"{int(far.sum())} such cells); check the value (a unit or a typo), or leave the row out")


def _scaled(x: np.ndarray, centre: float, scale: float) -> np.ndarray:
    """(x - centre) / scale, without overflow where x - centre passes the float64 limit (x near 1e308)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = (x - centre) / scale
        wrong = np.isinf(out) & np.isfinite(x)
        if wrong.any():
            out[wrong] = x[wrong] / scale - centre / scale
    return out


@dataclass
class TablePreprocessor:
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    _text: Any = field(default=None, repr=False, compare=False)  # the TextEncoder, built once from the JSON

    @classmethod
    def fit(cls, df: pd.DataFrame, kinds: dict[str, str], scaling: str = "standard",
            max_tokens: int | None = None) -> TablePreprocessor:
        columns: dict[str, dict[str, Any]] = {}
        for col, kind in kinds.items():
            s = df[col]
            if kind == "text":
                columns[col] = fit_text_column(s, col, max_tokens)
                continue
            if kind in ("numeric", "boolean"):
                x = _as_numbers(s, kind == "boolean")
                centre, scale = _scale(x, scaling if kind == "numeric" else "standard")
                if kind == "boolean":
                    centre, scale = (float(np.nanmean(x)) if (~np.isnan(x)).any() else 0.0), 1.0
                columns[col] = {"kind": kind, "center": centre, "scale": scale, "indicator": bool(np.isnan(x).any())}
            elif kind == "datetime":
                # day first or not is judged on the training rows and kept, so that predict reads a file of
                # dates such as 01/02/2020 alone as training read them
                # (recorded only when the training rows wrote numeric dates: a column trained on ISO dates is
                # judged from the file predict is given, where '02/01/2020' beside '13/01/2020' is day first)
                numeric = not pd.api.types.is_datetime64_any_dtype(s) and \
                    bool(s.astype("string").str.extract(_NUMERIC_DATE)[0].notna().any())
                first = numeric and writes_day_first(s)
                d = _as_dates(s, first)
                ok = d.dropna()
                columns[col] = {"kind": "datetime", "time": list(_scale(_days(ok), "standard")),
                                "hour": bool((ok.dt.hour != 0).any() or (ok.dt.minute != 0).any()),
                                "indicator": bool(d.isna().any()), **({"day_first": first} if numeric else {})}
            else:
                cats = sorted(_as_categories(s).unique())
                columns[col] = {"kind": kind, "categories": cats}
                if kind == "embedding":
                    columns[col]["dim"] = embedding_dim(len(cats) + 1)
        return cls(columns)

    @property
    def text_columns(self) -> list[str]:
        return [col for col, c in self.columns.items() if c["kind"] == "text"]

    @property
    def text_terms(self) -> int:
        """Ids of the text columns' bags (every column's terms and the padding id 0); 0 without text."""
        return self._encoder().n_terms if self.text_columns else 0

    def _encoder(self) -> Any:
        if self._text is None:
            self._text = TextEncoder({col: self.columns[col] for col in self.text_columns})
        return self._text

    def text_inputs(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, int]]] | None:
        """The text columns' (N, L) term ids and weights and per column the truncated rows, word tokens and
        unknown word tokens (data/text/bag.py); None when the table has no text column."""
        return self._encoder().encode(df) if self.text_columns else None

    @property
    def raw_features(self) -> list[int]:
        """The positions in the features of the pretrained text encoders' dimensions (--text-encoder)."""
        blocks = [f"{col}__{c['encoder'].get('label', c['encoder']['name'])}" for col, c in self.columns.items()
                  if "encoder" in c]
        return [i for i, n in enumerate(self.feature_names)
                if any(n.startswith(b) and n[len(b):].isdigit() for b in blocks)]

    def text_sequences(self, df: pd.DataFrame) -> tuple[np.ndarray, list[int]]:
        """--text-model transformer's word ids of the text columns (data/text/bag.py `sequences`)."""
        return self._encoder().sequences(df)

    def terms_read(self, ids: np.ndarray, weights: np.ndarray) -> list[str]:
        """Each row's text terms as the model reads them, heaviest first (D14)."""
        return self._encoder().terms_read(ids, weights)

    @property
    def embeddings(self) -> list[tuple[int, int]]:
        """(number of codes, width) of each embedded column, in column order; code 0 is 'unseen'."""
        return [(len(c["categories"]) + 1, c["dim"]) for c in self.columns.values() if c["kind"] == "embedding"]

    @property
    def feature_names(self) -> list[str]:
        names: list[str] = []
        for col, c in self.columns.items():
            kind = c["kind"]
            if kind in ("numeric", "boolean"):
                names += [col] + ([f"{col}__missing"] if c["indicator"] else [])
            elif kind == "datetime":
                names += [f"{col}__{'time' if 'time' in c else 'year'}", f"{col}__day"]
                names += [f"{col}__hour"] if c["hour"] else []
                names += [f"{col}__month={m}" for m in range(1, 13)] + [f"{col}__weekday={d}" for d in range(7)]
                names += [f"{col}__missing"] if c["indicator"] else []
            elif kind == "categorical":
                names += [f"{col}={v}" for v in c["categories"]]
            elif kind == "text" and "encoder" in c:
                short = c["encoder"].get("label", c["encoder"]["name"])
                names += [f"{col}__{short}{j}" for j in range(c["encoder"]["dim"])]
        # a column of the user's named like a made feature ('a__missing' beside a's own indicator): the later
        # one gets '#2', so that every feature keeps a name of its own in model.json and the report
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                names[i] = f"{name}#{seen[name]}"
        return names

    def transform(self, df: pd.DataFrame, embedded: dict[str, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None, dict[str, int]]:
        """(N, F) float32 features; (N, E) int64 codes of the embedded columns (None without any); and
        per column the count of cells outside what training saw. A text column read by a pretrained encoder
        (--text-encoder) adds its standardised embedding to the features: `embedded`, its raw embeddings when
        the caller has just computed them, else the encoder runs here."""
        blocks: list[np.ndarray] = []
        codes: list[np.ndarray] = []
        unknown: dict[str, int] = {}
        n = len(df)
        for col, c in self.columns.items():
            kind = c["kind"]
            if kind in ("numeric", "boolean"):
                x = _as_numbers(df[col], kind == "boolean")
                miss = np.isnan(x)
                scaled = _scaled(np.where(miss, c["center"], x), c["center"], c["scale"])
                _fits_float32(scaled, x, df, col)
                blocks.append(scaled[:, None])
                if c["indicator"]:
                    blocks.append(miss[:, None].astype(np.float64))
                elif miss.any():
                    unknown[col] = int(miss.sum())
            elif kind == "datetime":
                d = _as_dates(df[col], c.get("day_first"))
                miss = d.isna().to_numpy()
                if "time" in c:
                    trend = (_days(d) - c["time"][0]) / c["time"][1]
                else:  # a run saved before the time feature
                    trend = (d.dt.year.to_numpy(dtype=np.float64, na_value=np.nan) - c["year"][0]) / c["year"][1]
                day = (d.dt.day.to_numpy(dtype=np.float64, na_value=np.nan) - 16.0) / 8.8  # uniform on 1..31
                parts = [trend, day]
                if c["hour"]:
                    parts.append((d.dt.hour.to_numpy(dtype=np.float64, na_value=np.nan) - 11.5) / 6.9)
                blocks.append(np.nan_to_num(np.stack(parts, axis=1)))
                blocks.append(_one_hot(d.dt.month.to_numpy(dtype=np.float64, na_value=np.nan) - 1, 12))
                blocks.append(_one_hot(d.dt.day_of_week.to_numpy(dtype=np.float64, na_value=np.nan), 7))
                if c["indicator"]:
                    blocks.append(miss[:, None].astype(np.float64))
                elif miss.any():
                    unknown[col] = int(miss.sum())
            elif kind == "text":  # the bags: text_inputs; a pretrained encoder's embedding: a block of features
                if "encoder" in c:
                    blocks.append(encoded(c["encoder"], df[col], (embedded or {}).get(col)))
            else:
                found = _category_codes(df[col], c["categories"]).astype(np.int64)
                seen = found >= 0
                if (~seen).any():
                    unknown[col] = int((~seen).sum())
                if kind == "embedding":
                    codes.append(found + 1)  # 0: unseen in training
                else:
                    blocks.append(_one_hot(np.where(seen, found, np.nan), len(c["categories"])))
        features = _assemble(blocks, n)
        return features, (np.stack(codes, axis=1) if codes else None), unknown

    def to_dict(self) -> dict[str, Any]:
        return {"columns": self.columns}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TablePreprocessor:
        return cls(dict(d["columns"]))


ROWS_PER_BLOCK = 8192  # 68 float32 columns of 8192 rows (2 MiB) stay in a CPU's L2/L3 cache


def _assemble(blocks: list[np.ndarray], n: int) -> np.ndarray:
    """The (n, sum of widths) float32 matrix of the column blocks. Filled a band of rows at a time:
    np.hstack of the whole columns writes each with a stride of a full row, 5x slower on 1M x 68."""
    out = np.empty((n, sum(b.shape[1] for b in blocks)), np.float32)
    if out.shape[1]:
        for start in range(0, n, ROWS_PER_BLOCK):
            band = slice(start, start + ROWS_PER_BLOCK)
            out[band] = np.hstack([b[band] for b in blocks])
    return out


def _one_hot(index: np.ndarray, width: int) -> np.ndarray:
    """Rows of zeros with a 1 at `index` (a float array; NaN leaves the row all zeros)."""
    out = np.zeros((len(index), width), np.float32)
    ok = ~np.isnan(index)
    out[np.flatnonzero(ok), index[ok].astype(np.int64)] = 1.0
    return out


def label_strings(y: pd.Series) -> pd.Series:
    """Class labels as the strings a prediction file will show: integer-valued floats lose their '.0'."""
    if pd.api.types.is_float_dtype(y) and np.all(np.mod(y.dropna(), 1) == 0) and np.all(np.abs(y.dropna()) < 2 ** 63):
        y = y.astype("Int64")  # (integer-valued floats past int64, 1e308 say, keep their float spelling)
    return y.astype("string")

