#!/usr/bin/env python3
"""Golden-file runner: runs relorac on each input in a stage folder and compares
with the expected sibling file. The sibling's suffix picks the mode:

  X.relora + X.out        `relorac check X.relora [args]`, stdout, exit 0
  X.relora + X.err        `relorac check X.relora [args]`, stderr, exit 1
  X.relora + X.ir         `relorac dump-ir X.relora [args]`, stdout, exit 0
  X.relora + X.cu         `relorac dump-ir X.relora --device cuda [args]` (CUDA C), stdout, exit 0
  X.relora + X.P.ir       `relorac dump-ir X.relora --after P [args]`, stdout, exit 0
  X.ir     + X.P.ir       `relorac opt X.ir --passes P`, stdout, exit 0

X.args, when present, holds extra arguments (one per line). Commands run inside the
stage folder with relative paths, so locations print as `X.relora:3:7`.
GOLDEN_UPDATE=1 rewrites the expected files instead of comparing.
"""
import difflib
import os
import subprocess
import sys


def cases(folder):
    names = sorted(os.listdir(folder))
    for name in names:
        base, ext = os.path.splitext(name)
        if ext not in ('.relora', '.ir') or (ext == '.ir' and '.' in base):
            continue
        if ext == '.ir' and os.path.exists(os.path.join(folder, base + '.relora')):
            continue  # X.ir is the expected output of X.relora
        for sib in names:
            if not sib.startswith(base + '.') or sib == name:
                continue
            rest = sib[len(base) + 1:]
            if rest in ('out', 'err') and ext == '.relora':
                yield name, sib, ['check', name], 0 if rest == 'out' else 1, rest == 'err'
            elif rest == 'ir' and ext == '.relora':
                yield name, sib, ['dump-ir', name], 0, False
            elif rest == 'cu' and ext == '.relora':
                yield name, sib, ['dump-ir', name, '--device', 'cuda'], 0, False
            elif rest.endswith('.ir') and rest.count('.') == 1:
                p = rest[:-3]
                if ext == '.relora':
                    yield name, sib, ['dump-ir', name, '--after', p], 0, False
                else:
                    yield name, sib, ['opt', name, '--passes', p], 0, False


def main():
    relorac, folder = os.path.abspath(sys.argv[1]), sys.argv[2]
    update = os.environ.get('GOLDEN_UPDATE') == '1'
    passed = failed = 0
    for inp, expected, args, want_rc, use_stderr in cases(folder):
        argfile = os.path.join(folder, os.path.splitext(inp)[0] + '.args')
        if os.path.exists(argfile):
            with open(argfile) as f:
                args += [l.rstrip('\n') for l in f if l.strip()]
        r = subprocess.run([relorac] + args, cwd=folder, capture_output=True, text=True)
        got = r.stderr if use_stderr else r.stdout
        path = os.path.join(folder, expected)
        if update:
            with open(path, 'w') as f:
                f.write(got)
            print(f'updated {expected}')
            continue
        with open(path) as f:
            want = f.read()
        ok = got == want and r.returncode == want_rc
        if ok:
            passed += 1
            print(f'ok   {expected}')
        else:
            failed += 1
            print(f'FAIL {expected}: exit {r.returncode} (want {want_rc})')
            sys.stdout.writelines(difflib.unified_diff(
                want.splitlines(True), got.splitlines(True), 'expected', 'got'))
            if not use_stderr and r.stderr:
                print('stderr:\n' + r.stderr)
    print(f'{passed} passed, {failed} failed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
