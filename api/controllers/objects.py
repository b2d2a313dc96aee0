"""Objects (issues 16 and 17): streamed uploads and downloads, and the uploader's record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, get, post, put
from litestar.enums import ParamType
from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.openapi.spec import Parameter as OpenAPIParameter
from litestar.params import Parameter, QueryParameter
from litestar.response import Stream

from adapters.ledger_api.routes import COMMAND_ROUTES
from adapters.ledger_api.wire import OBJECT_DIGEST_PATTERN, CommandAccepted, ObjectView
from api.commands import run_command
from api.controllers.common import COMMAND_ERRORS, JOB_ID_PATTERN, SignedEnvelope, to_accepted
from api.errors import problem_responses
from api.objects import ENCRYPTED_HEADER, open_download, store_upload
from api.state import Deps
from domain.completions import COMPLETION_ID_PATTERN
from proofs.request_auth import ACTOR_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER

PATH = "/v1/objects"
STORED_ROUTE = COMMAND_ROUTES["object.record_stored"]
OCTET_STREAM = "application/octet-stream"
UPLOAD_ERRORS = problem_responses(401, 413, 422, 429, 503)
DOWNLOAD_ERRORS = problem_responses(401, 403, 404, 422, 503)

JobQuery = Annotated[
    str | None,
    QueryParameter(
        name="job",
        pattern=JOB_ID_PATTERN,
        required=False,
        description="a job whose input or result this object is: its consumer, node and "
        "drawn validators may read it in plaintext",
    ),
]

CompletionQuery = Annotated[
    str | None,
    QueryParameter(
        name="completion",
        pattern=COMPLETION_ID_PATTERN,
        required=False,
        description="a completion whose bundle this object is: its consumer, node and the "
        "validators drawn for its check may read it",
    ),
]


@dataclass
class _SignedOperation(Operation):
    """Documents the signed-request headers (``proofs.request_auth``), which the handlers
    read from the request rather than as parameters (a ciphertext read needs none)."""

    def __post_init__(self) -> None:
        self.parameters = [*(self.parameters or []), *_signature_parameters()]


@dataclass
class _UploadOperation(_SignedOperation):
    """Also documents the raw body, streamed from the request (not a parsed parameter)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.request_body = RequestBody(
            content={
                OCTET_STREAM: OpenAPIMediaType(
                    schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
                )
            },
            description="the object's bytes, as stored (sealed already when private)",
            required=True,
        )
        self.parameters = [
            *(self.parameters or []),
            OpenAPIParameter(
                name=ENCRYPTED_HEADER,
                param_in=ParamType.HEADER,
                required=False,
                description="1: the bytes are ciphertext (readable by anyone who names them)",
                schema=Schema(type=OpenAPIType.STRING, enum=["0", "1"]),
            ),
        ]


class ObjectController(Controller):
    """``/v1/objects``: streamed objects by SHA-256, and object-stored records."""

    path = PATH
    tags = ("objects",)

    @put(
        "/",
        operation_id="putObject",
        status_code=201,
        request_max_body_size=None,  # the policy's object_upload_bytes_max, checked as it streams
        responses=UPLOAD_ERRORS,
        operation_class=_UploadOperation,
    )
    async def put_object(self, deps: Deps, request: Request[Any, Any, Any]) -> ObjectView:
        """Store the request body, streamed, under its SHA-256 (a signed request); the
        uploader then records it with ``object.record_stored``."""
        info = await store_upload(deps, request)
        return ObjectView(digest=info.digest, size_bytes=info.size_bytes, encrypted=info.encrypted)

    @get(
        "/{digest:str}",
        operation_id="getObject",
        media_type=OCTET_STREAM,
        responses=DOWNLOAD_ERRORS,
        operation_class=_SignedOperation,
    )
    async def get_object(
        self,
        deps: Deps,
        request: Request[Any, Any, Any],
        digest: Annotated[
            str,
            Parameter(
                description="hex SHA-256 of the object",
                # Documented, checked by the handler (422 object_digest_invalid).
                schema_extra={"pattern": OBJECT_DIGEST_PATTERN},
            ),
        ],
        job: JobQuery = None,
        completion: CompletionQuery = None,
    ) -> Stream:
        """The object's bytes, streamed: a ciphertext object to anyone, a plaintext one to
        its uploaders and the parties of the job named by ``?job=`` or of the completion
        named by ``?completion=`` (a signed request)."""
        info, chunks = await open_download(deps, request, digest, job, completion)
        headers = {
            "content-length": str(info.size_bytes),
            "etag": f'"{info.digest}"',
            ENCRYPTED_HEADER: "1" if info.encrypted else "0",
        }
        return Stream(chunks, media_type=OCTET_STREAM, headers=headers)

    @post(
        STORED_ROUTE.compute_handler_path(PATH),
        operation_id="recordObjectStored",
        status_code=200,
        responses=COMMAND_ERRORS,
    )
    async def record_stored(
        self, deps: Deps, request: Request[Any, Any, Any], data: SignedEnvelope
    ) -> CommandAccepted:
        """Record an object stored by its signer (``object.record_stored``)."""
        return to_accepted(await run_command(deps, request, data, STORED_ROUTE))


def _signature_parameters() -> list[OpenAPIParameter]:
    described = {
        ACTOR_HEADER: "the signer's base58 Ed25519 id",
        TIMESTAMP_HEADER: "when it signed, in nanoseconds since the epoch (within 300 s)",
        SIGNATURE_HEADER: "hex Ed25519 signature over the network, method, path and timestamp",
    }
    return [
        OpenAPIParameter(
            name=name,
            param_in=ParamType.HEADER,
            required=False,
            description=description,
            schema=Schema(type=OpenAPIType.STRING),
        )
        for name, description in described.items()
    ]
