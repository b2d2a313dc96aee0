"""The models a validator checks completions of (``flopledger validator --check-model ID``).

Each is loaded once at start-up through the catalog (``adapters.compute.llm_catalog``) and
kept only if it is the registered one: its content digest equals the registration's and it
loads in the registered dtype (the dtype the TOPLOC thresholds were calibrated for). A model
that is not registered, not in the catalog, not installed here or not the registered bytes
stops the validator at start-up: an operator who asked to check it must know it cannot.
A validator drawn for a completion of a model it does not hold abstains
(``validator.completion_check.MODEL_NOT_HELD``), it never fails the node.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from adapters.compute.llm_catalog import ModelDigestMismatch, UnknownModel, load_registered_model
from adapters.compute.llm_model import LoadedModel, ModelUnavailable
from domain.errors import OperatingError
from domain.models import MODEL_ID_CHARS_MAX, MODEL_ID_PATTERN
from validator.completion_check import compute_dtype_name

CHECK_MODELS_MAX = 16
"""Models one validator loads at most (each holds its weights in memory)."""


class CheckModelRefused(OperatingError):
    """A ``--check-model`` this validator cannot check (the message says why)."""

    code = "check_model_refused"


@dataclass(frozen=True)
class Registration:
    """What the ledger registered of a model: its content digest and dtype."""

    content_digest: bytes
    dtype: str


def load_check_models(
    model_ids: Iterable[str],
    get_registration: Callable[[str], Registration | None],
    load: Callable[[str, bytes], LoadedModel] = load_registered_model,
) -> dict[str, LoadedModel]:
    """Load every model in ``model_ids`` (duplicates once) or raise ``CheckModelRefused``."""
    wanted = list(dict.fromkeys(model_ids))
    if len(wanted) > CHECK_MODELS_MAX:
        raise CheckModelRefused(f"at most {CHECK_MODELS_MAX} models, {len(wanted)} asked")
    loaded: dict[str, LoadedModel] = {}
    for model_id in wanted:
        if len(model_id) > MODEL_ID_CHARS_MAX or not re.match(MODEL_ID_PATTERN, model_id):
            raise CheckModelRefused(f"{model_id!r} is not a model id")
        registration = get_registration(model_id)
        if registration is None:
            raise CheckModelRefused(f"{model_id}: no such registered model")
        try:
            model = load(model_id, registration.content_digest)
        except (UnknownModel, ModelUnavailable, ModelDigestMismatch) as error:
            raise CheckModelRefused(f"{model_id}: {error}") from error
        if compute_dtype_name(model) != registration.dtype:
            raise CheckModelRefused(
                f"{model_id}: registered in {registration.dtype}, "
                f"loads in {compute_dtype_name(model)}"
            )
        loaded[model_id] = model
    return loaded
