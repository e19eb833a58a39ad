"""Turning a task prompt into model input text: the tokenizer's chat template, or a plain format string."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from reasonrl.errors import UserError


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str | list[dict], template: str = "") -> str:
    """Model input for `prompt`: `template.format(prompt=...)` if given, else the chat template with a
    generation prompt, else the prompt itself (a base model without a chat template).

    A list is chat messages (`tasks.chat.split_chat`): they always go through the tokenizer's chat template, so a
    `data.prompt_template` or a tokenizer without a chat template is an error."""
    if isinstance(prompt, list):
        if template:
            raise UserError(f"data.prompt_template {template!r} formats text prompts, but the data has chat "
                            "messages (the tokenizer's chat template formats them): set data.prompt_template = \"\"")
        if not tokenizer.chat_template:
            raise UserError("data: chat messages need a tokenizer with a chat template, and this one has none "
                            "(model.tokenizer_path)")
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    if template:
        if "{prompt}" not in template:
            raise UserError(f"data.prompt_template: {template!r} must contain {{prompt}}")
        return template.replace("{prompt}", prompt)
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return prompt


def record_prompt(tokenizer: PreTrainedTokenizerBase, record: dict, template: str = "") -> str:
    """Model input for a task record: its chat messages (`prompt_messages`, from chat-format data) when it has
    them, else its text `prompt`, through `format_prompt`."""
    return format_prompt(tokenizer, record.get("prompt_messages") or record["prompt"], template)
