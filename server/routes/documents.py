"""Documents: upload (background ingest jobs), list, delete; jobs; page images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import Response
from PIL import Image

from colretrieve.answer.pages import png_bytes, render_page_image
from colretrieve.errors import LimitExceededError, NotFoundError
from server.deps import PrincipalDep, StateDep
from server.errors import ERROR_RESPONSES
from server.jobs import Job
from server.links import document_out
from server.uploads import UploadTooLargeError, store_uploads
from server.wire import COLLECTION_PATTERN, DeletedOut, DocumentList, FileOutcomeOut, JobOut

router = APIRouter(responses=ERROR_RESPONSES)

CollectionQuery = Annotated[
    str, Query(pattern=COLLECTION_PATTERN, description="Collection; `default` when omitted.")
]
MAX_FILES = 100


def job_out(job: Job) -> JobOut:
    return JobOut(
        id=job.id,
        collection=job.collection,
        status=job.status,  # type: ignore[arg-type]
        pages_total=job.pages_total,
        pages_done=job.pages_done,
        files=[
            FileOutcomeOut(
                file=Path(o.path).name,
                status=o.status.value,
                pages=o.pages,
                reason=o.reason,
                channels=list(o.channels),
            )
            for o in list(job.outcomes)
        ],
        error=job.error,
        url=f"/v1/jobs/{job.id}",
    )


@router.post("/v1/documents", response_model=JobOut, status_code=202, tags=["documents"])
def upload(
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
    files: Annotated[list[UploadFile], File(description="PDFs or page images (PNG/JPEG/TIFF).")],
    collection: Annotated[
        str, Form(pattern=COLLECTION_PATTERN, description="Target collection.")
    ] = "default",
    tags: Annotated[list[str] | None, Form(description="Tags for every document.")] = None,
) -> JobOut:
    """Store the files and start an ingest job; poll `GET /v1/jobs/{id}` for progress."""
    target = state.collection(collection, principal, write=True)
    settings = state.settings
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > settings.max_upload_bytes + 1_000_000:
        raise UploadTooLargeError("upload size (bytes)", settings.max_upload_bytes, int(length))
    if len(files) > MAX_FILES:
        raise LimitExceededError("files per upload", MAX_FILES, len(files))
    if state.jobs.active() >= settings.max_jobs:
        state.jobs.submit(target, [], ())  # raises TooBusyError
    paths = store_uploads(
        [(f.filename or "upload", f.file) for f in files],
        target.uploads,
        settings.max_upload_bytes,
        settings.max_upload_pages,
    )
    job = state.jobs.submit(target, paths, tuple(tags or ()))
    return job_out(job)


@router.get("/v1/jobs/{job_id}", response_model=JobOut, tags=["documents"])
def get_job(
    job_id: Annotated[str, PathParam(max_length=64, description="Job id.")],
    state: StateDep,
    principal: PrincipalDep,
) -> JobOut:
    """An ingest job's state and progress."""
    return job_out(state.jobs.get(job_id, state.readable(principal)))


@router.get("/v1/documents", response_model=DocumentList, tags=["documents"])
def list_documents(
    state: StateDep, principal: PrincipalDep, collection: CollectionQuery = "default"
) -> DocumentList:
    """Every document of a collection."""
    target = state.collection(collection, principal)
    held = target.document_channels()
    return DocumentList(
        collection=target.name,
        documents=[document_out(d, held.get(d.doc_id, ())) for d in target.index.documents()],
    )


@router.delete("/v1/documents/{doc_id}", response_model=DeletedOut, tags=["documents"])
def delete_document(
    doc_id: Annotated[
        str, PathParam(pattern=r"^[0-9a-f]{8,64}$", description="Document id or 8+ char prefix.")
    ],
    state: StateDep,
    principal: PrincipalDep,
    collection: CollectionQuery = "default",
) -> DeletedOut:
    """Delete a document and all its pages from every channel."""
    target = state.collection(collection, principal, write=True)
    documents = target.index.resolve(doc_id)
    held = target.document_channels()
    with target.writer() as index:
        index.delete([d.doc_id for d in documents])
    for document in documents:
        path = Path(document.path)
        if path.parent == target.uploads.resolve() and path.exists():
            path.unlink()
    return DeletedOut(
        collection=target.name,
        deleted=[document_out(d, held.get(d.doc_id, ())) for d in documents],
    )


@router.get(
    "/v1/pages/{doc_id}/{page}/image",
    response_class=Response,
    tags=["documents"],
    responses={200: {"content": {"image/png": {}}, "description": "The page as PNG."}},
)
def page_image(
    doc_id: Annotated[str, PathParam(max_length=64, description="Document id.")],
    page: Annotated[int, PathParam(ge=1, le=100_000, description="1-based page number.")],
    state: StateDep,
    principal: PrincipalDep,
    collection: CollectionQuery = "default",
    width: Annotated[
        int | None, Query(ge=16, le=8192, description="Width in pixels (capped).")
    ] = None,
) -> Response:
    """The page rendered from its source file, at `width` pixels wide (a thumbnail); any
    channel holding the document complete serves it."""
    target = state.collection(collection, principal)
    document = target.find_document(doc_id)
    if document is None or not document.complete or page > document.total_pages:
        raise NotFoundError("page", f"{doc_id}/{page}")
    settings = state.settings
    width = min(width or 1024, settings.max_image_width)
    # Render within a budget that holds this width for any sane aspect ratio, then resize.
    image = render_page_image(document.path, page, settings.dpi, min(width * width * 3, 40_000_000))
    if image.width != width:
        height = max(1, round(image.height * width / image.width))
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return Response(png_bytes(image), media_type="image/png")
