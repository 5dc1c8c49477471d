"""Pictures of the HTML report: per-rationale coverage and accuracy as bars, the rules' conflicts as a heatmap.

Part of the report stage (`html.render_html` places them). Inline SVG only: no
script, no external asset, nothing fetched. Every picture has a `viewBox` and
scales down to the page's width, so it stays whole on a phone; text colours are
those of `CSS` (the test computes their contrast against their backgrounds:
at least 4.5:1, WCAG AA for body text).
"""

from __future__ import annotations

import html

from taskc.compiler import counted

from ..result import RunResult

TEXT = "#1d1d1f"
MUTED = "#595959"
COVERAGE_FILL = "#4a78b5"
ACCURACY_FILL = "#2f855a"
LOW_ACCURACY_FILL = "#c0392b"
TRACK = "#ececf0"

# Phone width: tables scroll sideways inside their own box instead of widening the page; pictures shrink.
CSS = """
.scroll{overflow-x:auto;max-width:100%}.scroll table{margin:0}
svg{max-width:100%;height:auto}
@media (max-width:600px){body{margin:1em auto;font-size:14px}h1{font-size:1.3em}td,th{padding:.2em .4em}}
"""


def rationale_bars_svg(result: RunResult, low_accuracy: float = 0.8) -> str:
    """Each rationale with a rule: its pool coverage and its dev gold accuracy, as two bars side by side."""
    analysis = result.analysis
    if analysis is None or not analysis.functions:
        return ""
    e = html.escape
    rows = analysis.functions
    label_width, bar_width, gap, row_height, top = 170, 180, 64, 24, 34
    width = label_width + 2 * bar_width + gap + 80
    height = top + row_height * len(rows) + 8
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
             f'role="img" aria-label="coverage and gold accuracy per rationale" font-family="system-ui,sans-serif" '
             f'font-size="12">',
             f'<text x="{label_width}" y="14" fill="{TEXT}" font-weight="bold">pool coverage</text>',
             f'<text x="{label_width + bar_width + gap}" y="14" fill="{TEXT}" font-weight="bold">'
             f'dev gold accuracy (votes)</text>']
    for k, f in enumerate(rows):
        y = top + row_height * k
        parts.append(f'<text x="{label_width - 6}" y="{y + 12}" text-anchor="end" fill="{TEXT}">'
                     f'{e(_clip(f.rationale_id, 24))}<title>{e(f.rationale_id)} → {e(f.class_name)}</title></text>')
        parts.append(_bar(label_width, y, bar_width, f.coverage, COVERAGE_FILL, f"{100 * f.coverage:.1f}%"))
        x = label_width + bar_width + gap
        accuracy = f.empirical_accuracy
        if accuracy is None:
            parts.append(f'<text x="{x}" y="{y + 12}" fill="{MUTED}">no dev gold vote</text>')
        else:
            fill = ACCURACY_FILL if accuracy >= low_accuracy else LOW_ACCURACY_FILL
            parts.append(_bar(x, y, bar_width, accuracy, fill, f"{100 * accuracy:.0f}% ({f.gold_votes})"))
    parts.append("</svg>")
    return "".join(parts)


def conflict_heatmap_svg(result: RunResult, cell: int = 26) -> str:
    """Rules × rules: on how many pool items the two vote for different classes (only rules in a conflict)."""
    analysis = result.analysis
    if analysis is None or not analysis.conflict_pairs:
        return ""
    e = html.escape
    counts = {(p.first, p.second): len(p.items) for p in analysis.conflict_pairs}
    involved = {r for pair in counts for r in pair}
    names = [f.rationale_id for f in analysis.functions if f.rationale_id in involved]
    most = max(counts.values())
    label_width = 170
    top = 24 + round(5.5 * max(len(_clip(name, 20)) for name in names))  # the slanted column labels' height
    width, height = label_width + cell * len(names) + 110, top + cell * len(names) + 10  # room for the slant
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" role="img" '
             f'aria-label="conflicts between rules" font-family="system-ui,sans-serif" font-size="11">']
    for j, name in enumerate(names):
        x = label_width + cell * j + cell / 2 + 4
        parts.append(f'<text x="{x}" y="{top - 6}" transform="rotate(-55 {x} {top - 6})" fill="{TEXT}">'
                     f'{e(_clip(name, 20))}</text>')
    for i, first in enumerate(names):
        parts.append(f'<text x="{label_width - 6}" y="{top + cell * i + cell / 2 + 4}" text-anchor="end" '
                     f'fill="{TEXT}">{e(_clip(first, 24))}</text>')
        for j, second in enumerate(names):
            count = counts.get((first, second)) or counts.get((second, first)) or 0
            x, y = label_width + cell * j, top + cell * i
            share = count / most if most else 0.0
            fill = f"hsl(4,70%,{96 - 50 * share:.0f}%)" if count else ("#f4f4f6" if i != j else "#e0e0e4")
            title = f"{first} × {second}: {counted(count, 'pool item')}" if count else f"{first} × {second}: none"
            parts.append(f'<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#fff">'
                         f'<title>{e(title)}</title></rect>')
            if count:
                parts.append(f'<text x="{x + cell / 2}" y="{y + cell / 2 + 4}" text-anchor="middle" '
                             f'fill="{"#fff" if share > 0.55 else TEXT}">{count}</text>')
    parts.append("</svg>")
    return "".join(parts)


def lf_pictures(result: RunResult, low_accuracy: float = 0.8) -> list[str]:
    """The LF section's pictures, each with its caption (none without a pool)."""
    parts = []
    bars = rationale_bars_svg(result, low_accuracy)
    if bars:
        parts += [f"<p class=muted>Each rule's coverage of the pool and its accuracy on the dev gold items it fired "
                  f"on (red below {low_accuracy:.0%}).</p>", f"<div class=scroll>{bars}</div>"]
    heatmap = conflict_heatmap_svg(result)
    if heatmap:
        parts += ["<p class=muted>Conflicts between rules: on how many pool items the two vote for different "
                  "classes (darker: more).</p>", f"<div class=scroll>{heatmap}</div>"]
    return parts


def _bar(x: float, y: float, width: float, share: float, fill: str, label: str) -> str:
    filled = max(0.0, min(1.0, share)) * width
    return (f'<rect x="{x}" y="{y}" width="{width}" height="16" fill="{TRACK}"/>'
            f'<rect x="{x}" y="{y}" width="{filled:.1f}" height="16" fill="{fill}"/>'
            f'<text x="{x + width + 4}" y="{y + 12}" fill="{TEXT}">{html.escape(label)}</text>')


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio of two #rgb / #rrggbb colours (1 to 21)."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(colour: str) -> float:
    hex_digits = colour.lstrip("#")
    if len(hex_digits) == 3:
        hex_digits = "".join(c * 2 for c in hex_digits)
    channels = [int(hex_digits[k:k + 2], 16) / 255 for k in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


__all__ = ["CSS", "conflict_heatmap_svg", "contrast_ratio", "lf_pictures", "rationale_bars_svg"]
