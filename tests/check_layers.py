#!/usr/bin/env python3
"""Check the engine's layering with a linker's eye.

usage: check_layers.py SRCDIR BUILDDIR

For every object file of libcairn (found through BUILDDIR's
compile_commands.json), `nm` says which symbols it defines and which it
needs. A file that needs a symbol defined by a file of a higher layer, or of
the other group on its level, is a violation; so is any dependency cycle
between files, and so is a file that reads the environment (getenv). The
layers are engine/LAYERS. Violations listed there as
`known` are reported but tolerated until they are fixed; a `known` line that
no longer occurs fails the check, so the list only shrinks.
Exit 0 clean, 1 on a violation, 2 on a bad LAYERS file or missing objects.
"""
import collections
import fnmatch
import json
import os
import subprocess
import sys


def read_layers(path):
    patterns, known = [], set()
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            words = line.split('#', 1)[0].split()
            if not words:
                continue
            if words[0] == 'known' and len(words) == 3:
                known.add((words[1], words[2]))
            elif len(words) >= 3 and words[0].isdigit():
                for p in words[2:]:
                    patterns.append((p, int(words[0]), words[1]))
            else:
                sys.exit(f'{path}:{lineno}: cannot parse: {line.strip()}')
    return patterns, known


def layer_of(rel, patterns):
    for pat, level, group in patterns:
        if fnmatch.fnmatchcase(rel, pat):
            return level, group
    return None


def stem(rel):
    return rel[:-2] if rel.endswith('.c') else rel


def symbols(obj):
    out = subprocess.run(['nm', obj], capture_output=True, text=True, check=True).stdout
    defined, needed = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in 'TDBRCV':
            defined.add(parts[2])
        elif len(parts) == 2 and parts[0] == 'U':
            needed.add(parts[1])
    return defined, needed


def cycles(graph):
    """Strongly connected components of more than one file (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, build = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    engine = os.path.join(src, 'engine')
    patterns, known = read_layers(os.path.join(engine, 'LAYERS'))
    with open(os.path.join(build, 'compile_commands.json')) as f:
        commands = json.load(f)
    files = {}
    for c in commands:
        path = os.path.normpath(os.path.join(c['directory'], c['file']))
        if not path.startswith(engine + os.sep) or '/libcairn.' not in '/' + c['output']:
            continue
        rel = os.path.relpath(path, engine)
        where = layer_of(rel, patterns)
        if where is None:
            print(f'engine/{rel}: not in engine/LAYERS: give it a layer')
            return 1
        files[stem(rel)] = (os.path.join(c['directory'], c['output']), where)
    if not files:
        print(f'no libcairn objects in {build}/compile_commands.json')
        return 2

    defined_by, needs = {}, {}
    for name, (obj, _) in files.items():
        if not os.path.exists(obj):
            print(f'{obj}: missing: build first')
            return 2
        defined, needed = symbols(obj)
        for s in defined:
            defined_by[s] = name
        needs[name] = needed
    graph = collections.defaultdict(set)
    why = collections.defaultdict(set)
    for name, needed in needs.items():
        for s in needed:
            owner = defined_by.get(s)
            if owner and owner != name:
                graph[name].add(owner)
                why[(name, owner)].add(s)

    bad, tolerated = [], []
    # The library reads no environment: every setting is an option (cairn.h).
    for name, needed in sorted(needs.items()):
        for s in sorted(needed & {'getenv', 'secure_getenv', 'environ', '__environ'}):
            bad.append(f'{name} reads the environment ({s}): make it an option of cairn_repo_open_ext')
    for a in sorted(graph):
        (la, ga) = files[a][1]
        for b in sorted(graph[a]):
            (lb, gb) = files[b][1]
            if lb > la or (lb == la and ga != gb):
                edge = f'{a} ({ga}) uses {b} ({gb}): ' + ', '.join(sorted(why[(a, b)])[:4])
                (tolerated if (a, b) in known else bad).append(edge)
    # A cycle is tolerated only while a known edge of it is still to remove.
    pruned = {a: {b for b in bs if (a, b) not in known} for a, bs in graph.items()}
    for comp in cycles(pruned):
        bad.append('cycle: ' + ' <-> '.join(comp))
    stale = sorted(k for k in known if k[1] not in graph.get(k[0], ()))

    for e in tolerated:
        print('known, to remove:', e)
    for e in bad:
        print('VIOLATION:', e)
    for a, b in stale:
        print(f'FIXED: {a} no longer uses {b}: remove "known {a} {b}" from engine/LAYERS')
    print(f'{len(files)} files, {sum(len(v) for v in graph.values())} dependencies, '
          f'{len(bad)} violations, {len(tolerated)} known, {len(stale)} stale')
    return 1 if bad or stale else 0


if __name__ == '__main__':
    sys.exit(main())
