"""Turning a task prompt into model input text: the tokenizer's chat template, or a plain format string."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from reasonrl.errors import UserError


def format_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str, template: str = "") -> str:
    """Model input for `prompt`: `template.format(prompt=...)` if given, else the chat template with a
    generation prompt, else the prompt itself (a base model without a chat template)."""
    if template:
        if "{prompt}" not in template:
            raise UserError(f"data.prompt_template: {template!r} must contain {{prompt}}")
        return template.replace("{prompt}", prompt)
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
    return prompt
