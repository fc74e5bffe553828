"""POST /v1/search: ranked pages over the collection's channels, fused, with optional
per-patch similarity maps."""

from __future__ import annotations

from fastapi import APIRouter

from colretrieve.channels import VISUAL
from colretrieve.contracts import SearchHit
from colretrieve.errors import InvalidInputError, LimitExceededError
from colretrieve.explain import similarity_map
from server.deps import PrincipalDep, StateDep
from server.errors import ERROR_RESPONSES
from server.links import page_image_url, search_filter
from server.state import Collection, ServerState
from server.wire import Explanation, Hit, Match, SearchRequest, SearchResponse, Timings

router = APIRouter(responses=ERROR_RESPONSES)

EXPLAIN_MAX_HITS = 10


def check_query(state: ServerState, query: str) -> None:
    limit = state.settings.max_query_chars
    if len(query) > limit:
        raise LimitExceededError("query length (characters)", limit, len(query))


def explain(collection: Collection, query: str, hits: list[SearchHit]) -> list[Explanation | None]:
    """Similarity maps of the visual query over each hit's page patches (None for a page
    that the visual channel does not hold)."""
    embedder = collection.embedder
    assert embedder is not None
    vectors = embedder.embed_queries([query])[0]
    store = collection.index.store
    explanations: list[Explanation | None] = []
    for hit in hits:
        info = store.get_page(hit.doc_id, hit.page)
        if info is None:
            explanations.append(None)
            continue
        smap = similarity_map(
            embedder.processor,
            vectors,
            store.page_vectors(hit.doc_id, hit.page),
            (info.width, info.height),
        )
        explanations.append(
            Explanation(
                grid=list(smap.grid) if smap.grid else None,
                maps=[[round(float(v), 4) for v in row] for row in smap.maps],
            )
        )
    return explanations


@router.post("/v1/search", response_model=SearchResponse, tags=["search"])
def search(body: SearchRequest, state: StateDep, principal: PrincipalDep) -> SearchResponse:
    """Top-k pages: each channel ranks by its own score (MaxSim for visual and text, BM25),
    the rankings are fused; each hit links to its image and says which channels found it."""
    collection = state.collection(body.collection, principal)
    check_query(state, body.query)
    if body.k > state.settings.max_k:
        raise LimitExceededError("k", state.settings.max_k, body.k)
    if body.explain and body.k > EXPLAIN_MAX_HITS:
        raise LimitExceededError("k with explain=true", EXPLAIN_MAX_HITS, body.k)
    channels = collection.search_channels(body.channels)
    if not channels:  # an empty collection: nothing to search yet
        return SearchResponse(collection=collection.name, hits=[], timings=Timings())
    if body.explain and VISUAL not in channels:
        raise InvalidInputError(
            "explain=true maps the query over page patches, which needs the visual channel; "
            f"this search uses {', '.join(channels)}"
        )
    index = collection.search_index(body.fusion, body.weights)
    result = index.search_timed(
        body.query, body.k, filter=search_filter(body.filters), channels=channels
    )
    state.metrics.observe_stages(result.timings_ms)
    explanations = (
        explain(collection, body.query, result.hits) if body.explain else [None] * len(result.hits)
    )
    hits = [
        Hit(
            rank=rank,
            doc_id=hit.doc_id,
            page=hit.page,
            score=hit.score,
            title=hit.title,
            path=hit.path,
            image_url=page_image_url(collection.name, hit.doc_id, hit.page),
            explanation=explanation,
            matches=[Match(channel=m.channel, rank=m.rank, score=m.score) for m in hit.matches],
        )
        for rank, (hit, explanation) in enumerate(
            zip(result.hits, explanations, strict=True), start=1
        )
    ]
    return SearchResponse(
        collection=collection.name,
        channels=list(channels),
        fusion=index.fusion.method if len(channels) > 1 else None,
        hits=hits,
        timings=Timings.of(result.timings_ms),
    )
