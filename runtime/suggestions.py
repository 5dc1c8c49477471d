"""Suggestions the expert can act on: lexicon additions and exceptions, each with what it would fix and break.

Computed at the end of `taskc run` from the dev half's errors (the test half is
never looked at). First, candidate words and two-word phrases: the ones that are
discriminative of a group of errors against the dev items the primary got right
(lift of their rate, not raw counts, so words every dish has do not rise), where
a group is a class's errors, the errors a rule missed (its class, it stayed
silent) or the errors a rule voted for wrongly. Then every candidate is *tried*:
added to a lexicon that the group's rules read, the rules are evaluated again on
every dev item that mentions it (no other item can change), and the primary
predictor, as trained, decides again. A suggestion is kept only when it fixes
more dev errors than it breaks correct items; both counts are reported. Adding
a word to a lexicon a rule reads under `not` (look-alikes, substitutes) is an
exception to that rule. A word already in a lexicon is never suggested for it.

The counts hold the run's trained models fixed (the label model's weights and
the local model); a rerun retrains them, so the rules' part of the prediction is
exact and the model's part, on items where no rule fires, may move a little.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from rapidfuzz import fuzz, process
from taskc.compiler import mentions

from .analysis_records import Suggestion
from .expert_answers import answer_key
from .features import ItemBatch
from .labeling import ABSTAIN, LabelingFunction, apply_functions
from .result import RunResult

TERMS_PER_GROUP = 8
MAX_CHANGES = 120  # lexicon changes tried per run
MIN_LIFT = 2.0
SHOWN = 30  # suggestions kept in suggestions.json (best first)
OFFLINE = ("rules_then_model", "local_model", "labeling_functions")
_RUN = re.compile(r"[\w-]+")  # what `mentions` sees as a word (a hyphen is part of it)
_LEXICON = re.compile(r"\blexicon\.([A-Za-z_][A-Za-z0-9_]*)")
_NEGATED = re.compile(r"\bnot\s+mentions\([^,()]*,\s*lexicon\.([A-Za-z_][A-Za-z0-9_]*)")


def lexicons_read(source: str) -> tuple[str, ...]:
    """The lexicons a rule's expression names, in order."""
    return tuple(dict.fromkeys(_LEXICON.findall(source)))


def lexicons_to_try(source: str, effect: str) -> tuple[str, ...]:
    """Where a word can make a rule fire (the lexicons it reads, except those it reads as `not mentions`), or
    stop it (those it reads as `not mentions`; failing any, all it reads)."""
    negated = set(_NEGATED.findall(source))
    read = lexicons_read(source)
    if effect == "fires":
        return tuple(name for name in read if name not in negated) or read
    return tuple(name for name in read if name in negated) or read


def terms_of(values: Mapping[str, Any]) -> set[str]:
    """Candidate words and two-word phrases of an input, as `mentions` would match them."""
    texts = [v for value in values.values()
             for v in ([value] if isinstance(value, str) else value if isinstance(value, list) else [])
             if isinstance(v, str)]  # text fields only: numbers, booleans and nulls hold no words
    found: set[str] = set()
    for text in texts:
        runs = [run for run in _RUN.findall(text.lower()) if not run.strip("-").isdigit()]
        found.update(run for run in runs if len(run) >= 3 and any(c.isalpha() for c in run))
        found.update(f"{a} {b}" for a, b in zip(runs, runs[1:], strict=False)
                     if any(c.isalpha() for c in a) and any(c.isalpha() for c in b))
    return found


