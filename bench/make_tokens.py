#!/usr/bin/env python3
"""Writes an llm.c / nanoGPT token file (docs/runtime.md "Data"): a header of 256
little-endian int32 (20240520, version 1, token count, zeros), then the tokens as uint16.
The tokens are the bytes of a text file (each byte one token, so any vocab >= 256 reads
them): the project can make such a file for a model whose own tokenizer it does not
have, to measure speed and memory on real token ids.
usage: make_tokens.py TEXT OUT.bin [--tokens N]   (N: the first N bytes, default all)"""
import struct
import sys


def main(argv):
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != '--tokens'):
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    with open(argv[1], 'rb') as f:
        data = f.read()
    if len(argv) == 5:
        data = data[:int(argv[4])]
    if not data:
        print(f'make_tokens.py: {argv[1]}: no bytes to write', file=sys.stderr)
        return 2
    header = struct.pack('<256i', 20240520, 1, len(data), *([0] * 253))
    with open(argv[2], 'wb') as f:
        f.write(header)
        f.write(struct.pack(f'<{len(data)}H', *data))
    print(f'{argv[2]}: {len(data)} tokens')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
