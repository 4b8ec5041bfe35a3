"""The MediX-R1 reference's judge step, written apart from the service's code: the oracle that parity checks
compare the service's requests and verdicts with (tests/judge/test_reference_judge.py, `medix-reward integrity
--parity`).

What it reproduces (training/examples/reward_function/medical.py of github.com/mbzuai-oryx/MediX-R1): the
response loses every whitespace run around '<', '>' and '/'; the answer is the first <answer> block's content
(else the whole text), stripped, then stripped of dots; the truth is what follows the ground truth's first '>',
likewise. An answer that is empty, one character, or holds '__', ':' or '?' scores 0 and one equal to the truth
scores 1, with no judge. Otherwise the judge gets one chat-completions request (`reference_request`) and its
reply counts YES iff it contains YES, upper-cased. The service renders the same prompt from its own constant
(judge.REFERENCE_PROMPT): this module spells it line by line, so a difference in either shows.
"""

from __future__ import annotations

import re

_INSTRUCTIONS = (
    "You are a helpful assistant.",
    'Given a predicted answer and the ground truth answer, respond with exactly "YES" if the content matches, '
    'otherwise respond with "NO".',
    'Start your response with "YES" or "NO" in uppercase.',
    "",
)


def reference_prompt(predict: str, ground_truth: str) -> str:
    return "\n".join([*_INSTRUCTIONS, f"Predicted:{predict}", f"Ground Truth:{ground_truth}", ""])


def reference_request(model: str, predict: str, ground_truth: str) -> dict[str, object]:
    """The reference's request body, its keys in its order."""
    return {
        "model": model,
        "messages": [{"role": "user", "content": reference_prompt(predict, ground_truth)}],
        "max_tokens": 4,
        "temperature": 0.0,
        "chat_template_kwargs": {"enable_thinking": False},
        "top_p": 1.0,
    }


def reference_yes(reply: str) -> bool:
    return "YES" in reply.strip().upper()


def reference_pair(response: str, ground_truth: str) -> tuple[str, str] | None:
    """(answer, truth) as the reference shows them to its judge, or None when it scores without a judge.
    The reference's own regexes (quadratic on pathological text: for corpora, not for serving)."""
    text = re.sub(r"\s*(<|>|/)\s*", r"\1", response)
    block = re.search(r"<answer>(.*?)</answer>", text, re.DOTALL)
    answer = (block.group(1) if block else text).strip().strip(".")
    truth = ground_truth.split(">", maxsplit=1)[1].strip().strip(".")
    if len(answer) <= 1 or any(symbol in answer for symbol in ("__", ":", "?")) or answer == truth:
        return None
    return answer, truth
