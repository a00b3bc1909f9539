"""How every output writes money and numbers: one set of formatters for the terminal, Markdown, HTML,
chart labels and the replay command, so the same figure reads the same everywhere."""

from __future__ import annotations


def usd(value: float | None, unpriced: str = "unpriced", *, precise: bool = False) -> str:
    """$1,234.56. Amounts under a cent keep four decimals (never a misleading $0.00); `precise` keeps four
    below a dollar too (a replayed sample's small sums)."""
    if value is None:
        return unpriced
    sign, value = ("-", -value) if value < 0 else ("", value)  # a credit or a loss: -$4.80, not $-4.80
    if value == 0 or value >= (1 if precise else 0.01):
        return f"{sign}${value:,.2f}"
    return f"{sign}${value:,.4f}"


def money_text(amount: float, currency: str) -> str:
    """An amount in its own currency: $1,234.56 for USD, "1,234.56 EUR" otherwise (never converted)."""
    if currency == "USD":
        return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"  # a credit: -$4.80, not $-4.80
    return f"{amount:,.2f} {currency}"


def signed_usd(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "±$0.00" if round(value, 2) == 0 else ("+" if value > 0 else "−") + f"${abs(value):,.2f}"


def signed_int(value: float | None) -> str:
    if value is None:
        return "n/a"
    v = int(round(value))
    return "±0" if v == 0 else ("+" if v > 0 else "−") + f"{abs(v):,}"


def num(value) -> str:
    """Integers with thousands separators, other numbers with 4 significant digits, booleans as yes/no."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.2f}"
    return str(value)


def pct(value: float | None) -> str:
    """A share (0.123) as a percentage (12.3%)."""
    return "" if value is None else f"{value * 100:.1f}%"


def short_usd(value: float) -> str:
    """Money on a chart axis or bar: $1.2M, $45.3k, $12.34."""
    if abs(value) >= 1e6:
        return f"${value / 1e6:,.1f}M"
    if abs(value) >= 1e4:
        return f"${value / 1e3:,.1f}k"
    return usd(value)


def short_num(value: float) -> str:
    """A count on a chart axis or bar: 1.2B, 3.4M, 45.3k, 120, 0.25."""
    if abs(value) >= 1e9:
        return f"{value / 1e9:,.1f}B"
    if abs(value) >= 1e6:
        return f"{value / 1e6:,.1f}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:,.1f}k"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"
