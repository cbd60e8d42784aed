"""Label quality (R2.5): agreement, adjudication, revision history, likely mislabels.

annotations   the annotation table (items × annotators) and its vote counts
agreement     cohen_kappa, pairwise_cohen, fleiss_kappa,
              krippendorff_alpha_nominal, disagreement_rates, summarize_agreement
adjudication  majority_vote (ties listed, broken only by an explicit policy)
revisions     revise_labels → a new dataset version; label_history reads them back
mislabels     find_label_issues: confident learning on out-of-fold probabilities
"""

from __future__ import annotations

from modelyard.data.labels.adjudication import MajorityVote, majority_vote
from modelyard.data.labels.agreement import (
    AgreementSummary,
    cohen_kappa,
    disagreement_rates,
    fleiss_kappa,
    krippendorff_alpha_nominal,
    pairwise_cohen,
    summarize_agreement,
)
from modelyard.data.labels.mislabels import (
    confident_joint,
    find_label_issues,
    label_issues_from_probabilities,
)
from modelyard.data.labels.revisions import (
    LabelChange,
    LabelRevision,
    label_history,
    revise_labels,
)

__all__ = [
    "AgreementSummary",
    "LabelChange",
    "LabelRevision",
    "MajorityVote",
    "cohen_kappa",
    "confident_joint",
    "disagreement_rates",
    "find_label_issues",
    "fleiss_kappa",
    "krippendorff_alpha_nominal",
    "label_history",
    "label_issues_from_probabilities",
    "majority_vote",
    "pairwise_cohen",
    "revise_labels",
    "summarize_agreement",
]
