"""The report's sections of the expert's loop: questions to answer, suggestions to apply, authors' conflicts.

Part of the report stage: rendered by `markdown.render_markdown` /
`html.render_html` from the run's `ExpertLoop` (`expert_loop.analyse`), in one
place each, before the next steps; they pass in their table and escaping
functions, so this module imports none of them. The items shown are pool items
(questions, conflicts) and dev gold items (suggestions): never the test half.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

from taskc.compiler import counted

from ..analysis_records import AuthorAnalysis, AuthorConflict, Suggestion
from ..expert_loop import QUESTIONS_FILE
from ..result import RunResult

SHOWN_QUESTIONS = 10
SHOWN_SUGGESTIONS = 8


def suggestion_groups(suggestions: Sequence[Suggestion]) -> list[tuple[str, list[Suggestion]]]:
    """"rice_pasta_noodles misses" → its suggestions, in the order of each group's best suggestion."""
    groups: dict[str, list[Suggestion]] = {}
    for s in suggestions:
        groups.setdefault(f"{s.class_name}: {s.headline} (lexicon.{s.lexicon})", []).append(s)
    return list(groups.items())


def group_line(headline: str, members: Sequence[Suggestion]) -> str:
    terms = ", ".join(f"{s.term} (+{len(s.fixes)} −{len(s.breaks)})" for s in members)
    return f"{headline}: {terms}"


def markdown_sections(result: RunResult, md_table: Callable[..., list[str]], md_inline: Callable[[str], str],
                      item_text: Callable[[Any], str]) -> list[str]:
    loop = result.expert
    if loop is None:
        return []
    out: list[str] = []
    if loop.questions:
        out += ["## Questions for the expert", "",
                md_inline(f"The pool items whose label would teach the model most: the rules, the LLM and the model "
                           f"disagree on them, or the model is unsure; near-duplicates left out. All "
                           f"{len(loop.questions)} are in `{QUESTIONS_FILE}`: copy it to the task's `pool.answers` "
                           "file, fill in `label`, and rerun (`taskc ask RUN_DIR` prints them)."), ""]
        rows = [[str(q.rank), item_text(q.values), q.why()] for q in loop.questions[:SHOWN_QUESTIONS]]
        out += [*md_table(["#", "pool item", "votes"], rows), ""]
    if loop.suggestions:
        shown = loop.suggestions[:SHOWN_SUGGESTIONS]
        out += ["## Suggestions", "",
                md_inline("Lexicon changes tried on the dev half: (+fixed −broken) dev gold items, the rules "
                           "evaluated again with the change and the trained models held fixed (`taskc suggest "
                           "RUN_DIR` lists them all)."), ""]
        out += [f"- {md_inline(group_line(headline, members))}" for headline, members in suggestion_groups(shown)]
        out += [""]
    if loop.authors is not None:
        out += _md_authors(result, loop.authors, md_table, md_inline, item_text)
    return out


def _md_authors(result: RunResult, authors: AuthorAnalysis, md_table: Callable[..., list[str]],
                md_inline: Callable[[str], str], describe: Callable[[Any], str]) -> list[str]:
    out = ["## Authors", "", *md_table(*author_rows(authors)), ""]
    if authors.conflicts:
        out += ["Where one author's rules contradict another's (pool items where both vote, for different "
                "classes):", ""]
        for c in authors.conflicts:
            out.append(f"- {md_inline(conflict_line(c))}")
            out += [f"  - {md_inline(describe(result.pool[i].values))}" for i in c.examples]
        out.append("")
    else:
        out += ["No rules of different authors vote for different classes on the same pool item.", ""]
    return out


def author_rows(authors: AuthorAnalysis) -> tuple[list[str], list[list[str]]]:
    rows = [[a.author, ", ".join(a.rationales), str(a.rules),
             "-" if a.pool_coverage is None else f"{a.pool_coverage:.1%}",
             "-" if a.gold_accuracy is None else f"{a.gold_correct}/{a.gold_votes} ({a.gold_accuracy:.1%})"]
            for a in authors.authors]
    return ["author", "rationales", "rules", "pool coverage", "dev gold accuracy"], rows


def conflict_line(c: AuthorConflict) -> str:
    (a, ra), (b, rb) = c.first, c.second
    first_class, second_class = c.classes
    return (f"{a}'s `{ra}` ({first_class}) against {b}'s `{rb}` ({second_class}) on "
            f"{counted(c.items, 'pool item')}")


def html_sections(result: RunResult, html_table: Callable[..., str], inline_code: Callable[[str], str],
                  describe: Callable[[Any], str]) -> list[str]:
    loop = result.expert
    if loop is None:
        return []
    e = html.escape
    parts: list[str] = []
    if loop.questions:
        parts += ["<h2>Questions for the expert</h2>",
                  f"<p>The pool items whose label would teach the model most: the rules, the LLM and the model "
                  f"disagree on them, or the model is unsure; near-duplicates left out. All {len(loop.questions)} "
                  f"are in <code>{QUESTIONS_FILE}</code>: copy it to the task's <code>pool.answers</code> file, fill "
                  "in <code>label</code>, and rerun (<code>taskc ask RUN_DIR</code> prints them).</p>",
                  html_table(["#", "pool item", "votes"],
                              [[str(q.rank), describe(q.values), q.why()]
                               for q in loop.questions[:SHOWN_QUESTIONS]])]
    if loop.suggestions:
        shown = loop.suggestions[:SHOWN_SUGGESTIONS]
        parts += ["<h2>Suggestions</h2>",
                  "<p class=muted>Lexicon changes tried on the dev half: (+fixed −broken) dev gold items, the rules "
                  "evaluated again with the change and the trained models held fixed (<code>taskc suggest "
                  "RUN_DIR</code> lists them all).</p><ul>"]
        parts += [f"<li>{e(group_line(headline, members))}</li>" for headline, members in suggestion_groups(shown)]
        parts.append("</ul>")
    if loop.authors is not None:
        parts += ["<h2>Authors</h2>", html_table(*author_rows(loop.authors))]
        if loop.authors.conflicts:
            parts.append("<p>Where one author's rules contradict another's (pool items where both vote, for "
                         "different classes):</p><ul>")
            for c in loop.authors.conflicts:
                examples = "".join(f"<li>{e(describe(result.pool[i].values))}</li>" for i in c.examples)
                parts.append(f"<li>{inline_code(conflict_line(c))}<ul>{examples}</ul></li>")
            parts.append("</ul>")
        else:
            parts.append("<p>No rules of different authors vote for different classes on the same pool item.</p>")
    return parts


__all__ = ["author_rows", "group_line", "html_sections", "markdown_sections", "suggestion_groups"]
