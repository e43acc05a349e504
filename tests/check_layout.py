#!/usr/bin/env python3
"""The layout's dependency rule (issue 21): every #include "folder/..." in a library's code must name its own folder
or one the table below lets it use. Tests (*_test.cc, *_test.c), microbenchmarks (*_bench.cc) and everything under
tests/ may use anything. Exits 1 listing every include that runs against the direction.

    python3 tests/check_layout.py [SOURCE_DIR]
"""
import pathlib
import re
import sys

# folder -> folders its library may include (directly); the direction: core <- io, dsp, quant <- vq, nn <- models
# <- codec <- ptq, capi <- apps.
ALLOWED = {
    "core": set(),
    "io": {"core"},
    "dsp": {"core"},
    "quant": {"core"},
    "vq": {"core", "quant"},
    "nn": {"core", "quant"},
    "models": {"core", "quant", "io", "dsp", "vq", "nn"},
    "codec": {"core", "quant", "io", "dsp", "vq", "nn", "models"},
    "ptq": {"core", "quant", "io", "dsp", "vq", "nn", "models", "codec"},
    "capi": {"core", "quant", "io", "dsp", "vq", "nn", "models", "codec"},
    "apps": {"core", "quant", "io", "dsp", "vq", "nn", "models", "codec", "ptq", "capi"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"/]+)/[^"]*"', re.M)
EXEMPT = re.compile(r"_(test|bench)\.(cc|c|h)$")


def violations(root: pathlib.Path):
    for folder, allowed in ALLOWED.items():
        for path in sorted((root / folder).rglob("*")):
            if path.suffix not in (".h", ".cc", ".c") or EXEMPT.search(path.name):
                continue
            text = path.read_text(errors="replace")
            for m in INCLUDE.finditer(text):
                used = m.group(1)
                if used != folder and used not in allowed:
                    line = text.count("\n", 0, m.start()) + 1
                    header = m.group(0).split('"')[1]
                    uses = ", ".join(sorted(allowed)) or "nothing"
                    yield f"{path.relative_to(root)}:{line}: {folder}/ may not include {header} ({folder}/ may use: {uses})"


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)
    missing = [f for f in ALLOWED if not (root / f).is_dir()]
    if missing:
        print("check_layout: missing folders: " + ", ".join(missing), file=sys.stderr)
        return 1
    bad = list(violations(root))
    for b in bad:
        print(b, file=sys.stderr)
    if bad:
        print(f"check_layout: {len(bad)} include(s) against the dependency direction", file=sys.stderr)
        return 1
    print("check_layout: every include follows the dependency direction")
    return 0


if __name__ == "__main__":
    sys.exit(main())
