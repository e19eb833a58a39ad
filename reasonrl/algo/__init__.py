"""Pure tensor math for RL post-training; imports torch only.

advantages: gae, decoupled_gae, length_adaptive_lambda, group_advantages, masked_moments, whiten
losses:     aggregate, policy_loss, value_loss, explained_variance, positive_nll
rewards:    outcome_reward, overlong_penalty, token_level_rewards
filters:    dynamic_sampling_group_mask, dynamic_sampling_mask
kl:         kl_k1, kl_k2, kl_k3, token_logprobs_from_logits, entropy_from_logits

Shapes: `B` sequences, `T` tokens, `G` group size, `V` vocabulary. `mask` is bool `(B, T)`, True = a sampled
response token that is trained on (prompt, padding and tool-output tokens are False).
"""
