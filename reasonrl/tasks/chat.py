"""Chat-format records: a list of `{"role", "content"}` messages (TRL's conversational datasets, verl's `prompt`
column) split into the prompt the policy continues and, when the list ends with an assistant turn, its response."""

from __future__ import annotations

from reasonrl.errors import UserError

ChatMessages = list[dict]


def is_chat(value: object) -> bool:
    """True for a list (a chat-message list, checked by `split_chat`); text prompts are strings or numbers."""
    return isinstance(value, list)


def split_chat(messages: object, where: str) -> tuple[ChatMessages, str, str | None]:
    """`(prompt messages, prompt text, response)` of a chat-message list.

    A final assistant turn is the response (the SFT target, as in TRL's conversational format) and is not part of
    the prompt messages, which the tokenizer's chat template renders with a generation prompt. The prompt text is
    the content of the last user turn: what reads a prompt as text (judges, `rl.critic_context_template`).
    Every message must be an object with a string `role` and a string `content` (no multimodal parts).
    """
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: chat messages must be a non-empty list of {{role, content}} objects")
    for i, m in enumerate(messages):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
            raise UserError(f"{where}: chat message {i} must be an object with a string 'role' and a string "
                            f"'content', got {m!r:.80}")
    response = None
    if messages[-1]["role"] == "assistant":
        response, messages = messages[-1]["content"], messages[:-1]
    users = [m["content"] for m in messages if m["role"] == "user"]
    if not users:
        raise UserError(f"{where}: chat messages have no user turn before the response")
    if not users[-1].strip():
        raise UserError(f"{where}: the last user message is empty")
    return list(messages), users[-1], response
