"""Text-side retrieval: the analyzer behind the bm25 channel and the text channel's encoder."""
