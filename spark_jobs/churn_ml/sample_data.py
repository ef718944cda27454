"""Deterministic, streaming generator of synthetic telco customer-churn data.

Rows follow the schema and value domains of the public Telco churn dataset
(``customer_churn_train_data.csv`` / ``customer_churn_score_data.csv``), with a
learnable churn signal. Standard library only; rows are generated one at a
time, so any number of rows can be written in constant memory.

All proportions and coefficients below were computed once from the reference
file (7,043 rows) and rounded by hand; they are hard-coded on purpose so the
generator needs no input data. Same seed and arguments give byte-identical
output: every draw comes from a private ``random.Random(seed)``.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import logging
import math
import os
import random
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from itertools import islice
from pathlib import Path

from churn_core.layout import COMPLETE_MARKER
from churn_ml.schema import (
    CONTRACTS,
    INTERNET_TYPES,
    PAYMENT_METHODS,
    RAW_SCORE_COLUMNS,
    RAW_TRAIN_COLUMNS,
)

__all__ = [
    "DEFAULT_BLANK_TOTAL_CHARGES_FRACTION",
    "SCORE_COLUMNS",
    "SHIFTABLE",
    "TRAIN_COLUMNS",
    "check_shift",
    "derive_seed",
    "generate_rows",
    "write_csv",
    "write_daily_partitions",
]


log = logging.getLogger(__name__)

SCORE_COLUMNS, TRAIN_COLUMNS = RAW_SCORE_COLUMNS, RAW_TRAIN_COLUMNS

# Reference file: 11 of 7,043 rows have tenure 0 and a blank (" ") TotalCharges,
# and those are the only blanks. The fraction below is the share of such
# brand-new customers; blank TotalCharges <=> tenure 0, as in the reference.
DEFAULT_BLANK_TOTAL_CHARGES_FRACTION = 11 / 7043
BLANK = " "

# --- Marginals / conditionals, rounded from the reference file ---------------
# Everything below is indexed by contract: 0 month-to-month, 1 one year, 2 two year.
CONTRACT_P = (0.550, 0.209, 0.241)
# Tenure histogram (months 1..72) as (first month, width) bins: spikes at 1
# and 72, 6-month bins in between; uniform inside a bin.
TENURE_BINS = ((1, 1), (2, 5), *((lo, 6) for lo in range(7, 67, 6)), (67, 5), (72, 1))
P_TENURE_BIN = (
    (
        0.156,
        0.209,
        0.150,
        0.108,
        0.082,
        0.068,
        0.057,
        0.046,
        0.036,
        0.032,
        0.029,
        0.019,
        0.009,
        0.001,
    ),
    (
        0.005,
        0.021,
        0.058,
        0.061,
        0.073,
        0.086,
        0.084,
        0.090,
        0.092,
        0.118,
        0.100,
        0.108,
        0.093,
        0.012,
    ),
    (
        0.001,
        0.010,
        0.023,
        0.024,
        0.030,
        0.024,
        0.033,
        0.042,
        0.064,
        0.073,
        0.091,
        0.137,
        0.245,
        0.204,
    ),
)
P_SENIOR = (0.208, 0.129, 0.086)
P_PARTNER = (0.356, 0.563, 0.703)
P_DEPENDENTS_GIVEN_PARTNER = {True: 0.514, False: 0.099}
P_MALE = 0.505
P_MULTIPLE_LINES = (0.424, 0.464, 0.569)  # given PhoneService = Yes
P_INTERNET = ((0.316, 0.549, 0.135), (0.387, 0.366, 0.247), (0.370, 0.255, 0.376))
# Every customer without phone service has DSL (so overall PhoneService = Yes ~90.3%).
P_PHONE_GIVEN_DSL = 0.718
# P(service = Yes) for OnlineSecurity, OnlineBackup, DeviceProtection,
# TechSupport, StreamingTV, StreamingMovies; by contract, then DSL / Fiber optic.
P_SERVICES = (
    ((0.299, 0.303, 0.229, 0.277, 0.244, 0.251), (0.166, 0.325, 0.318, 0.156, 0.470, 0.469)),
    ((0.579, 0.489, 0.537, 0.572, 0.447, 0.454), (0.412, 0.636, 0.631, 0.419, 0.737, 0.748)),
    ((0.770, 0.693, 0.762, 0.817, 0.642, 0.665), (0.613, 0.718, 0.793, 0.718, 0.823, 0.818)),
)
P_PAPERLESS = (0.667, 0.543, 0.465)
P_PAYMENT = (
    (0.477, 0.230, 0.152, 0.141),
    (0.236, 0.228, 0.266, 0.270),
    (0.100, 0.223, 0.334, 0.343),
)

# MonthlyCharges, fitted linearly on the reference (residual sd ~1.0), in cents:
# phone 20, extra lines 5, DSL 25, fiber 50, each protection/support service 5,
# each streaming service 10; plus uniform noise of +-1.75 on a 0.05 grid.
MC_PHONE, MC_LINES, MC_DSL, MC_FIBER = 2000, 500, 2500, 5000
MC_SERVICE = (500, 500, 500, 500, 1000, 1000)
MC_MIN, MC_MAX = 1825, 11875

# Churn: logistic model, coefficients rounded from a logistic regression on the
# reference file; the intercept is tuned so the churn rate is ~26.5%.
B_INTERCEPT = -1.86
B_CONTRACT = (0.0, -0.70, -1.50)
B_INTERNET = (0.0, 0.75, -0.20)  # DSL, fiber optic, no internet
B_ELECTRONIC_CHECK = 0.35
B_PAPERLESS = 0.35
B_SENIOR = 0.25
B_NO_TECH_SUPPORT = 0.35
B_NO_ONLINE_SECURITY = 0.35
B_DEPENDENTS = -0.15
B_STREAMING = 0.30  # each of StreamingTV, StreamingMovies
B_MULTIPLE_LINES = 0.30
B_TENURE_LE_6 = 0.80
B_TENURE_PER_MONTH = -1.65 / 72

_ID_DIGITS = 10_000  # customerID = 4 digits ...
_ID_LETTERS = 26**5  # ... and 5 uppercase letters
_ID_SPACE = _ID_DIGITS * _ID_LETTERS


def _cumulative(ps: Iterable[float]) -> tuple[float, ...]:
    """Cumulative thresholds normalised to end at exactly 1.0."""
    ps = tuple(ps)
    total, acc, out = sum(ps), 0.0, []
    for p in ps[:-1]:
        acc += p
        out.append(acc / total)
    return (*out, 1.0)


def _fmt_cents(cents: int) -> str:
    """Format like the reference file: 1889.5, 29.85, 84 (no trailing zeros)."""
    units, rest = divmod(cents, 100)
    if rest == 0:
        return str(units)
    if rest % 10 == 0:
        return f"{units}.{rest // 10}"
    return f"{units}.{rest:02d}"


_MC_TEXT = {c: _fmt_cents(c) for c in range(MC_MIN, MC_MAX + 1, 5)}
_TENURE_TEXT = tuple(str(t) for t in range(73))
_CENTS_TEXT = tuple(_fmt_cents(c)[1:] for c in range(100, 200))  # "", ".05", ".1", ...
_DIGITS_TEXT = tuple(f"{d:04d}" for d in range(_ID_DIGITS))
# Triangular noise scale for TotalCharges / (tenure * MonthlyCharges); the
# reference ratio has sd ~0.21/sqrt(tenure), and exactly 1 at tenure 1.
_TC_NOISE = (0.0, 0.0, *(0.51 / math.sqrt(t) for t in range(2, 73)))
_LETTERS2 = tuple(a + b for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LETTERS3 = tuple(a + bc for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for bc in _LETTERS2)
# Per contract: (contract, tenure-bin cdf, senior, partner, lines, internet cdf,
# services DSL, services fiber, paperless, payment cdf, logit offset).
_BY_CONTRACT = tuple(
    (
        CONTRACTS[c],
        _cumulative(P_TENURE_BIN[c]),
        P_SENIOR[c],
        P_PARTNER[c],
        P_MULTIPLE_LINES[c],
        _cumulative(P_INTERNET[c]),
        P_SERVICES[c][0],
        P_SERVICES[c][1],
        P_PAPERLESS[c],
        _cumulative(P_PAYMENT[c]),
        B_INTERCEPT + B_CONTRACT[c],
    )
    for c in range(3)
)


def _mix(x: int, key: int) -> int:
    """Cheap 32-bit integer hash (Feistel round function)."""
    h = ((x ^ key) * 0x9E3779B1) & 0xFFFFFFFF
    return h ^ (h >> 15)


def _id_round_keys(rng: random.Random) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
    """Keys for a 4-round Feistel permutation of Z_10^4 x Z_26^5 (see ``_rows``).

    Rounds 2 and 4 hash values in Z_10^4, so they are precomputed as tables.
    """
    k1, k2, k3, k4 = (rng.getrandbits(32) for _ in range(4))
    t2 = tuple(_mix(x, k2) % _ID_LETTERS for x in range(_ID_DIGITS))
    t4 = tuple(_mix(x, k4) % _ID_LETTERS for x in range(_ID_DIGITS))
    return k1, k3, t2, t4


def generate_rows(
    n: int,
    seed: int = 42,
    *,
    with_label: bool = True,
    blank_total_charges_fraction: float = DEFAULT_BLANK_TOTAL_CHARGES_FRACTION,
    churn_shift: float = 0.0,
    shift: Mapping[str, float] | None = None,
) -> Iterator[tuple[str, ...]]:
    """Lazily yield ``n`` rows: tuples of strings in TRAIN_COLUMNS (or SCORE_COLUMNS) order.

    Arguments are checked eagerly. With the same seed, score rows are the train
    rows without the Churn column. ``churn_shift`` moves the churn logit's intercept: the
    base rate rises above 0 and falls below, the customers stay the same. ``shift`` moves
    some columns (see ``SHIFTABLE``).
    """
    if n < 0 or n > _ID_SPACE:
        raise ValueError(f"n must be in 0..{_ID_SPACE}, got {n}")
    if not 0.0 <= blank_total_charges_fraction < 1.0:
        raise ValueError(
            f"blank_total_charges_fraction must be in [0, 1), got {blank_total_charges_fraction}"
        )
    rows = _rows(n, seed, with_label, blank_total_charges_fraction, churn_shift)
    return _shifted(rows, check_shift(shift or {}), seed) if shift else rows


def _rows(
    n: int, seed: int, with_label: bool, p_new: float, churn_shift: float = 0.0
) -> Iterator[tuple[str, ...]]:
    rng = random.Random(seed)
    rand = rng.random
    # customerID: a seeded 4-round Feistel permutation of the row index over
    # Z_10^4 x Z_26^5, so IDs look random and are unique without a lookup set.
    k1, k3, t2, t4 = _id_round_keys(rng)
    n_digits, n_letters, mask = _ID_DIGITS, _ID_LETTERS, 0xFFFFFFFF
    digits_text, letters3, letters2 = _DIGITS_TEXT, _LETTERS3, _LETTERS2
    exp = math.exp
    yes, no, no_phone = "Yes", "No", "No phone service"
    dsl, fiber, no_inet = INTERNET_TYPES
    no_inet_svc = "No internet service"
    male, female = "Male", "Female"
    echeck, mailed, bank, card = PAYMENT_METHODS
    c_m2m, c_one = _cumulative(CONTRACT_P)[:2]
    p_dep_partner = P_DEPENDENTS_GIVEN_PARTNER[True]
    p_dep_single = P_DEPENDENTS_GIVEN_PARTNER[False]
    p_male, p_phone_dsl = P_MALE, P_PHONE_GIVEN_DSL
    mc_sec, mc_bak, mc_dev, mc_tech, mc_tv, mc_mov = MC_SERVICE
    _, b_fiber, b_no_inet = B_INTERNET
    b_no_sec, b_no_tech, b_stream = B_NO_ONLINE_SECURITY, B_NO_TECH_SUPPORT, B_STREAMING
    b_tenure, b_short = B_TENURE_PER_MONTH, B_TENURE_LE_6
    mc_text, tenure_text, tc_noise, cents_text = _MC_TEXT, _TENURE_TEXT, _TC_NOISE, _CENTS_TEXT
    by_contract, bins, bisect_right = _BY_CONTRACT, TENURE_BINS, bisect.bisect_right

    for i in range(n):
        # Contract, then tenure given contract. Brand-new customers (tenure 0,
        # blank TotalCharges) are on long contracts, as in the reference.
        if rand() < p_new:
            tenure = 0
            c = 1 if rand() < 0.1 else 2
        else:
            tenure = -1
            u = rand()
            c = 0 if u < c_m2m else 1 if u < c_one else 2
        (
            contract,
            tenure_cdf,
            p_senior,
            p_partner,
            p_lines,
            inet_cdf,
            p_svc_dsl,
            p_svc_fiber,
            p_paperless,
            pay_cdf,
            logit,
        ) = by_contract[c]
        logit += churn_shift
        if tenure:
            first, width = bins[bisect_right(tenure_cdf, rand())]
            tenure = first + int(rand() * width)
            logit += b_tenure * tenure
            if tenure <= 6:
                logit += b_short

        # Demographics.
        gender = male if rand() < p_male else female
        if rand() < p_senior:
            senior = "1"
            logit += B_SENIOR
        else:
            senior = "0"
        partner = rand() < p_partner
        if rand() < (p_dep_partner if partner else p_dep_single):
            dependents = yes
            logit += B_DEPENDENTS
        else:
            dependents = no

        # Internet first: customers without phone service always have DSL.
        u = rand()
        if u < inet_cdf[0]:
            internet, p_svc, cents = dsl, p_svc_dsl, MC_DSL
            has_phone = rand() < p_phone_dsl
        elif u < inet_cdf[1]:
            internet, p_svc, cents, has_phone = fiber, p_svc_fiber, MC_FIBER, True
            logit += b_fiber
        else:
            internet, p_svc, cents, has_phone = no_inet, None, 0, True
            logit += b_no_inet
        if has_phone:
            phone = yes
            cents += MC_PHONE
            if rand() < p_lines:
                lines = yes
                cents += MC_LINES
                logit += B_MULTIPLE_LINES
            else:
                lines = no
        else:
            phone, lines = no, no_phone

        if p_svc is None:
            sec = bak = dev = tech = tv = mov = no_inet_svc
        else:
            p_sec, p_bak, p_dev, p_tech, p_tv, p_mov = p_svc
            if rand() < p_sec:
                sec = yes
                cents += mc_sec
            else:
                sec = no
                logit += b_no_sec
            if rand() < p_bak:
                bak = yes
                cents += mc_bak
            else:
                bak = no
            if rand() < p_dev:
                dev = yes
                cents += mc_dev
            else:
                dev = no
            if rand() < p_tech:
                tech = yes
                cents += mc_tech
            else:
                tech = no
                logit += b_no_tech
            if rand() < p_tv:
                tv = yes
                cents += mc_tv
                logit += b_stream
            else:
                tv = no
            if rand() < p_mov:
                mov = yes
                cents += mc_mov
                logit += b_stream
            else:
                mov = no

        # Billing.
        if rand() < p_paperless:
            paperless = yes
            logit += B_PAPERLESS
        else:
            paperless = no
        u = rand()
        if u < pay_cdf[0]:
            payment = echeck
            logit += B_ELECTRONIC_CHECK
        else:
            payment = mailed if u < pay_cdf[1] else bank if u < pay_cdf[2] else card

        # Charges: +-1.75 noise on a 0.05 grid; TotalCharges ~ tenure * monthly.
        cents += 5 * int(rand() * 71) - 175
        cents = MC_MIN if cents < MC_MIN else MC_MAX if cents > MC_MAX else cents
        if tenure == 0:
            total = BLANK
        elif tenure == 1:
            total = mc_text[cents]
        else:
            ratio = 1.0 + (rand() + rand() - 1.0) * tc_noise[tenure]
            units, rest = divmod(int(cents * tenure * ratio + 0.5), 100)
            total = f"{units}{cents_text[rest]}"

        # The churn draw happens for every row, so train and score files built
        # from the same seed describe the same customers.
        churn = yes if rand() * (1.0 + exp(-logit)) < 1.0 and tenure else no

        # Feistel rounds: (Z_A x Z_B) -> (Z_B x Z_A) -> ..., A = 10^4, B = 26^5.
        left, right = i % n_digits, i // n_digits
        h = ((right ^ k1) * 0x9E3779B1) & mask
        left, right = right, (left + (h ^ (h >> 15))) % n_digits
        left, right = right, (left + t2[right]) % n_letters
        h = ((right ^ k3) * 0x9E3779B1) & mask
        left, right = right, (left + (h ^ (h >> 15))) % n_digits
        left, right = right, (left + t4[right]) % n_letters
        row = (
            f"{digits_text[left]}-{letters3[right // 676]}{letters2[right % 676]}",
            gender,
            senior,
            yes if partner else no,
            dependents,
            tenure_text[tenure],
            phone,
            lines,
            internet,
            sec,
            bak,
            dev,
            tech,
            tv,
            mov,
            contract,
            paperless,
            payment,
            mc_text[cents],
            total,
            churn,
        )
        yield row if with_label else row[:-1]


# --- Shifted days, for drift demos and tests ---------------------------------------------
# What a shift can move, and what its amount means:
# - Contract: the change of the month-to-month share, -0.55 to +0.45 (it is 0.55). +0.3 moves
#   customers on one- and two-year contracts to month-to-month, each with the same chance, until
#   the share is about 0.85; -0.3 moves month-to-month customers to one- or two-year contracts
#   (in their 0.209 : 0.241 proportion).
# - MonthlyCharges: dollars added to every monthly charge (negative lowers it; the charge stays
#   at least 0.05). TotalCharges scales with it, as if the customer had always paid the new
#   price, so the total keeps its ratio to monthly x tenure (the data contract checks it).
# Only those columns move: every other column of every row is the one the unshifted generator
# writes with the same seed.
SHIFTABLE = ("Contract", "MonthlyCharges")


def check_shift(shift: Mapping[str, float]) -> dict[str, float]:
    """The shift, checked: known columns, a contract change within its range."""
    unknown = sorted(set(shift) - set(SHIFTABLE))
    if unknown:
        raise ValueError(f"cannot shift {unknown}: the shiftable columns are {list(SHIFTABLE)}")
    amounts = {k: float(v) for k, v in shift.items()}
    if any(not math.isfinite(v) for v in amounts.values()):
        raise ValueError(f"shift amounts must be finite numbers, got {dict(shift)}")
    low, high = -CONTRACT_P[0], 1.0 - CONTRACT_P[0]
    if not low <= amounts.get("Contract", 0.0) <= high:
        raise ValueError(
            f"a Contract shift changes the month-to-month share ({CONTRACT_P[0]}): it must be "
            f"between {low:g} and {high:g}, got {amounts['Contract']:g}"
        )
    return amounts


def _shifted(
    rows: Iterator[tuple[str, ...]], shift: Mapping[str, float], seed: int
) -> Iterator[tuple[str, ...]]:
    """The rows with the shift applied (see ``SHIFTABLE``), deterministic: its draws come from
    a generator of its own, so the rows' own draws, and so their other columns, stay as they
    are."""
    rng = random.Random(f"shift:{seed}")
    contract, monthly, total = (TRAIN_COLUMNS.index(c) for c in (*SHIFTABLE, "TotalCharges"))
    change = shift.get("Contract", 0.0)
    to_monthly = max(change, 0.0) / (1.0 - CONTRACT_P[0])
    from_monthly = max(-change, 0.0) / CONTRACT_P[0]
    one_year = CONTRACT_P[1] / (CONTRACT_P[1] + CONTRACT_P[2])
    added = round(100 * shift.get("MonthlyCharges", 0.0))
    for row in rows:
        row = list(row)
        if change:
            u = rng.random()
            if row[contract] != CONTRACTS[0] and u < to_monthly:
                row[contract] = CONTRACTS[0]
            elif row[contract] == CONTRACTS[0] and u < from_monthly:
                row[contract] = CONTRACTS[1] if rng.random() < one_year else CONTRACTS[2]
        if added:
            cents = round(100 * float(row[monthly]))
            new = max(cents + added, 5)
            row[monthly] = _fmt_cents(new)
            if row[total] != BLANK:
                row[total] = _fmt_cents(round(round(100 * float(row[total])) * new / cents))
        yield tuple(row)


def write_csv(
    path: str | os.PathLike[str],
    n: int,
    seed: int = 42,
    *,
    with_label: bool = True,
    blank_total_charges_fraction: float = DEFAULT_BLANK_TOTAL_CHARGES_FRACTION,
    churn_shift: float = 0.0,
    shift: Mapping[str, float] | None = None,
    progress_every: int = 1_000_000,
) -> int:
    """Write header + ``n`` rows to ``path`` atomically; return the rows written.

    Rows go to a hidden temp file in the target directory (ignored by Spark
    and Hadoop listings), which then replaces ``path`` via ``os.replace``.
    """
    path = Path(path)
    rows = generate_rows(
        n,
        seed,
        with_label=with_label,
        blank_total_charges_fraction=blank_total_charges_fraction,
        churn_shift=churn_shift,
        shift=shift,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    written = 0
    try:
        with open(fd, "w", newline="", encoding="utf-8", buffering=1 << 20) as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(TRAIN_COLUMNS if with_label else SCORE_COLUMNS)
            while written < n:
                chunk = min(progress_every, n - written)
                writer.writerows(islice(rows, chunk))
                written += chunk
                if written < n:
                    log.info("%s: %d / %d rows", path, written, n)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("wrote %d rows to %s", written, path)
    return written


def derive_seed(seed: int, day: date) -> int:
    """Stable per-date seed (sha256 of seed and ISO date; unlike hash(), not salted)."""
    digest = hashlib.sha256(f"{seed}:{day.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def write_daily_partitions(
    root: str | os.PathLike[str],
    dates: Iterable[date | str],
    n_per_day: int,
    seed: int = 42,
    *,
    with_label: bool = True,
    blank_total_charges_fraction: float = DEFAULT_BLANK_TOTAL_CHARGES_FRACTION,
    shift: Mapping[str, float] | None = None,
) -> list[Path]:
    """Write ``root/dt=YYYY-MM-DD/part-00000.csv`` per date, then its completion marker
    ``_SUCCESS``; return the CSV paths.

    Each date uses ``derive_seed(seed, date)``, so days differ but are reproducible.
    """
    days = [d if isinstance(d, date) else date.fromisoformat(d) for d in dates]
    if len(set(days)) != len(days):
        raise ValueError(f"duplicate dates: {[d.isoformat() for d in days]}")
    paths = []
    for day in days:
        path = Path(root) / f"dt={day.isoformat()}" / "part-00000.csv"
        write_csv(
            path,
            n_per_day,
            derive_seed(seed, day),
            with_label=with_label,
            blank_total_charges_fraction=blank_total_charges_fraction,
            shift=shift,
        )
        (path.parent / COMPLETE_MARKER).touch()  # last: the day is complete
        paths.append(path)
    return paths