def suggest(result: RunResult) -> tuple[Suggestion, ...]:
    """The lexicon changes that fix more dev errors of the primary than they break, best first."""
    predictors = result.predictors
    if predictors is None or not result.functions:
        return ()
    # the primary when it is offline; else (the LLM, a student behind an endpoint) the cascade or the rules
    predictor = next((name for name in (result.primary, *OFFLINE) if name in OFFLINE and name in predictors.available),
                     None)
    if predictor is None:
        return ()
    task, gold = result.task, result.gold
    dev = list(result.dev_indices)
    environments = {i: {name: gold[i].values.get(name) for name in task.field_names} for i in dev}
    before = dict(zip(dev, _labels(result, predictor, [environments[i] for i in dev], None), strict=True))
    errors = [i for i in dev if before[i] != gold[i].label]
    if not errors:
        return ()
    correct = [i for i in dev if before[i] == gold[i].label]
    terms = {i: terms_of(gold[i].values) for i in dev}
    rationale = {r.id: r for r in task.rationales}
    reads = {f.rationale_id: rationale[f.rationale_id].rule.source
             for f in result.functions}
    _BUILT.clear()
    words = {lexicon.name: set(lexicon.words) for lexicon in task.lexicons}
    candidates: dict[str, set[tuple[str, str, str]]] = {}  # term -> (lexicon, rule, wanted effect) to try
    place: dict[str, int] = {}  # term -> its best place in a group's list (the most telling first)
    support: Counter[str] = Counter()  # term -> error items it occurs in (picks among equal alternatives)
    for group, rule, effect in _groups(result, errors):
        for k, term in enumerate(_discriminative(group, correct, terms)):
            candidates.setdefault(term, set()).update((lexicon, rule, effect)
                                                      for lexicon in lexicons_to_try(reads[rule], effect)
                                                      if lexicon in words and term not in words[lexicon])
            place[term] = min(place.get(term, k), k)
    for i in errors:
        support.update(terms[i])
    tried = 0
    found = []
    # every change costs an evaluation of the rules that read its lexicon: the most telling terms first, at
    # most MAX_CHANGES changes (a run with many errors has more candidates than an expert reads anyway)
    for term in sorted(candidates, key=lambda t: (place[t], -support[t], t)):
        lexicons = {lexicon for lexicon, _, _ in candidates[term]}
        if tried + len(lexicons) > MAX_CHANGES:
            break
        tried += len(lexicons)
        touched = [i for i in dev if term in terms[i] or _mentions(gold[i].values, term)]
        best = None
        for lexicon, rule, effect in sorted(candidates[term]):
            suggestion = _try(result, predictor, term, lexicon, (rule, effect), touched, environments, before)
            if suggestion is not None:
                suggestion = dataclasses.replace(suggestion, fit=_fit(term, words[lexicon]))
                if best is None or _rank(suggestion) < _rank(best):
                    best = suggestion
        if best is not None:
            reach = [{name: p.values.get(name) for name in task.field_names} for p in result.pool
                     if term in answer_key(task, p.values) and _mentions(p.values, term)]
            found.append(dataclasses.replace(best, pool_changes=_vote_changes(result, term, best.lexicon, reach)))
    _BUILT.clear()  # keyed by the result's id: never reused by another run
    return tuple(_collapse(sorted(found, key=_rank), support)[:SHOWN])


def _rank(s: Suggestion) -> tuple[int, int, float, str, str]:
    return (len(s.breaks) - len(s.fixes), len(s.breaks), -s.fit, s.term, s.lexicon)


def _fit(term: str, entries: set[str]) -> float:
    """How much a term looks like a lexicon's entries (the best rapidfuzz token-sort ratio): among changes with
    the same effect, "ice cream" belongs with sweet dishes rather than with rice and pasta."""
    best = process.extractOne(term, entries, scorer=fuzz.token_sort_ratio) if entries else None
    return float(best[1]) if best else 0.0


def _collapse(ranked: Sequence[Suggestion], support: Mapping[str, int]) -> list[Suggestion]:
    """One suggestion per rule and set of fixed items: the term found in the most errors (then the one that
    fits its lexicon best, then the one reaching most pool items: a real phrase recurs, an accidental pair of
    words does not); the others become its alternatives."""
    groups: dict[tuple[Any, ...], list[Suggestion]] = {}
    for s in ranked:
        groups.setdefault((s.target, s.fixes, s.breaks), []).append(s)
    kept = []
    for members in groups.values():
        members = sorted(members, key=lambda s: (-support.get(s.term, 0), -s.fit, -s.pool_changes, len(s.term),
                                                 s.term))
        kept.append(dataclasses.replace(members[0], alternatives=tuple(s.term for s in members[1:])))
    # a change whose fixes another change of the same rule also makes, at no more breaks, adds nothing:
    # "veal" fixes the "veal lasagna" that "lasagna" fixes with the others
    undominated = [s for s in kept if not any(
        other is not s and other.target == s.target and set(s.fixes) <= set(other.fixes)
        and len(other.breaks) <= len(s.breaks) and _rank(other) < _rank(s) for other in kept)]
    return sorted(undominated, key=_rank)


def _groups(result: RunResult, errors: Sequence[int]) -> list[tuple[list[int], str, str]]:
    """(errors, rule, the effect wanted of it): per rule, the errors of its class it missed (it should fire) and
    the errors it voted for wrongly (it should stop firing)."""
    gold = result.gold
    groups = []
    for f in result.functions:
        missed = [i for i in errors if gold[i].label == f.class_name and f.rationale_id not in gold[i].votes]
        wrong = [i for i in errors if gold[i].votes.get(f.rationale_id) not in (None, gold[i].label)]
        if missed:
            groups.append((missed, f.rationale_id, "fires"))
        if wrong:
            groups.append((wrong, f.rationale_id, "stops firing"))
    return groups


