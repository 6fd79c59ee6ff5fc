#!/usr/bin/env python3
"""Writes tests/fixtures/uplift_reference.json: the lift's interval and p-value, as
statsmodels computes them, for the tables shared::uplift is checked against.

Run it with a Python that has statsmodels (pinned below), from the repository root:

    venv=$(infra/scripts/ensure-python-tools.sh statsmodels==0.15.0 scipy==1.17.1 numpy==2.4.6)
    $venv/python tests/scripts/uplift_reference.py

Each case is a 2x2 table (treated: converted of customers; control: converted of customers)
at one confidence level; the reference is statsmodels'
`confint_proportions_2indep(..., method="newcomb", compare="diff")` (Newcombe's hybrid score
interval, method 10 of Newcombe 1998) and `proportions_ztest` (pooled, two-sided). A p-value
statsmodels cannot compute (both groups converted none or all) is written as null.
"""
import json
import math
import random
from pathlib import Path

import numpy
import scipy
import statsmodels
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

# Hand-picked edges, then random tables from a fixed seed.
TABLES = [
    (0, 10, 0, 10),          # no conversion anywhere
    (10, 10, 10, 10),        # everybody converted
    (0, 5, 3, 7),            # treated none, small groups
    (5, 5, 0, 3),            # treated all, control none, groups under 10
    (1, 1, 0, 1),            # one customer each
    (3, 9, 1, 8),
    (120, 9000, 9, 1000),    # a 10 % holdout
    (0, 1000, 0, 100),
    (1000, 1000, 99, 100),
    (1, 1_000_000, 0, 100_000),
    (45_000, 900_000, 4_000, 100_000),
    (2, 7, 2, 7),            # no difference
]
rng = random.Random(20261207)
while len(TABLES) < 40:
    n1 = rng.choice([rng.randint(1, 9), rng.randint(10, 1000), rng.randint(1000, 2_000_000)])
    n2 = rng.choice([rng.randint(1, 9), rng.randint(10, 1000), rng.randint(1000, 200_000)])
    rate = rng.random() ** 2
    c1 = min(n1, max(0, round(n1 * rate * rng.uniform(0.5, 1.5))))
    c2 = min(n2, max(0, round(n2 * rate)))
    TABLES.append((c1, n1, c2, n2))

cases = []
for c1, n1, c2, n2 in TABLES:
    for confidence in (0.90, 0.95, 0.99):
        low, high = confint_proportions_2indep(c1, n1, c2, n2, method="newcomb", compare="diff",
                                               alpha=1 - confidence)
        with numpy.errstate(divide="ignore", invalid="ignore"):
            _, p = proportions_ztest([c1, c2], [n1, n2])
        cases.append({
            "treated": {"converted": c1, "customers": n1},
            "control": {"converted": c2, "customers": n2},
            "confidence": f"{confidence:.2f}",
            "absolute": c1 / n1 - c2 / n2,
            "interval": [float(low), float(high)],
            "p_value": None if math.isnan(p) else float(p),
        })

out = Path(__file__).resolve().parent.parent / "fixtures/uplift_reference.json"
out.write_text(json.dumps({
    "generated_by": "tests/scripts/uplift_reference.py",
    "statsmodels": statsmodels.__version__, "scipy": scipy.__version__, "numpy": numpy.__version__,
    "cases": cases,
}, indent=1) + "\n")
print(f"{len(cases)} cases ({len(TABLES)} tables) written to {out}")
