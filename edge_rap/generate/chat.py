"""The model's own chat template (the GGUF's `tokenizer.chat_template`, Jinja), with fallbacks for models without
one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from edge_rap.errors import EdgeRapError

#: Breaks a control token's text without showing (U+2060): the characters stay, the token does not.
WORD_JOINER = "\u2060"

#: Gemma 3's chat template: used for Gemma-family GGUFs that carry none (the base gemma-3-270m on PyPI), and
#: written into the tiny test model by tools/make_tiny_models.py.
GEMMA3_TEMPLATE = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\\n'}}
{%- endif -%}
"""

#: For a model with no template whose family we do not know: plain turns a base model can continue.
PLAIN_TEMPLATE = """{{ bos_token }}
{%- for message in messages -%}
{%- if message['role'] == 'system' -%}{{ message['content'] + '\\n\\n' }}
{%- elif message['role'] == 'user' -%}{{ 'User: ' + message['content'] + '\\n' }}
{%- else -%}{{ 'Assistant: ' + message['content'] + '\\n' }}{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}
"""

FALLBACK_BY_ARCH = {"gemma3": GEMMA3_TEMPLATE, "gemma2": GEMMA3_TEMPLATE, "gemma": GEMMA3_TEMPLATE}


def _spells_none(text: str) -> frozenset[str]:
    return frozenset()


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template, where it came from, the model's BOS/EOS text, and which control tokens
    (`<end_of_turn>`, `<|im_end|>`, `<bos>` ...) a text spells: user text must not, or it would end the turn
    or fake a role when the prompt is tokenized with its special tokens parsed."""

    source: str  # "gguf" or "fallback:<name>"
    text: str
    bos_token: str = ""
    eos_token: str = ""
    controls_in: Callable[[str], frozenset[str]] = field(default=_spells_none, compare=False, repr=False)

    @classmethod
    def for_model(cls, metadata: dict, bos_token: str = "", eos_token: str = "",
                  controls_in: Callable[[str], frozenset[str]] = _spells_none) -> "ChatTemplate":
        text = metadata.get("tokenizer.chat_template")
        if isinstance(text, str) and text.strip():
            source = "gguf"
        else:
            arch = str(metadata.get("general.architecture", ""))
            source = f"fallback:{arch}" if arch in FALLBACK_BY_ARCH else "fallback:plain"
            text = FALLBACK_BY_ARCH.get(arch, PLAIN_TEMPLATE)
        return cls(source, text, bos_token, eos_token, controls_in)

    def plain(self, text: str) -> str:
        """User text as the model should read it: every control token it spells broken by a word joiner
        (U+2060, invisible), so that it is tokenized as the characters it shows."""
        for control in sorted(self.controls_in(text), key=len, reverse=True):
            if len(control) > 1:
                text = text.replace(control, control[0] + WORD_JOINER + control[1:])
        return text

    def render(self, system: str, user: str, must_contain: tuple[str, ...] = ()) -> str:
        """One system + user turn with the generation prompt. The user text may hold media markers: it is
        passed as a string, else (templates that only iterate content parts) as one text part; a system
        role the template refuses is folded into the user turn. Raises EdgeRapError (one line) if the template
        does not compile, or no form renders with every string of `must_contain` intact."""
        compiled = self._compiled()
        attempts = []
        for content in (user, [{"type": "text", "text": user}]):
            for with_system in (True, False):
                if with_system and system:
                    messages = [{"role": "system", "content": system}, {"role": "user", "content": content}]
                else:
                    merged = (system + "\n\n" + user) if system else user
                    if isinstance(content, list):
                        merged = [{"type": "text", "text": merged}]
                    messages = [{"role": "user", "content": merged}]
                try:
                    text = compiled.render(
                        messages=messages, add_generation_prompt=True, bos_token=self.bos_token,
                        eos_token=self.eos_token, raise_exception=_raise, strftime_now=_strftime_now,
                    )
                except Exception as e:  # the model file's template can fail in any way: try the next form
                    attempts.append(_one_line(e))
                    continue
                if all(text.count(s) >= user.count(s) for s in must_contain):
                    return text
                attempts.append("template dropped part of the prompt")
        raise EdgeRapError(f"the chat template ({self.source}) cannot render the prompt: {attempts[-1]}")

    def _compiled(self):
        cached = getattr(self, "_jinja", None)
        if cached is None:
            import jinja2.ext
            from jinja2.exceptions import TemplateError
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=[jinja2.ext.loopcontrols])
            env.filters.setdefault("tojson", _tojson)
            try:
                cached = env.from_string(self.text)
            except (TemplateError, RecursionError) as e:
                raise EdgeRapError(f"the chat template ({self.source}) does not compile: {_one_line(e)}") from None
            object.__setattr__(self, "_jinja", cached)
        return cached


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())[:160]
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _raise(message: str):
    raise ValueError(message)


def _strftime_now(fmt: str) -> str:
    import datetime

    return datetime.datetime.now().strftime(fmt)


def _tojson(value, indent=None, **_):
    import json

    return json.dumps(value, indent=indent, ensure_ascii=False)
