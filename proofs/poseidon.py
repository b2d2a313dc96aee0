"""Poseidon over the BN254 scalar field with circomlib's parameters (``Poseidon(n)``, x^5).

Grassi, Khovratovich, Rechberger, Roy, Schofnegger, "Poseidon: A New Hash Function for
Zero-Knowledge Proof Systems", USENIX Security 2021: width t = n + 1 (capacity element first,
set to 0), S-box x^5, R_F = 8 full rounds (4 before and 4 after the R_P partial rounds), each
round = add round constants, S-box (all cells in full rounds, cell 0 in partial rounds), MDS.
The output is state[0], as in circomlibjs ``poseidon_reference.js``.

circomlib's constants are not pasted here: they are regenerated with the paper's reference
script (``generate_parameters_grain.sage``, field=1, sbox=0, n=254, t, R_F=8, R_P): the Grain
LFSR (§F, "Generating the round constants") seeds 80 bits with the parameters, discards 160
outputs, then emits bits with the self-shrinking rule; round constants are 254-bit draws
below r (rejection), then the Cauchy MDS matrix ``M[i][j] = 1/(x_i + y_j)`` from 2t further
draws (mod r). The known-answer tests pin the result to circomlibjs' outputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import lru_cache

from proofs.bn254 import R

FULL_ROUNDS = 8
PARTIAL_ROUNDS = (56, 57, 56, 60, 60, 63, 64, 63, 60, 66, 60, 65, 70, 60, 64, 68)  # by t - 2
INPUTS_MAX = len(PARTIAL_ROUNDS)  # circomlib supports 1..16 inputs
FIELD_BITS = 254
_GRAIN_FIELD_PRIME = 1  # "field = 1": a prime field
_GRAIN_SBOX_POWER = 0  # "sbox = 0": x^alpha


def poseidon(inputs: Sequence[int]) -> int:
    """circomlib ``Poseidon(len(inputs))`` of field elements (each taken mod r)."""
    if not 1 <= len(inputs) <= INPUTS_MAX:
        raise ValueError(f"poseidon: 1..{INPUTS_MAX} inputs, got {len(inputs)}")
    t = len(inputs) + 1
    constants, mds = poseidon_parameters(t)
    state = [0, *(x % R for x in inputs)]
    partial = PARTIAL_ROUNDS[t - 2]
    for rnd in range(FULL_ROUNDS + partial):
        state = [(s + constants[rnd * t + i]) % R for i, s in enumerate(state)]
        if rnd < FULL_ROUNDS // 2 or rnd >= FULL_ROUNDS // 2 + partial:
            state = [pow(s, 5, R) for s in state]
        else:
            state[0] = pow(state[0], 5, R)
        state = [sum(m * s for m, s in zip(row, state, strict=True)) % R for row in mds]
    return state[0]


@lru_cache(maxsize=INPUTS_MAX)
def poseidon_parameters(t: int) -> tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]:
    """Round constants ((R_F + R_P)·t of them) and the t×t MDS matrix for width ``t``."""
    if not 2 <= t <= INPUTS_MAX + 1:
        raise ValueError(f"poseidon: width t must be 2..{INPUTS_MAX + 1}")
    partial = PARTIAL_ROUNDS[t - 2]
    bits = _grain_bits(t, FULL_ROUNDS, partial)
    constants = []
    for _ in range((FULL_ROUNDS + partial) * t):
        value = _draw(bits)
        while value >= R:
            value = _draw(bits)
        constants.append(value)
    return tuple(constants), _cauchy_mds(bits, t)


def _cauchy_mds(bits: Iterator[int], t: int) -> tuple[tuple[int, ...], ...]:
    while True:
        draws = [_draw(bits) % R for _ in range(2 * t)]
        while len(set(draws)) != len(draws):
            draws = [_draw(bits) % R for _ in range(2 * t)]
        xs, ys = draws[:t], draws[t:]
        if all((x + y) % R for x in xs for y in ys):
            return tuple(tuple(pow(x + y, -1, R) for y in ys) for x in xs)


def _draw(bits: Iterator[int]) -> int:
    value = 0
    for _ in range(FIELD_BITS):
        value = (value << 1) | next(bits)
    return value


def _grain_bits(t: int, full_rounds: int, partial_rounds: int) -> Iterator[int]:
    """The reference script's Grain LFSR in self-shrinking mode."""
    seed = "".join(
        format(value, f"0{width}b")
        for value, width in (
            (_GRAIN_FIELD_PRIME, 2),
            (_GRAIN_SBOX_POWER, 4),
            (FIELD_BITS, 12),
            (t, 12),
            (full_rounds, 10),
            (partial_rounds, 10),
        )
    )
    reg = [int(c) for c in seed] + [1] * 30
    pos = 0

    def step() -> int:
        nonlocal pos
        new = reg[pos + 62] ^ reg[pos + 51] ^ reg[pos + 38] ^ reg[pos + 23] ^ reg[pos + 13]
        new ^= reg[pos]
        reg.append(new)
        pos += 1
        return new

    for _ in range(160):
        step()
    while True:
        first = step()
        while first == 0:
            step()
            first = step()
        yield step()
