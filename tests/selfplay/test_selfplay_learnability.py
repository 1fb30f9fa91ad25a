"""Learnability: p(1-p) / (1-p), nothing for unattempted proposals, near-duplicates penalised."""

from __future__ import annotations

import pytest

from swarmrl.selfplay.learnability import (
    learnability,
    max_learnability,
    near_duplicate_fraction,
    proposal_reward,
    similarity,
)


def test_p_one_minus_p_peaks_at_half_and_is_zero_at_the_ends() -> None:
    assert learnability(0.5, 8) == pytest.approx(0.25) == max_learnability("p(1-p)")
    assert learnability(0.0, 8) == learnability(1.0, 8) == 0.0
    assert learnability(0.25, 8) == pytest.approx(0.1875)
    assert learnability(0.25, 8) == pytest.approx(learnability(0.75, 8))


def test_one_minus_p_rewards_hard_but_solved_tasks_only() -> None:
    assert learnability(0.125, 8, "1-p") == pytest.approx(0.875)
    assert learnability(0.0, 8, "1-p") == 0.0  # nobody solved it: maybe unsolvable
    assert learnability(1.0, 8, "1-p") == 0.0
    assert max_learnability("1-p") == 1.0


def test_unattempted_proposals_earn_nothing_yet() -> None:
    assert learnability(0.5, 0) == 0.0
    assert proposal_reward(0.5, 0, duplicate_fraction=0.0) == 0.0


def test_out_of_range_p_is_clamped_and_unknown_kinds_refused() -> None:
    assert learnability(1.7, 4) == 0.0 and learnability(-0.2, 4) == 0.0
    with pytest.raises(ValueError, match="unknown learnability"):
        learnability(0.5, 4, "p")  # type: ignore[arg-type]


def test_similarity_ignores_spacing_and_case_and_separates_different_questions() -> None:
    assert similarity("12 + 7 =", "12  +  7 =") == 1.0
    assert similarity("What is X?", "what is x?") == 1.0
    assert similarity("3 + 4 =", "3 + 5 =") < 0.5
    assert similarity("68 - 32 =", "1234 * 9876 =") < 0.2


def test_diversity_penalty_lowers_the_reward_of_near_duplicates() -> None:
    recent = ["12 + 7 =", "12 + 7 =", "40 - 3 ="]
    dup = near_duplicate_fraction("12 + 7 =", recent, 0.9)
    assert dup == pytest.approx(2 / 3)
    assert near_duplicate_fraction("55 - 21 =", recent, 0.9) == 0.0
    assert near_duplicate_fraction("x", [], 0.9) == 0.0
    fresh = proposal_reward(0.5, 8, 0.0, penalty=0.3)
    copied = proposal_reward(0.5, 8, dup, penalty=0.3)
    assert fresh == pytest.approx(0.25) and copied == pytest.approx(0.25 - 0.2)
