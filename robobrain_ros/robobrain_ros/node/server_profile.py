"""What the node learned about a model server at configure (and again whenever the server comes back).

Negotiation asks the server what it is (`GET /version`, `/v1/models`), chooses how answer constraints are sent
(vLLM's `structured_outputs`, the older `guided_regex`, or none), proves with one tiny request that the server
really enforces the chosen field (older vLLM accepts unknown fields and ignores them), learns whether the
server resizes images itself, and optionally checks that the model still sees (a probe image with a known
answer). The node reports the result on /diagnostics and the query pipeline uses it; nothing here is fatal.
"""

from __future__ import annotations

from dataclasses import dataclass

from robobrain_ros.model_client import (
    ChatClient,
    ChatClientError,
    check_constraint,
    check_vision,
    choose_constraint,
    fetch_server_info,
    measure_image_limit,
)
from robobrain_ros.protocol import ConstraintDialect, ImageBudget, ModelSpec, resolve_model

# Text tokens a RoboBrain prompt needs besides the image (system prompt, template, longest task prompt).
PROMPT_TEXT_TOKENS = 320


@dataclass(frozen=True)
class NegotiationSettings:
    """No defaults here: the parameter table (node/parameters.py) is the one source of them."""

    model: str    # server.model; '' = the first model the server lists
    family: str    # model.family
    size: str    # model.size
    check_constraint: bool    # server.self_check: prove the constraint is enforced
    check_vision: bool    # server.vision_check: probe image with a known answer
    budget: ImageBudget


@dataclass(frozen=True)
class ServerProfile:
    base_url: str
    version: str                     # '' when the server does not say (not vLLM)
    model: str
    models: tuple[str, ...]
    max_model_len: int | None
    spec: ModelSpec                  # family and size of `model` under the settings negotiated with
    constraint: ConstraintDialect    # how answer constraints are sent (NONE: answers are unconstrained)
    constraint_note: str             # why that choice, in words (shown on /diagnostics)
    server_max_pixels: int | None    # the server resizes images above this itself; None = not seen
    image_limit_note: str
    vision_note: str                 # 'not checked', 'passed: ...' or 'FAILED: ...'
    vision_ok: bool | None

    def budget(self, wanted: ImageBudget, max_tokens: int) -> ImageBudget:
        """wanted, capped so the server keeps the image as sent and image + prompt + answer fit max_model_len."""
        cap = wanted.max_pixels
        if self.server_max_pixels:
            cap = min(cap, self.server_max_pixels)
        if self.max_model_len:
            tokens = self.max_model_len - max_tokens - PROMPT_TEXT_TOKENS
            cap = min(cap, max(tokens, 1) * wanted.factor * wanted.factor)
        cap = max(cap, wanted.factor * wanted.factor)
        if cap == wanted.max_pixels:
            return wanted
        return ImageBudget(max_pixels=cap, min_pixels=min(wanted.min_pixels, cap), factor=wanted.factor)


async def negotiate(client: ChatClient, base_url: str, settings: NegotiationSettings) -> ServerProfile:
    """The profile of the server at base_url. Raises ChatClientError when it cannot be reached or read."""
    info = await fetch_server_info(client, base_url)
    names = tuple(m.id for m in info.models)
    model = settings.model or (names[0] if names else '')
    if not model:
        raise ChatClientError(f'{base_url} lists no models at /v1/models')
    max_model_len = next((m.max_model_len for m in info.models if m.id == model), None)
    spec = resolve_model(settings.family, settings.size, model)

    constraint, constraint_note = await _choose_enforced_constraint(client, base_url, model, info, settings)
    server_max_pixels, image_note = None, 'not checked (server.self_check false)'
    if settings.check_constraint and not info.version:
        # Only vLLM's token counts are known to follow the image; elsewhere a per-goal check still guards.
        image_note = 'not measured (not a vLLM server)'
    elif settings.check_constraint:
        try:
            limit = await measure_image_limit(client, base_url, model, budget=settings.budget)
            server_max_pixels, image_note = limit.max_pixels, limit.detail
        except ChatClientError as exc:
            image_note = f'could not be measured: {exc}'
    vision_note, vision_ok = 'not checked (server.vision_check false)', None
    if settings.check_vision:
        try:
            vision = await check_vision(client, base_url, model, spec, settings.budget, constraint=constraint)
            vision_ok = vision.passed
            vision_note = ('passed: ' if vision.passed else 'FAILED: ') + vision.detail
        except ChatClientError as exc:
            vision_ok, vision_note = False, f'FAILED: the probe request failed: {exc}'
    return ServerProfile(base_url=base_url, version=info.version or '', model=model, models=names,
                         max_model_len=max_model_len, spec=spec, constraint=constraint,
                         constraint_note=constraint_note, server_max_pixels=server_max_pixels,
                         image_limit_note=image_note, vision_note=vision_note, vision_ok=vision_ok)


async def _choose_enforced_constraint(client: ChatClient, base_url: str, model: str, info,
                                      settings: NegotiationSettings) -> tuple[ConstraintDialect, str]:
    """The constraint field this server really enforces, proven by a probe request when self-checks are on."""
    chosen = choose_constraint(info)
    if chosen is ConstraintDialect.NONE:
        return chosen, ('not a vLLM server (no /version): answers are unconstrained; a malformed answer '
                        'ends its goal with PARSE_ERROR')
    version = f'vLLM {info.version}'
    if not settings.check_constraint:
        return chosen, f'{chosen.value} ({version}); not verified (server.self_check false)'
    # The server's own generation first, then the other one: a server may report one version and speak another.
    candidates = [chosen] + [d for d in (ConstraintDialect.STRUCTURED_OUTPUTS, ConstraintDialect.GUIDED_REGEX)
                             if d is not chosen]
    ignored = []
    for dialect in candidates:
        try:
            check = await check_constraint(client, base_url, model, dialect)
        except ChatClientError as exc:
            ignored.append(f'{dialect.value} (probe failed: {exc})')
            continue
        if check.enforced:
            note = f'{dialect.value} ({version}), verified by a probe request'
            if ignored:
                note += '; the server ignored ' + ', '.join(ignored)
            return dialect, note
        ignored.append(f'{dialect.value} (answered {check.raw[:60]!r})')
    return ConstraintDialect.NONE, ('the server enforces no constraint field (ignored ' + ', '.join(ignored)
                                    + '): answers are unconstrained')
