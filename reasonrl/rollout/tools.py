"""Tool calls inside a sample: `<tag>input</tag>` written by the model, answered by a Python function.

When a sampled token completes `</tag>` for a tag in the `tools` mapping, the sampler takes the text between the
last `<tag>` and that `</tag>`, calls `tools[tag](text)`, formats the output with the result template (default
`<result>{}</result>`) and forces those tokens into the sample with mask False, then sampling goes on. Tool code
is the caller's; model output is only ever passed to it as a string.

`calculator` is a ready-made `math_exp` tool: arithmetic only, parsed with `ast`, never evaluated as Python.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from fractions import Fraction

ToolFn = Callable[[str], str]


def closing_tags(tools: Mapping[str, ToolFn]) -> list[str]:
    return [f"</{tag}>" for tag in tools]


def call_input(text: str, tag: str) -> str | None:
    """The text between the last `<tag>` and the last `</tag>` of `text`; None when no `<tag>` opens it."""
    close = text.rfind(f"</{tag}>")
    open_ = text.rfind(f"<{tag}>", 0, close)
    if close < 0 or open_ < 0:
        return None
    return text[open_ + len(tag) + 2 : close]


def run_tool(tools: Mapping[str, ToolFn], closing_tag: str, text: str, template: str) -> str | None:
    """The formatted result of the call that `closing_tag` ends in `text`, or None if it has no opening tag."""
    tag = closing_tag[2:-1]
    arg = call_input(text, tag)
    if arg is None:
        return None
    return template.format(tools[tag](arg))


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_MAX_ABS = 10**12


def _value(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        out = Fraction(node.value)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Div) and right == 0:
            raise ValueError("division by zero")
        out = _BINARY[type(node.op)](left, right)
    elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        out = _UNARY[type(node.op)](_value(node.operand))
    else:
        raise ValueError("only numbers, + - * / and parentheses are allowed")
    if abs(out) > _MAX_ABS:
        raise ValueError("number too large")
    return out


def calculator(expression: str) -> str:
    """Exact arithmetic on `+ - * /` and parentheses: `"12*3 - 4/8"` -> `"35.5"`; bad input -> `"error: ..."`."""
    if len(expression) > 200:
        return "error: expression too long"
    try:
        value = _value(ast.parse(expression.strip(), mode="eval").body)
    except (SyntaxError, ValueError, OverflowError, RecursionError) as e:
        return f"error: {str(e) or type(e).__name__}"
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.10g}"
