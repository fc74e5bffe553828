"""colretrieve: ColPali-style late-interaction visual document retrieval."""
