# syntax=docker/dockerfile:1
# Exchange application image: one image for every role (`exchange serve --role=...`),
# migrations (`exchange migrate`) and the operator CLI.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv

RUN pip install uv

WORKDIR /app

# Dependencies first (cached while only the source changes). The workspace's other members
# (the dev stack, the benchmark) are dev-only: their project files let uv read the lock, and
# `--no-dev` installs neither them nor their dependencies.
COPY pyproject.toml uv.lock README.md ./
COPY deploy/local-stack/pyproject.toml ./deploy/local-stack/
COPY benchmarks/pyproject.toml ./benchmarks/
RUN uv sync --frozen --no-dev --no-install-workspace

# The project itself, its migrations and the contracts it validates against.
COPY src/ ./src/
COPY migrations/ ./migrations/
COPY alembic.ini ./
COPY contracts/ ./contracts/
RUN uv sync --frozen --no-dev

RUN groupadd --system --gid 10001 exchange \
    && useradd --system --uid 10001 --gid exchange --home-dir /app --no-create-home exchange \
    && chown -R exchange:exchange /app
USER exchange

ENV PATH="/app/.venv/bin:${PATH}"

EXPOSE 8080

HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

ENTRYPOINT ["/app/.venv/bin/exchange"]
CMD ["serve", "--role=all"]
