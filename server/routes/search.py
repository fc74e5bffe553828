"""POST /v1/search: ranked pages, with optional per-patch similarity maps."""

from __future__ import annotations

import time

from fastapi import APIRouter

from colretrieve.errors import LimitExceededError
from colretrieve.explain import similarity_map
from server.deps import PrincipalDep, StateDep
from server.errors import ERROR_RESPONSES
from server.links import page_image_url, search_filter
from server.state import ServerState
from server.wire import Explanation, Hit, SearchRequest, SearchResponse, Timings

router = APIRouter(responses=ERROR_RESPONSES)

EXPLAIN_MAX_HITS = 10


def check_query(state: ServerState, query: str) -> None:
    limit = state.settings.max_query_chars
    if len(query) > limit:
        raise LimitExceededError("query length (characters)", limit, len(query))


@router.post("/v1/search", response_model=SearchResponse, tags=["search"])
def search(body: SearchRequest, state: StateDep, principal: PrincipalDep) -> SearchResponse:
    """Top-k pages by exact MaxSim, each with a link to its image."""
    collection = state.collection(body.collection, principal)
    check_query(state, body.query)
    if body.k > state.settings.max_k:
        raise LimitExceededError("k", state.settings.max_k, body.k)
    if body.explain and body.k > EXPLAIN_MAX_HITS:
        raise LimitExceededError("k with explain=true", EXPLAIN_MAX_HITS, body.k)
    index = collection.index
    started = time.perf_counter()
    query = index.embedder.embed_queries([body.query])[0]
    timings = {"encode": (time.perf_counter() - started) * 1000}
    result = index.search_timed(query, body.k, filter=search_filter(body.filters))
    timings.update(result.timings_ms)
    state.metrics.observe_stages(timings)
    hits = []
    for rank, hit in enumerate(result.hits, start=1):
        explanation = None
        if body.explain:
            info = index.store.get_page(hit.doc_id, hit.page)
            size = (info.width, info.height) if info else (0, 0)
            smap = similarity_map(
                collection.embedder.processor,
                query,
                index.store.page_vectors(hit.doc_id, hit.page),
                size,
            )
            explanation = Explanation(
                grid=list(smap.grid) if smap.grid else None,
                maps=[[round(float(v), 4) for v in row] for row in smap.maps],
            )
        hits.append(
            Hit(
                rank=rank,
                doc_id=hit.doc_id,
                page=hit.page,
                score=hit.score,
                title=hit.title,
                path=hit.path,
                image_url=page_image_url(collection.name, hit.doc_id, hit.page),
                explanation=explanation,
            )
        )
    return SearchResponse(collection=collection.name, hits=hits, timings=Timings.of(timings))
