"""Label aggregation: from the labeling functions' votes to one training label per pool item.

Second stage of `taskc run`, after `labeling`. Two aggregators over the vote
matrix: a majority vote (reported for comparison; a tie is left unlabeled) and a
Dawid-Skene label model fitted by EM that weighs each function by its estimated
accuracy. Each function's behaviour is a confusion matrix over the true class ×
{abstain, class 1..k}: including abstain as an outcome is what lets the model
learn anything from rules that only ever vote for one class (most rationales),
because such a rule is informative through *when* it fires, not which class it
names. EM starts from the majority vote, which anchors the classes and avoids
the label-swapping symmetric solution. Items where every function abstains
stay unlabeled: the rules say nothing about them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .labeling import ABSTAIN

UNLABELED = -1


@dataclass(frozen=True)
class LabelModelResult:
    labels: np.ndarray  # (items,) class index or UNLABELED
    probabilities: np.ndarray  # (items, classes) posterior over the voted classes; uniform when unlabeled
    class_prior: np.ndarray  # (classes,)
    function_accuracy: np.ndarray  # (functions,) P(true class == vote | the function voted)
    function_coverage: np.ndarray  # (functions,) P(the function votes)
    confusion: np.ndarray  # (functions, classes, 1 + classes): P(abstain / vote c | true class)
    iterations: int
    converged: bool


def majority_vote(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """The most voted class per item; UNLABELED when nobody votes or the top classes tie."""
    counts = _vote_counts(votes, n_classes)
    top = counts.max(axis=1, keepdims=True)
    single_winner = (counts > 0).any(axis=1) & ((counts == top).sum(axis=1) == 1)
    return np.where(single_winner, counts.argmax(axis=1), UNLABELED).astype(np.int64)


def vote_shares(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """Vote shares per item (uniform where nobody votes): the starting point of EM."""
    counts = _vote_counts(votes, n_classes)
    totals = counts.sum(axis=1, keepdims=True)
    return np.where(totals > 0, counts / np.maximum(totals, 1), 1.0 / n_classes)


def _vote_counts(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """(items, classes): how many functions voted each class on each item."""
    return _one_hot(votes, n_classes)[:, :, 1:].sum(axis=1)


def fit_dawid_skene(votes: np.ndarray, n_classes: int, *, max_iterations: int = 200, tolerance: float = 1e-6,
                    smoothing: float = 1.0, better_than_random: float = 2.0) -> LabelModelResult:
    """Fit a Dawid-Skene model by EM. Deterministic: no random start, the majority vote seeds it.

    Two Dirichlet priors on the confusion matrices keep EM sensible on small or lopsided
    pools: `smoothing` pseudo-counts in every cell (a function that never fired on a class
    keeps a small, finite probability there), and `better_than_random` extra pseudo-counts
    on "voted the true class", the usual assumption that each rule is better than chance.
    Without it EM can drift on a few dozen items to a solution where one class swallows all.
    """
    n_items, n_functions = votes.shape
    outcomes = n_classes + 1
    observed = _one_hot(votes, n_classes)
    posterior = vote_shares(votes, n_classes)
    prior = np.full(n_classes, 1.0 / n_classes)
    confusion = np.full((n_functions, n_classes, outcomes), 1.0 / outcomes)
    pseudo_counts = np.full((n_classes, outcomes), smoothing)
    pseudo_counts[np.arange(n_classes), np.arange(n_classes) + 1] += better_than_random
    converged = False
    iterations = 0
    while iterations < max_iterations:
        iterations += 1
        # M step: class prior and each function's confusion matrix from the current posterior
        prior = (posterior.sum(axis=0) + smoothing) / (n_items + smoothing * n_classes)
        counts = np.einsum("ik,ijo->jko", posterior, observed) + pseudo_counts
        confusion = counts / counts.sum(axis=2, keepdims=True)
        updated = _posterior(observed, confusion, prior)
        change = float(np.abs(updated - posterior).max())
        posterior = updated
        if change < tolerance:
            converged = True
            break
    labels, probabilities = _decide(votes, posterior)
    return LabelModelResult(labels=labels, probabilities=probabilities, class_prior=prior,
                            function_accuracy=_accuracies(confusion, prior),
                            function_coverage=1.0 - (confusion[:, :, 0] * prior[None, :]).sum(axis=1),
                            confusion=confusion,
                            iterations=iterations, converged=converged)


def fitted_from(class_prior: np.ndarray, confusion: np.ndarray) -> LabelModelResult:
    """A fitted model rebuilt from its saved parameters (enough to `predict`; no training-set facts)."""
    empty = np.zeros(0, dtype=np.int64)
    return LabelModelResult(labels=empty, probabilities=np.zeros((0, class_prior.shape[0])), class_prior=class_prior,
                            function_accuracy=_accuracies(confusion, class_prior),
                            function_coverage=1.0 - (confusion[:, :, 0] * class_prior[None, :]).sum(axis=1),
                            confusion=confusion, iterations=0, converged=True)


def predict(model: LabelModelResult, votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and posteriors of new items (e.g. the gold set) under a fitted model."""
    n_classes = model.class_prior.shape[0]
    return _decide(votes, _posterior(_one_hot(votes, n_classes), model.confusion, model.class_prior))