def _discriminative(group: Sequence[int], correct: Sequence[int], terms: Mapping[int, set[str]]) -> list[str]:
    """Terms much more frequent in the group than among the correctly predicted items (smoothed lift)."""
    inside = Counter(term for i in group for term in terms[i])
    outside = Counter(term for i in correct for term in terms[i])
    lift = {t: (n / len(group)) / ((outside[t] + 1) / (len(correct) + 1)) for t, n in inside.items()}
    kept = [t for t in inside if lift[t] >= MIN_LIFT]
    return sorted(kept, key=lambda t: (-inside[t], -lift[t], t))[:TERMS_PER_GROUP]


def _mentions(values: Mapping[str, Any], term: str) -> bool:
    for value in values.values():
        for text in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            if isinstance(text, str) and mentions(text, (term,)):
                return True
    return False


def _changed_functions(result: RunResult, term: str, lexicon: str) -> tuple[LabelingFunction, ...]:
    """The rules with ``term`` added to ``lexicon``: only the rules that read it are built again, each over
    just the lexicons it names (a smaller index to build than the task's)."""
    task = result.task
    words = task.lexicon_words()
    readers = [f for f in result.functions if lexicon in lexicons_read(f.rule_source)]
    # one index for all the rules that read the lexicon: over the lexicons they name, the term added
    names = dict.fromkeys(name for f in readers for name in lexicons_read(f.rule_source) if name in words)
    lexicons = {name: words[name] + ((term,) if name == lexicon else ()) for name in names}

    def rebuilt(f: LabelingFunction) -> LabelingFunction:
        rule = task.rationale(f.rationale_id).rule
        assert rule is not None
        return LabelingFunction(f.rationale_id, f.class_name, f.class_index, f.rule_source,
                                rule.evaluator(lexicons), f.node)

    key = (id(result), term, lexicon)
    if key not in _BUILT:
        if len(_BUILT) >= 256:
            _BUILT.clear()
        _BUILT[key] = tuple(rebuilt(f) if lexicon in lexicons_read(f.rule_source) else f for f in result.functions)
    return _BUILT[key]


_BUILT: dict[tuple[int, str, str], tuple[LabelingFunction, ...]] = {}  # one suggest() tries a change many times


def _vote_changes(result: RunResult, term: str, lexicon: str, items: Sequence[Mapping[str, Any]]) -> int:
    """On how many of ``items`` (pool items holding the term) some rule votes otherwise after the change."""
    if not items:
        return 0
    old = apply_functions(result.functions, items).votes
    new = apply_functions(_changed_functions(result, term, lexicon), items).votes
    return int((old != new).any(axis=1).sum())


def _try(result: RunResult, predictor: str, term: str, lexicon: str, target: tuple[str, str],
         touched: Sequence[int], environments: Mapping[int, dict[str, Any]],
         before: Mapping[int, str | None]) -> Suggestion | None:
    """The effect of adding ``term`` to ``lexicon``, worked out by evaluating the rules again; None unless it
    has the wanted effect on its rule (``target``) and fixes more dev errors than it breaks."""
    if not touched:
        return None
    gold = result.gold
    functions = _changed_functions(result, term, lexicon)
    items = [environments[i] for i in touched]
    old_votes = apply_functions(result.functions, items).votes
    new_votes = apply_functions(functions, items).votes
    if np.array_equal(old_votes, new_votes):
        return None
    after = _labels(result, predictor, items, new_votes)
    fixes = tuple(i for i, label in zip(touched, after, strict=True)
                  if before[i] != gold[i].label and label == gold[i].label)
    breaks = tuple(i for i, label in zip(touched, after, strict=True)
                   if before[i] == gold[i].label and label != gold[i].label)
    if len(fixes) <= len(breaks):
        return None
    effects: dict[str, str] = {}
    for j, f in enumerate(functions):
        was, now = old_votes[:, j] != ABSTAIN, new_votes[:, j] != ABSTAIN
        if (now & ~was).any():
            effects[f.rationale_id] = "fires"
        elif (was & ~now).any():
            effects[f.rationale_id] = "stops firing"
    if effects.get(target[0]) != target[1]:
        return None  # it fixes something, but not by changing what its rule does: not a change of that rule
    return Suggestion(term, lexicon, tuple(effects.items()), fixes, breaks, predictor, target,
                      result.task.rationale(target[0]).class_name)


def _labels(result: RunResult, predictor: str, items: Sequence[Mapping[str, Any]],
            votes: np.ndarray | None) -> list[str | None]:
    assert result.predictors is not None
    if votes is None:
        votes = apply_functions(result.functions, items).votes
    return result.predictors.labels(ItemBatch(tuple(items), votes), predictor)


__all__ = ["Suggestion", "lexicons_read", "suggest", "terms_of"]
