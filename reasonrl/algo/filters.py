"""Sample filters: DAPO dynamic sampling.

Shapes: `B` sequences in contiguous groups of `G` samples per prompt (rows `[k*G, (k+1)*G)` = prompt k).
"""

from torch import Tensor


def dynamic_sampling_group_mask(correct: Tensor, group_size: int) -> Tensor:
    """Per-group keep mask of DAPO dynamic sampling: keep prompt k iff `0 < #correct_k < G`.

    DAPO §3.2, the constraint `0 < |{o_i : is_equivalent(a, o_i)}| < G` of Eq. 11: a group that is all
    correct or all wrong has equal rewards, hence zero group advantage and no gradient. (verl filters on
    the group std of a chosen metric instead; with the overlong penalty in the reward that can differ.)

    Args:
        correct: `(B,)` bool, `B` a multiple of `group_size`.

    Returns:
        `(B // G,)` bool, True = keep the group.
    """
    assert correct.dim() == 1 and correct.shape[0] % group_size == 0, (
        f"correct {tuple(correct.shape)} must be (B,) with B a multiple of group_size={group_size}"
    )
    num_correct = correct.reshape(-1, group_size).sum(-1)  # (B/G,)
    return (num_correct > 0) & (num_correct < group_size)  # (B/G,)


def dynamic_sampling_mask(correct: Tensor, group_size: int) -> Tensor:
    """Per-sequence form of `dynamic_sampling_group_mask`: `(B,)` bool, True for every row of a kept group."""
    return dynamic_sampling_group_mask(correct, group_size).repeat_interleave(group_size)  # (B,)


def varied_reward_mask(rewards: Tensor, group_size: int) -> Tensor:
    """`(B,)` bool, True for every row of a group whose rewards are not all equal (verl's std > 0 filter).

    The reward-based reading of dynamic sampling: with overlong shaping in the reward, a group can be
    all-wrong yet still carry a length signal, which DAPO's accuracy rule would throw away.
    """
    assert rewards.dim() == 1 and rewards.shape[0] % group_size == 0, (
        f"rewards {tuple(rewards.shape)} must be (B,) with B a multiple of group_size={group_size}"
    )
    g = rewards.reshape(-1, group_size)  # (B/G, G)
    return (g != g[:, :1]).any(dim=1).repeat_interleave(group_size)  # (B,)
