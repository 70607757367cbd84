#!/usr/bin/python3
"""Fails when a module includes a header of, or calls a function defined in,
a layer above its own. The layers, lowest first, are the folders given on the
command line (the Makefile's LAYERS); objects are looked for in OBJDIR.

    tools/check-layers.py OBJDIR base proto conf ...

A layer may use its own folder and every folder listed before it. Calls are
read from the objects' symbol tables (nm), so a call through a header-less
`extern` is caught as well as an #include."""
import os
import re
import subprocess
import sys


def layer_of(path, layers):
    best = None
    for i, d in enumerate(layers):
        if path.startswith(d + "/") and (best is None or len(d) > len(layers[best])):
            best = i
    return best


def includes(layers):
    bad = []
    inc = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
    for i, d in enumerate(layers):
        for name in sorted(os.listdir(d)):
            if not name.endswith((".c", ".h")):
                continue
            src = os.path.join(d, name)
            with open(src, encoding="utf-8") as f:
                for n, line in enumerate(f, 1):
                    m = inc.match(line)
                    if not m:
                        continue
                    j = layer_of(m.group(1), layers)
                    if j is not None and j > i:
                        bad.append(f"{src}:{n}: includes {m.group(1)} ({layers[j]} is above {d})")
    return bad


def symbols(obj):
    out = subprocess.run(["nm", "-P", obj], check=True, capture_output=True, text=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        sym, kind = parts[0], parts[1]
        if kind == "U":
            used.add(sym)
        elif kind in "TDBRC":
            defined.add(sym)
    return defined, used


def calls(objdir, layers):
    owner, uses = {}, []
    for i, d in enumerate(layers):
        od = os.path.join(objdir, d)
        if not os.path.isdir(od):
            continue
        for name in sorted(os.listdir(od)):
            if not name.endswith(".o"):
                continue
            defined, used = symbols(os.path.join(od, name))
            src = os.path.join(d, name[:-2] + ".c")
            for s in defined:
                owner[s] = (i, src)
            uses.append((i, src, used))
    bad = []
    for i, src, used in uses:
        for s in sorted(used):
            if s in owner and owner[s][0] > i:
                j, where = owner[s]
                bad.append(f"{src}: uses {s} from {where} ({layers[j]} is above {layers[i]})")
    return bad


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    objdir, layers = sys.argv[1], sys.argv[2:]
    bad = includes(layers) + calls(objdir, layers)
    for b in bad:
        print(b)
    if bad:
        print(f"layering: {len(bad)} violation(s); layers, lowest first: {' < '.join(layers)}")
        sys.exit(1)
    print(f"layering: ok ({' < '.join(layers)})")


if __name__ == "__main__":
    main()
