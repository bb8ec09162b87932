"""Turn a CSV of labelled samples into the npz that `edge-agent --data PATH.npz` reads.

Usage: python examples/csv_to_npz.py readings.csv data.npz [--label label] [--test test.csv]

The CSV has a header row; one column (--label, default `label`) holds each row's class, by name or number, and
every other column is a numeric feature. Features are standardised with the training file's mean and standard
deviation (a test file with the same ones) and saved as float32 `x`; classes become 0..C-1 in sorted order (numbers
by value, names alphabetically), saved as `y`; the mapping is printed. With --test, `x_test` and `y_test` come from
that file; without it, edge-agent holds out a seeded sixth of `x`. Only the standard library and numpy are needed.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np


def read_csv(path: Path, label: str) -> tuple[np.ndarray, list[str], list[str]]:
    """(features (N, F) float64, the label of each row, the feature names)."""
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames is None or label not in reader.fieldnames:
            raise ValueError(f"{path}: no column {label!r} (columns: {', '.join(reader.fieldnames or [])})")
        features = [name for name in reader.fieldnames if name != label]
        rows, labels = [], []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append([float(row[name]) for name in features])
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: every column but {label!r} must be a number") from None
            labels.append(row[label].strip())
    if not rows:
        raise ValueError(f"{path}: no rows")
    return np.array(rows), labels, features


def convert(train_csv: Path, out: Path, label: str = "label", test_csv: Path | None = None) -> list[str]:
    """Write the npz; returns the class names in the order of their numbers."""
    x, labels, features = read_csv(train_csv, label)
    numeric = all(name.lstrip("-").isdigit() for name in labels)
    classes = sorted(set(labels), key=int) if numeric else sorted(set(labels))
    index = {name: i for i, name in enumerate(classes)}
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    arrays = {"x": ((x - mean) / std).astype(np.float32), "y": np.array([index[name] for name in labels])}
    if test_csv is not None:
        x_test, test_labels, test_features = read_csv(test_csv, label)
        if test_features != features:
            raise ValueError(f"{test_csv}: its feature columns differ from {train_csv}'s")
        unknown = sorted(set(test_labels) - set(classes))
        if unknown:
            raise ValueError(f"{test_csv}: classes {unknown} are not in {train_csv}")
        arrays["x_test"] = ((x_test - mean) / std).astype(np.float32)
        arrays["y_test"] = np.array([index[name] for name in test_labels])
    np.savez(out, **arrays)
    print(f"wrote {out}: {len(x)} samples of {len(features)} features, {len(classes)} classes "
          f"({', '.join(f'{i}={name}' for i, name in enumerate(classes))})")
    return classes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv", type=Path)
    parser.add_argument("npz", type=Path)
    parser.add_argument("--label", default="label", help="the column holding each row's class")
    parser.add_argument("--test", type=Path, help="a CSV of test rows with the same columns")
    args = parser.parse_args()
    try:
        convert(args.csv, args.npz, args.label, args.test)
    except (OSError, ValueError) as error:
        sys.exit(f"Error: {error}")


if __name__ == "__main__":
    main()
