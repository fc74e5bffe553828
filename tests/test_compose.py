"""docker-compose.yml and the Dockerfile, checked by structure (Docker cannot run here)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from colretrieve.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
yaml = pytest.importorskip("yaml")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_services_and_volumes(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"qdrant-0", "qdrant-1", "qdrant-2", "api", "vlm"}
    named = set(compose["volumes"])
    for name in ("qdrant-0", "qdrant-1", "qdrant-2"):
        node = services[name]
        assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", node["image"])  # pinned
        assert f"{name}-storage:/qdrant/storage" in node["volumes"]
        assert f"{name}-storage" in named
        assert "test" in node["healthcheck"] and "/readyz" in str(node["healthcheck"]["test"])
    for service in services.values():
        assert "healthcheck" in service
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            assert source in named or source.startswith(("${", "./", "/")), volume


def test_cluster_bootstrap(compose: dict) -> None:
    services = compose["services"]
    first = services["qdrant-0"]
    assert first["command"] == ["./qdrant", "--uri", "http://qdrant-0:6335"]
    for name in ("qdrant-1", "qdrant-2"):
        command = services[name]["command"]
        assert command[command.index("--bootstrap") + 1] == "http://qdrant-0:6335"
        assert command[command.index("--uri") + 1] == f"http://{name}:6335"
        assert services[name]["depends_on"]["qdrant-0"]["condition"] == "service_healthy"
    for name in ("qdrant-0", "qdrant-1", "qdrant-2"):
        env = env_of(services[name])
        assert env["QDRANT__CLUSTER__ENABLED"] == "true"
        assert env["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY")


def test_ports(compose: dict) -> None:
    services = compose["services"]
    assert services["qdrant-0"]["ports"] == ["127.0.0.1:6333:6333", "127.0.0.1:6334:6334"]
    assert "ports" not in services["qdrant-1"] and "ports" not in services["qdrant-2"]
    assert services["api"]["ports"] == ["8000:8000"]
    assert services["vlm"]["ports"] == ["127.0.0.1:8001:8000"]


def test_api_env_wires_to_settings(compose: dict) -> None:
    api = compose["services"]["api"]
    assert api["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    env = env_of(api)
    fields = {f"COLRETRIEVE_{name.upper()}" for name in Settings.model_fields}
    ours = {key for key in env if key.startswith("COLRETRIEVE_")}
    assert ours <= fields, ours - fields  # every variable is a real setting
    assert env["COLRETRIEVE_STORE"] == "qdrant"
    assert env["COLRETRIEVE_QDRANT_URL"] == "http://qdrant-0:6333"
    assert int(env["COLRETRIEVE_QDRANT_REPLICATION_FACTOR"]) == 2
    assert int(env["COLRETRIEVE_QDRANT_SHARDS"]) >= 3  # shards spread over the three nodes
    # The values the api would get parse as Settings (env interpolation aside).
    literal = {
        key.removeprefix("COLRETRIEVE_").lower(): value
        for key, value in env.items()
        if key.startswith("COLRETRIEVE_") and not value.startswith("${")
    }
    settings = Settings(**literal)
    assert settings.store == "qdrant" and settings.qdrant_replication_factor == 2
    for service in ("qdrant-0", "qdrant-1", "qdrant-2"):
        assert api["depends_on"][service]["condition"] == "service_healthy"
    assert api["command"][:2] == ["colretrieve", "serve"]


def test_no_secrets_in_the_file(compose: dict) -> None:
    for name, service in compose["services"].items():
        for key, value in env_of(service).items():
            if re.search(r"KEY|TOKEN|SECRET|PASSWORD", key):
                assert value.startswith("${"), f"{name}: {key} must come from the environment"


def test_vlm_is_optional_and_gpu_reservation_explained(compose: dict) -> None:
    vlm = compose["services"]["vlm"]
    assert vlm["profiles"] == ["vlm"]
    assert vlm["image"].startswith("vllm/vllm-openai:v")
    assert "Qwen/Qwen2.5-VL" in " ".join(vlm["command"])
    text = (ROOT / "docker-compose.yml").read_text()
    assert "# deploy:" in text and "#           capabilities: [gpu]" in text
    assert "deploy" not in vlm  # commented, so CPU hosts can still `up` the rest


def test_dockerfile_runs_the_api() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert '".[qdrant]"' in text
    assert 'CMD ["colretrieve", "serve", "--host", "0.0.0.0", "--port", "8000"]' in text
    assert "USER " in text  # not root
