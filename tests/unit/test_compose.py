"""compose.yaml (the Docker path of the local stack) agrees with the settings the app reads.

No Docker and no servers: the file is parsed with PyYAML and its values are fed to
``load_settings`` exactly as the containers would see them.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from exchange.settings import ENV_VARS, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"

EXPECTED_SERVICES = (
    "postgres",
    "redpanda",
    "redpanda-init",
    "minio",
    "minio-init",
    "migrate",
    "app",
    "normalizer",
    "prometheus",
    "grafana",
)
APP_IMAGE_SERVICES = ("migrate", "app", "normalizer")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose.get("services")
    assert isinstance(found, dict)
    return found


def environment_of(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a str -> str mapping (compose allows a mapping or a list)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        pairs = (item.partition("=") for item in raw)
        return {key: value for key, _, value in pairs}
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def depends_on_of(service: dict[str, Any]) -> list[str]:
    raw = service.get("depends_on") or []
    return list(raw) if isinstance(raw, (list, dict)) else []


def command_text(service: dict[str, Any]) -> str:
    command = service.get("command") or []
    return (
        command
        if isinstance(command, str)
        else "\n".join(str(part) for part in command)
    )


def settings_of(service: dict[str, Any]) -> Settings:
    return load_settings(environment_of(service))


def test_compose_defines_every_service_of_the_docker_stack(
    services: dict[str, Any],
) -> None:
    missing = [name for name in EXPECTED_SERVICES if name not in services]
    assert not missing, f"compose.yaml lacks services: {missing}"


@pytest.mark.parametrize("name", APP_IMAGE_SERVICES)
def test_app_services_use_only_env_vars_the_app_reads(
    services: dict[str, Any], name: str
) -> None:
    unknown = sorted(set(environment_of(services[name])) - set(ENV_VARS))
    assert not unknown, f"{name} sets variables the app never reads: {unknown}"


@pytest.mark.parametrize("name", APP_IMAGE_SERVICES)
def test_app_service_environments_are_accepted_by_load_settings(
    services: dict[str, Any], name: str
) -> None:
    settings = settings_of(services[name])
    assert settings.env == "local"
    assert settings.http.port == 8080


def test_normalizer_runs_only_the_normalizer_role(services: dict[str, Any]) -> None:
    command = services["normalizer"]["command"]
    assert "--role=normalizer" in command


def test_normalizer_reaches_the_tokenizer_in_the_app_container_over_http(
    services: dict[str, Any],
) -> None:
    assert "tokenizer" in command_text(services["app"])
    assert "tokenizer" not in command_text(services["normalizer"])
    assert settings_of(services["normalizer"]).tokenizer.url == "http://app:8080"


def test_app_and_normalizer_share_the_same_platform_settings(
    services: dict[str, Any],
) -> None:
    app = settings_of(services["app"])
    normalizer = settings_of(services["normalizer"])
    assert app.kafka == normalizer.kafka
    assert app.object_store == normalizer.object_store
    assert app.database == normalizer.database
    assert app.tokenizer.hmac_key == normalizer.tokenizer.hmac_key
    assert app.tokenizer.key_id == normalizer.tokenizer.key_id


def test_redpanda_init_creates_exactly_the_platform_topics(
    services: dict[str, Any],
) -> None:
    script = command_text(services["redpanda-init"])
    match = re.search(r"for topic in (.+?); do", script)
    assert match, "redpanda-init should loop over its topics"
    created = tuple(shlex.split(match.group(1)))
    assert created == settings_of(services["app"]).kafka.all_topics


def test_redpanda_init_creates_topics_with_the_configured_partition_count(
    services: dict[str, Any],
) -> None:
    script = command_text(services["redpanda-init"])
    match = re.search(r"rpk topic create \S+ -p (\d+) --brokers (\S+)", script)
    assert match, (
        "redpanda-init should call `rpk topic create TOPIC -p N --brokers HOST:PORT`"
    )
    settings = settings_of(services["app"])
    assert int(match.group(1)) == settings.kafka.partitions
    assert match.group(2) == settings.kafka.brokers


def test_minio_init_creates_the_bucket_named_by_s3_bucket(
    services: dict[str, Any],
) -> None:
    script = command_text(services["minio-init"])
    match = re.search(r"mc mb --ignore-existing \w+/(\S+)", script)
    assert match, (
        "minio-init should create its bucket idempotently with `mc mb --ignore-existing`"
    )
    assert match.group(1) == settings_of(services["app"]).object_store.bucket


def test_app_credentials_match_the_minio_and_postgres_containers(
    services: dict[str, Any],
) -> None:
    settings = settings_of(services["app"])
    minio = environment_of(services["minio"])
    assert settings.object_store.access_key_id.reveal() == minio["MINIO_ROOT_USER"]
    assert (
        settings.object_store.secret_access_key.reveal() == minio["MINIO_ROOT_PASSWORD"]
    )
    postgres = environment_of(services["postgres"])
    user, password, db = (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert settings.database.dsn == f"postgresql://{user}:{password}@postgres:5432/{db}"


def test_every_depends_on_target_is_a_defined_service(services: dict[str, Any]) -> None:
    dangling = {
        name: target
        for name, service in services.items()
        for target in depends_on_of(service)
        if target not in services
    }
    assert not dangling, f"depends_on names undefined services: {dangling}"


def test_app_waits_for_migrations_topics_and_bucket(services: dict[str, Any]) -> None:
    depends = services["app"]["depends_on"]
    for one_shot in ("migrate", "redpanda-init", "minio-init"):
        assert depends[one_shot]["condition"] == "service_completed_successfully"


def test_prometheus_scrapes_the_app_and_the_normalizer(
    services: dict[str, Any],
) -> None:
    mounts = services["prometheus"].get("volumes") or []
    source = next(
        m.split(":")[0]
        for m in mounts
        if m.endswith("/etc/prometheus/prometheus.yml:ro")
    )
    config = yaml.safe_load((ROOT / source).read_text(encoding="utf-8"))
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {"app:8080", "normalizer:8080"} <= targets


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source path (relative to the repository) of a service's bind mounts."""
    out: dict[str, str] = {}
    for mount in service.get("volumes") or []:
        source, target = str(mount).split(":")[:2]
        out[target] = source
    return out


def test_prometheus_loads_the_alert_rules_compose_mounts_beside_its_config(
    services: dict[str, Any],
) -> None:
    mounts = _mounts(services["prometheus"])
    config = yaml.safe_load((ROOT / mounts["/etc/prometheus/prometheus.yml"]).read_text(encoding="utf-8"))
    for rule_file in config["rule_files"]:
        mounted = mounts[f"/etc/prometheus/{rule_file}"]
        assert (ROOT / mounted).resolve() == ROOT / "deploy" / "prometheus" / "alerts.yml"


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard(
    services: dict[str, Any],
) -> None:
    grafana = services["grafana"]
    assert "prometheus" in depends_on_of(grafana)
    mounts = _mounts(grafana)
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    (datasource,) = datasources
    prometheus_port = services["prometheus"]["ports"][0].rsplit(":", 1)[-1]
    assert datasource["url"] == f"http://prometheus:{prometheus_port}"
    providers = yaml.safe_load((provisioning / "dashboards" / "exchange.yml").read_text())["providers"]
    (provider,) = providers
    dashboards = ROOT / mounts[provider["options"]["path"]]
    dashboard = json.loads((dashboards / "exchange.json").read_text())
    used = {target["datasource"]["uid"] for panel in dashboard["panels"] for target in panel.get("targets", [])}
    assert used == {datasource["uid"]}
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].startswith(provider["options"]["path"])
