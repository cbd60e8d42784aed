"""Adjudication: one label per item from several annotators, by majority vote.

A tie is never broken silently. Without a ``tie_break`` policy a tied item
gets a missing label; with one, the chosen label is filled in, and the tie is
listed either way so a reviewer can see what was decided and how:

- ``"first"``: the tied label given by the left-most annotator column;
- ``"random(SEED)"``: a tied label drawn at random, reproducibly from SEED;
- an annotator's column name: that annotator is the authority — their label
  wins if it is one of the tied labels (otherwise the tie stays open).

Items nobody labelled get a missing label and are not ties. The labels keep
their type (``1`` stays ``1`` even when some are missing, in an object column).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from modelyard.data.labels.annotations import Votes, check_table, count_votes
from modelyard.errors import InvalidInputError

_RANDOM = re.compile(r"random\((\d+)\)")


class MajorityVote(NamedTuple):
    """The adjudicated ``labels`` (one per item) and the ``ties`` found on the way.

    ``ties`` has one row per tied item: ``item``, ``labels`` (the tied labels,
    a tuple), ``votes`` (how many votes each of them got) and ``chosen`` (the
    label the tie-break policy picked, or ``None``).
    """

    labels: pd.Series
    ties: pd.DataFrame


def majority_vote(
    table: pd.DataFrame, *, tie_break: str | None = None, columns: list[str] | None = None
) -> MajorityVote:
    """The most frequent label per item; ties listed, and left missing unless ``tie_break``."""
    table = check_table(table, columns)
    policy = _policy(tie_break, table)
    votes = count_votes(table)
    top = votes.counts.max(axis=1)
    winners = votes.counts == top[:, None]
    chosen: list[Any] = [None] * len(table)
    ties: list[dict[str, Any]] = []
    rng = np.random.default_rng(policy[1] if policy[0] == "random" else 0)
    for i in range(len(table)):
        if top[i] == 0:
            continue
        candidates = np.nonzero(winners[i])[0]
        if len(candidates) == 1:
            chosen[i] = votes.labels[candidates[0]]
            continue
        pick = _break(policy, votes, i, candidates, rng)
        chosen[i] = None if pick is None else votes.labels[pick]
        ties.append(
            {
                "item": votes.items[i],
                "labels": tuple(votes.labels[k] for k in candidates),
                "votes": int(top[i]),
                "chosen": chosen[i],
            }
        )
    labels = pd.Series(chosen, index=table.index, dtype=object, name="label")
    if labels.notna().all():
        labels = labels.infer_objects()
    frame = pd.DataFrame(ties, columns=["item", "labels", "votes", "chosen"])
    return MajorityVote(labels, frame)


def _policy(tie_break: str | None, table: pd.DataFrame) -> tuple[str, Any]:
    if tie_break is None:
        return ("none", None)
    if tie_break == "first":
        return ("first", None)
    match = _RANDOM.fullmatch(tie_break.replace(" ", ""))
    if match:
        return ("random", int(match.group(1)))
    if tie_break in table.columns:
        return ("authority", list(table.columns).index(tie_break))
    raise InvalidInputError(
        f"Unknown tie-break policy {tie_break!r}. Use 'first', 'random(SEED)' (e.g. "
        f"'random(42)'), or the name of an annotator column: {list(table.columns)}."
    )


def _break(
    policy: tuple[str, Any],
    votes: Votes,
    item: int,
    candidates: np.ndarray,
    rng: np.random.Generator,
) -> int | None:
    kind, value = policy
    own = votes.codes[item]
    if kind == "first":
        return next(int(code) for code in own if code in candidates)
    if kind == "random":
        return int(rng.choice(candidates))
    if kind == "authority" and own[value] in candidates:
        return int(own[value])
    return None
