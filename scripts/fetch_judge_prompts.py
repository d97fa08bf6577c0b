#!/usr/bin/env python3
"""Writes the paper's judge prompts as EARL-rs template files, from the upstream sources (which this project does not
carry: the prompt prose is VIEScore's and EARL's, not ours).

Upstream, pinned: mair-lab/EARL at commit 4ca85f1aa75df4be87169cd6b2d35c0282186b4c,
  rl/viescore.py  the VIEScore prompt strings (VIEScore's `vie_prompts.py`, carried by EARL; the VIEScore package's
                  own copy, VIEScore/src/VIEScore/metric/vie_prompts.py, is accepted as well)
  rl/reward.py    how EARL composes the VIEScore prompts, and its GroundScore prompts.
Each file is downloaded from raw.githubusercontent.com at that commit, or read from `--viescore-from` /
`--reward-from` when you already have a copy, and its SHA-256 must be the pinned one. `--no-verify` skips that check
(for tests, or a copy you changed on purpose); the templates then reproduce whatever that copy says.

The files are parsed with Python's `ast` module and only module-level assignments of string constants are read;
nothing in them is executed. The VIEScore compositions are read from `rl/reward.py` as written there
(`SEPARATOR.join([viescore.NAME, ...])`), the GroundScore prompts are its two string constants.

Output (default `prompts/paper/`, git-ignored; the paper's RL configs name these files):
  viescore_sc.txt, viescore_pq.txt, ground_score_system.txt, ground_score_user.txt, SOURCE.json (provenance).
Template format (earl-eval `prompts`): the text byte for byte, UTF-8; `<instruction>` and `{eps_instruction}` are
replaced by the editing instruction. EARL substitutes the SC prompt with `.replace("<instruction>", ...)` and the
GroundScore user prompt with `.format(eps_instruction=...)`; the latter is converted here (`{{`/`}}` unescaped). A
template holding a placeholder the reference would not substitute is refused, so the Rust side's substitution is the
reference's.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import string
import sys
import urllib.request

UPSTREAM = "mair-lab/EARL"
COMMIT = "4ca85f1aa75df4be87169cd6b2d35c0282186b4c"
URL = "https://raw.githubusercontent.com/{repo}/{commit}/{path}"

# role -> (upstream path, {accepted SHA-256: what it is})
SOURCES = {
    "viescore": (
        "rl/viescore.py",
        {
            "ba915b567b5600feab768bb9136089627e2569d270d0372081c7911590c1471e": "EARL rl/viescore.py",
            "010234af186eb0a70fcb99047cd32ad1da01bed59ca1a95a01335426417cf838": "VIEScore metric/vie_prompts.py",
        },
    ),
    "reward": (
        "rl/reward.py",
        {"96df17caf47bff6cae3f6f7ef739f80bfeca7dfcf7ebecdd453c710f65f12c1e": "EARL rl/reward.py"},
    ),
}

# Names in rl/reward.py: the two composed VIEScore templates and the GroundScore constants.
SC_TEMPLATE, PQ_TEMPLATE = "SEMANTIC_CONSISTENCY_PROMPT_TEMPLATE", "PERCEPTUAL_QUALITY_PROMPT_TEMPLATE"
GS_SYSTEM, GS_USER = "GROUND_SCORE_SYSTEM_PROMPT", "GROUND_SCORE_USER_PROMPT"
PLACEHOLDERS = ("<instruction>", "{eps_instruction}")


class Refused(Exception):
    """A one-line reason to stop."""


def obtain(role: str, from_file: str | None, verify: bool) -> tuple[bytes, dict]:
    path, known = SOURCES[role]
    if from_file:
        try:
            with open(from_file, "rb") as f:
                data = f.read()
        except OSError as e:
            raise Refused(f"{from_file}: {e.strerror}") from None
        origin = os.path.abspath(from_file)
    else:
        url = URL.format(repo=UPSTREAM, commit=COMMIT, path=path)
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                data = r.read()
        except OSError as e:
            raise Refused(f"downloading {url}: {e} (no network? pass --{role}-from FILE)") from None
        origin = url
    digest = hashlib.sha256(data).hexdigest()
    if digest not in known and verify:
        raise Refused(
            f"{origin}: SHA-256 {digest} is not that of {path} at {UPSTREAM}@{COMMIT[:12]} "
            f"({', '.join(known)}); pass --no-verify only for a copy you trust"
        )
    record = {"upstream_path": path, "from": origin, "sha256": digest, "verified": digest in known}
    if digest in known:
        record["is"] = known[digest]
    return data, record


def parse(data: bytes, label: str) -> ast.Module:
    try:
        return ast.parse(data.decode("utf-8"), filename=label)
    except (UnicodeDecodeError, SyntaxError) as e:
        raise Refused(f"{label}: not a readable Python file ({e})") from None


def string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level `NAME = "..."` assignments (implicitly concatenated literals included), nothing else."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                out[node.targets[0].id] = node.value.value
    return out


def join_composition(tree: ast.Module, name: str, label: str) -> tuple[str, list[str]]:
    """`name = SEP.join([module.A, module.B, ...])` anywhere in the file -> (SEP, [A, B, ...])."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)):
            continue
        call = node.value
        ok = (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and call.func.attr == "join"
            and isinstance(call.func.value, ast.Constant)
            and isinstance(call.func.value.value, str)
            and len(call.args) == 1
            and not call.keywords
            and isinstance(call.args[0], (ast.List, ast.Tuple))
            and all(isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name) for e in call.args[0].elts)
        )
        if not ok:
            raise Refused(f"{label}: {name} is not composed as SEPARATOR.join([module.NAME, ...])")
        found.append((call.func.value.value, [e.attr for e in call.args[0].elts]))
    if len(found) != 1:
        raise Refused(f"{label}: expected one assignment to {name}, found {len(found)}")
    return found[0]


