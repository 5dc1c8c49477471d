"""Several experts: the labeling-function analysis by author, and where one author's rules contradict another's.

Read at the end of `taskc run` from the LF analysis (pool) and the dev half of
the gold set. A rationale names its `author` in the task file; rationales
without one are grouped as "unsigned". For each author: their rules, the share
of the pool at least one of them votes on, and their rules' accuracy on the dev
gold items they fired on. A conflict between authors is a pair of rules by
different authors that vote for different classes on the same pool items; each
is listed with a few of those items, so the team can settle which knowledge
holds there. Nothing here is computed when no rationale names an author.
"""

from __future__ import annotations

from .analysis_records import AuthorAnalysis, AuthorConflict, AuthorFacts
from .result import RunResult

UNSIGNED = "unsigned"
EXAMPLES = 3


def author_of(result: RunResult, rationale_id: str) -> str:
    return result.task.rationale(rationale_id).author or UNSIGNED


def analyse_authors(result: RunResult) -> AuthorAnalysis | None:
    task = result.task
    if not any(r.author for r in task.rationales):
        return None
    order = list(dict.fromkeys(r.author or UNSIGNED for r in task.rationales))
    ruled = {f.rationale_id for f in result.functions}
    dev = result.dev_indices
    facts = []
    for author in order:
        mine = tuple(r.id for r in task.rationales if (r.author or UNSIGNED) == author)
        with_rule = [r for r in mine if r in ruled]
        covered = sum(any(r in item.votes for r in with_rule) for item in result.pool)
        votes = correct = 0
        for i in dev:
            for r in with_rule:
                cls = result.gold[i].votes.get(r)
                if cls is not None:
                    votes += 1
                    correct += cls == result.gold[i].label
        facts.append(AuthorFacts(author, mine, len(with_rule), covered / len(result.pool) if result.pool else None,
                                 votes, correct))
    conflicts = []
    for pair in result.analysis.conflict_pairs if result.analysis else ():
        a, b = author_of(result, pair.first), author_of(result, pair.second)
        if a != b:
            conflicts.append(AuthorConflict((a, pair.first), (b, pair.second),
                                            (task.rationale(pair.first).class_name,
                                             task.rationale(pair.second).class_name),
                                            len(pair.items), pair.items[:EXAMPLES]))
    return AuthorAnalysis(tuple(facts), tuple(conflicts))


def grouped_by_author(result: RunResult, header: list[str], rows: list[list[str]]
                      ) -> tuple[list[str], list[list[str]]]:
    """An LF table (rationale id first) with an author column, grouped by author in the order authors first
    appear; unchanged when no rationale names an author."""
    if not any(r.author for r in result.task.rationales):
        return header, rows
    order = {author: i for i, author in enumerate(dict.fromkeys(r.author or UNSIGNED for r in result.task.rationales))}
    with_author = [[row[0], author_of(result, row[0]), *row[1:]] for row in rows]
    return [header[0], "author", *header[1:]], sorted(with_author, key=lambda row: order[row[1]])


__all__ = ["UNSIGNED", "AuthorAnalysis", "AuthorConflict", "AuthorFacts", "analyse_authors", "author_of",
           "grouped_by_author"]
