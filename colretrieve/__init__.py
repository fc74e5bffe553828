"""colretrieve: ColPali-style late-interaction visual document retrieval.

The core library: the ``Index`` facade, the contracts and result types, the errors. Models
load lazily (``colretrieve.models``); nothing heavy is imported here.
"""

from colretrieve.contracts import (
    DocumentInfo,
    DocumentRecord,
    IndexStats,
    ModelInfo,
    MultiVectorStore,
    PageEmbedder,
    PageInfo,
    PageInput,
    SearchFilter,
    SearchHit,
)
from colretrieve.errors import (
    ColretrieveError,
    DocumentNotFoundError,
    IndexCorruptError,
    IndexLockedError,
    IndexNotFoundError,
    InvalidInputError,
    ModelLoadError,
    ModelMismatchError,
    UnreadableDocumentError,
)
from colretrieve.index import Index
from colretrieve.search import SearchResult
from colretrieve.settings import Settings

__all__ = [
    "ColretrieveError",
    "DocumentInfo",
    "DocumentNotFoundError",
    "DocumentRecord",
    "Index",
    "IndexCorruptError",
    "IndexLockedError",
    "IndexNotFoundError",
    "IndexStats",
    "InvalidInputError",
    "ModelInfo",
    "ModelLoadError",
    "ModelMismatchError",
    "MultiVectorStore",
    "PageEmbedder",
    "PageInfo",
    "PageInput",
    "SearchFilter",
    "SearchHit",
    "SearchResult",
    "Settings",
    "UnreadableDocumentError",
]