def posterior(model: LabelModelResult, votes: np.ndarray) -> np.ndarray:
    """Class posteriors of items given all their votes, abstentions included, unrestricted by `_decide`.

    Where every rule abstains this is what the rules' silence says: the rules of a class that fire on
    most of its items make silence evidence for the other classes."""
    n_classes = model.class_prior.shape[0]
    return _posterior(_one_hot(votes, n_classes), model.confusion, model.class_prior)


def _decide(votes: np.ndarray, posterior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels from posteriors, choosing only among the classes some rule voted for.

    The model weighs rules that disagree; it does not overrule rules that agree (a lone
    `starch_base` vote stays not_keto even if abstentions look keto-like), which keeps each
    label explainable by the rationales that fired. Uncovered items stay UNLABELED.
    """
    n_items, n_classes = posterior.shape
    voted = np.zeros((n_items, n_classes), dtype=bool)
    rows, columns = np.nonzero(votes != ABSTAIN)
    voted[rows, votes[rows, columns]] = True
    restricted = np.where(voted, posterior, 0.0)
    totals = restricted.sum(axis=1, keepdims=True)
    covered = np.asarray(voted.any(axis=1), dtype=bool)
    probabilities = np.where(covered[:, None], restricted / np.where(totals > 0, totals, 1.0), 1.0 / n_classes)
    labels = np.where(covered, probabilities.argmax(axis=1), UNLABELED).astype(np.int64)
    return labels, probabilities


def _one_hot(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """(items, functions, 1 + classes) indicator of each function's outcome; column 0 is abstain."""
    n_items, n_functions = votes.shape
    observed = np.zeros((n_items, n_functions, n_classes + 1))
    observed[np.arange(n_items)[:, None], np.arange(n_functions)[None, :], votes + 1] = 1.0
    return observed


def _posterior(observed: np.ndarray, confusion: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """E step: each item's class posterior given all its votes (in logs: many small factors multiply)."""
    log_likelihood = np.einsum("ijo,jko->ik", observed, np.log(confusion)) + np.log(prior)
    log_likelihood -= log_likelihood.max(axis=1, keepdims=True)
    posterior = np.exp(log_likelihood)
    return posterior / posterior.sum(axis=1, keepdims=True)


def _accuracies(confusion: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """P(vote is the true class | the function voted), from the fitted confusion matrices."""
    joint = confusion[:, :, 1:] * prior[None, :, None]  # (functions, true, voted)
    voted = joint.sum(axis=(1, 2))
    correct = np.trace(joint, axis1=1, axis2=2)
    return np.divide(correct, voted, out=np.zeros_like(correct), where=voted > 0)


def label_names(labels: Sequence[int] | np.ndarray, classes: Sequence[str]) -> list[str | None]:
    return [classes[int(label)] if label != UNLABELED else None for label in labels]


__all__ = ["LabelModelResult", "UNLABELED", "fit_dawid_skene", "fitted_from", "label_names", "majority_vote",
           "posterior", "predict", "vote_shares"]
