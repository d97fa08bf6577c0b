#!/usr/bin/env python3
"""Streams the samples of EARL's tokenized lists (mair-lab/EARL `prepare_data.py` output) as JSON lines, for
`earl data import-earl`, which writes them into EARL-rs's sharded dataset format. Pickle stays in this process.

Input: one or more `tokenized_datalist.json` files ({"prefix": dir, "path_list": [file, ...]}); every file under
`prefix` is a `torch.save` dict with `original_image` and `edited_image` (int arrays [h, w]), `instruction`, optional
`CoT` (dict key -> text) and `edit_id`.
Output (stdout), one line per sample: {"id", "instruction", "source": [[...]], "edited": [[...]], "cot": {...},
"meta": {"source_dataset": ..., "file": ...}}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch


def as_grid(x) -> list[list[int]]:
    t = torch.as_tensor(x)
    if t.dim() != 2:
        raise ValueError(f"expected a [h, w] code grid, got shape {tuple(t.shape)}")
    return t.long().tolist()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("lists", nargs="+", help="tokenized_datalist.json files")
    args = ap.parse_args()
    out = sys.stdout
    for lst in args.lists:
        with open(lst) as f:
            d = json.load(f)
        prefix = d["prefix"]
        name = os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(lst)))) or prefix
        for fname in d["path_list"]:
            path = os.path.join(prefix, fname)
            rid = f"{name}/{os.path.splitext(fname)[0]}"
            try:
                data = torch.load(path, weights_only=False)
                rec = {
                    "id": rid,
                    "instruction": str(data["instruction"]),
                    "source": as_grid(data["original_image"]),
                    "edited": as_grid(data["edited_image"]),
                    "cot": {str(k): str(v) for k, v in (data.get("CoT") or {}).items()},
                    "meta": {"source_dataset": name, "file": path},
                }
            except Exception as e:  # one bad sample names itself and stops the import
                print(f"{path}: {type(e).__name__}: {e}", file=sys.stderr)
                return 1
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