def from_format_string(text: str, label: str) -> str:
    """A `str.format(eps_instruction=...)` template as a literal template with `{eps_instruction}` placeholders."""
    out = []
    try:
        pieces = list(string.Formatter().parse(text))
    except ValueError as e:
        raise Refused(f"{label}: not a valid format string ({e})") from None
    for literal, field, spec, conversion in pieces:
        if any(p in literal for p in PLACEHOLDERS):
            raise Refused(f"{label}: literal text contains a placeholder the reference does not substitute")
        out.append(literal)
        if field is None:
            continue
        if field != "eps_instruction" or spec or conversion:
            raise Refused(f"{label}: unexpected format field {{{field}}}; only {{eps_instruction}} is filled")
        out.append("{eps_instruction}")
    if "{eps_instruction}" not in out:
        raise Refused(f"{label}: has no {{eps_instruction}} field")
    return "".join(out)


def templates(vie: ast.Module, rew: ast.Module) -> dict[str, str]:
    strings, rstrings = string_constants(vie), string_constants(rew)

    def composed(name: str) -> str:
        sep, parts = join_composition(rew, name, "rl/reward.py")
        missing = [p for p in parts if p not in strings]
        if missing:
            raise Refused(f"rl/viescore.py: no string constant {', '.join(missing)} (needed by {name})")
        return sep.join(strings[p] for p in parts)

    def constant(name: str) -> str:
        if name not in rstrings:
            raise Refused(f"rl/reward.py: no module-level string constant {name}")
        return rstrings[name]

    out = {
        "viescore_sc.txt": composed(SC_TEMPLATE),
        "viescore_pq.txt": composed(PQ_TEMPLATE),
        "ground_score_system.txt": constant(GS_SYSTEM),
        "ground_score_user.txt": from_format_string(constant(GS_USER), GS_USER),
    }
    # EARL fills only `<instruction>` in the SC prompt and nothing in PQ and the system prompt.
    sc = out["viescore_sc.txt"]
    if "<instruction>" not in sc or "{eps_instruction}" in sc:
        raise Refused(f"{SC_TEMPLATE}: must contain <instruction> and not {{eps_instruction}}")
    for name in ("viescore_pq.txt", "ground_score_system.txt"):
        if any(p in out[name] for p in PLACEHOLDERS):
            raise Refused(f"{name}: contains a placeholder the reference does not substitute")
    return out


def write(out_dir: str, files: dict[str, bytes]) -> None:
    os.makedirs(out_dir, exist_ok=True)
    for name, data in files.items():
        tmp = os.path.join(out_dir, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(out_dir, name))


def main(argv: list[str] | None = None) -> int:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viescore-from", metavar="FILE", help="a copy of rl/viescore.py (or VIEScore's vie_prompts.py)")
    ap.add_argument("--reward-from", metavar="FILE", help="a copy of rl/reward.py")
    ap.add_argument("--out", default=os.path.join(root, "prompts", "paper"), help="output directory")
    ap.add_argument("--no-verify", action="store_true", help="accept inputs whose SHA-256 is not the pinned one")
    args = ap.parse_args(argv)
    try:
        vie_data, vie_rec = obtain("viescore", args.viescore_from, not args.no_verify)
        rew_data, rew_rec = obtain("reward", args.reward_from, not args.no_verify)
        texts = templates(parse(vie_data, "rl/viescore.py"), parse(rew_data, "rl/reward.py"))
    except Refused as e:
        print(f"fetch_judge_prompts: error: {e}", file=sys.stderr)
        return 1
    files = {name: text.encode("utf-8") for name, text in texts.items()}
    source = {
        "upstream": UPSTREAM,
        "commit": COMMIT,
        "inputs": [vie_rec, rew_rec],
        "templates": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    files["SOURCE.json"] = (json.dumps(source, indent=2) + "\n").encode("utf-8")
    write(args.out, files)
    for rec in (vie_rec, rew_rec):
        if not rec["verified"]:
            print(f"fetch_judge_prompts: warning: {rec['from']} is unverified (--no-verify)", file=sys.stderr)
    for name in texts:
        print(os.path.join(args.out, name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
