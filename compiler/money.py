"""One way to write an amount of US dollars, for every place taskc shows one (compile's estimate, diff's
plan rows, the run history): two decimals from a dollar up, and three significant digits below, so that a
change (+$0.00267) reads in the same format as the totals beside it ($0.0151).
"""

from __future__ import annotations

import math

MAX_DECIMALS = 6  # below a millionth of a dollar the digits say nothing


def format_usd(amount: float, *, signed: bool = False) -> str:
    """`$1,234.50`, `$0.0151`, `$0.00267`, `$0.00`; with `signed`, a leading `+` or `-` (`+$0.00267`)."""
    sign = ("-" if amount < 0 else "+") if signed else ("-" if amount < 0 else "")
    size = abs(amount)
    if size >= 1 or size == 0:
        decimals = 2
    else:
        decimals = min(MAX_DECIMALS, max(2, 2 - math.floor(math.log10(size))))
        if round(size, decimals) >= 1:  # 0.9996 rounds up to a dollar
            decimals = 2
    return f"{sign}${size:,.{decimals}f}"
