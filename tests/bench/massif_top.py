"""Prints the heap of a massif run's peak snapshot by allocation site, two
levels deep, in bytes per client connection.
Usage: massif_top.py MASSIF_OUT CONNECTIONS [LINES]"""
import re
import sys

path, conns = sys.argv[1], int(sys.argv[2])
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 14
text = open(path).read()
peak = None
for snap in text.split("snapshot=")[1:]:
    if "heap_tree=peak" in snap:
        peak = snap
if peak is None:  # no peak tree written: the last detailed snapshot
    peak = [s for s in text.split("snapshot=")[1:] if "heap_tree=detailed" in s][-1]
heap = int(re.search(r"mem_heap_B=(\d+)", peak).group(1))
extra = int(re.search(r"mem_heap_extra_B=(\d+)", peak).group(1))
print(f"peak: heap {heap:,} B + {extra:,} B allocator overhead")
shown = 0
for line in peak.split("\n"):
    m = re.match(r"^( *)n\d+: (\d+) (.*)$", line)
    if not m:
        continue
    depth, size, what = len(m.group(1)), int(m.group(2)), m.group(3)
    if depth == 0 or depth > 2 or size < heap / 100:
        continue
    what = re.sub(r"^0x[0-9A-F]+: ", "", what)
    what = re.sub(r" \(in /usr/lib/x86_64-linux-gnu/", " (", what)
    print(f"{'  ' * depth}{size / conns:8,.0f} B/conn  {what[:110]}")
    shown += 1
    if shown >= limit:
        break
