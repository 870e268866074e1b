#!/usr/bin/env python3
"""docs/language.md keeps the field tables of frontend/fields.def between the markers

    <!-- fields SECTION -->
    ...
    <!-- end fields -->

Each must equal `relorac fields --markdown SECTION`, and every section of the table
must have one. GOLDEN_UPDATE=1 rewrites the tables in place instead of comparing.
usage: check_docs.py RELORAC DOC
"""
import difflib
import os
import re
import subprocess
import sys

relorac, doc = sys.argv[1], sys.argv[2]
update = os.environ.get('GOLDEN_UPDATE') == '1'
with open(doc) as f:
    text = f.read()

# The sections, from the usage line of a bad request.
usage = subprocess.run([relorac, 'fields', '--markdown', '?'], capture_output=True, text=True)
m = re.search(r'\(SECTION: ([^)]*)\)', usage.stderr)
if usage.returncode != 2 or not m:
    print(f'FAIL relorac fields --markdown ? should exit 2 listing the sections (exit {usage.returncode})')
    sys.exit(1)
sections = m.group(1).split()

failed = passed = 0
block = re.compile(r'(<!-- fields (\w+) -->\n)(.*?)(<!-- end fields -->)', re.S)
seen = []


def table(name):
    r = subprocess.run([relorac, 'fields', '--markdown', name], capture_output=True, text=True)
    if r.returncode != 0:
        return None
    return r.stdout


def replace(mt):
    global failed, passed
    name, have = mt.group(2), mt.group(3)
    seen.append(name)
    want = table(name)
    if want is None:
        print(f'FAIL {doc}: "{name}" is not a section of fields.def')
        failed += 1
        return mt.group(0)
    if update:
        return mt.group(1) + want + mt.group(4)
    if have != want:
        failed += 1
        print(f'FAIL {doc}: the "{name}" table differs from `relorac fields --markdown {name}` '
              '(GOLDEN_UPDATE=1 rewrites it):')
        sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), want.splitlines(True), 'docs', 'fields.def'))
    else:
        passed += 1
        print(f'ok   {name}')
    return mt.group(0)


new = block.sub(replace, text)
for name in sections:
    if name not in seen:
        failed += 1
        print(f'FAIL {doc}: no table for section "{name}" (add <!-- fields {name} --> <!-- end fields -->)')
if update and new != text:
    with open(doc, 'w') as f:
        f.write(new)
    print(f'updated {doc}')
print(f'{passed} passed, {failed} failed')
sys.exit(1 if failed else 0)
