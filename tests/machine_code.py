"""Reading the machine code of a compiled kernel: its innermost loops with FMAs.

A loop is the instructions from a label to the last jump back to it; an
innermost FMA loop contains vector FMAs and no other loop. Used by the
tests and by ``benchmarks/microkernel.py`` to show what the inner loop does.
"""

from __future__ import annotations

import re

_LABEL = re.compile(r"^(\.?[\w$.]+):")
_JUMP = re.compile(r"^\s+j\w+\s+(\.?[\w$.]+)\s*$")


def _instructions(asm: str) -> list[str]:
    return [line for line in asm.splitlines() if line.strip() and not line.lstrip().startswith(("#", ".p2align", ".cfi", "//"))]


def fma_loops(asm: str) -> list[list[str]]:
    """The innermost loops of ``asm`` that contain vector FMAs (each a list of lines)."""
    lines = _instructions(asm)
    where = {}
    for n, line in enumerate(lines):
        m = _LABEL.match(line)
        if m:
            where[m.group(1)] = n
    loops = []
    for n, line in enumerate(lines):
        m = _JUMP.match(line)
        if m and m.group(1) in where and where[m.group(1)] < n:
            loops.append((where[m.group(1)], n))
    inner = [(a, b) for a, b in loops if not any(a < c and d <= b and (c, d) != (a, b) for c, d in loops)]
    return [lines[a : b + 1] for a, b in inner if any("vfmadd" in l for l in lines[a : b + 1])]


def stack_accesses(loop: list[str]) -> list[str]:
    """Lines that read or write the stack (a spilled register)."""
    return [l for l in loop if "(%rsp" in l]


def masked_accesses(loop: list[str]) -> list[str]:
    """Masked vector loads or stores (AVX2's vmaskmov, AVX-512's {%k} on a memory operand), or mask computations."""
    return [
        l for l in loop
        if "vmaskmov" in l or "vpcmp" in l or "vpmovsx" in l or (re.search(r"\{%k[1-7]\}", l) and "(" in l)
    ]


def fmas(loop: list[str]) -> list[str]:
    return [l for l in loop if "vfmadd" in l]
