"""The HTTP API (FastAPI) over the colretrieve core; arrives with the server issue."""
