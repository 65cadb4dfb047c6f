# The API and the worker: one image, two commands (see docker-compose.yml).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    KOPILKA_DATA_DIR=/var/lib/kopilka

WORKDIR /src
COPY pyproject.toml ./
COPY loyalty_core ./loyalty_core
COPY backend ./backend
COPY personal_account ./personal_account
COPY wallet_passes ./wallet_passes
COPY migrations ./migrations
RUN pip install . && rm -rf /src/build

RUN useradd --system --create-home --uid 10001 kopilka \
    && mkdir -p /var/lib/kopilka && chown kopilka /var/lib/kopilka
USER kopilka
WORKDIR /home/kopilka

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2).status != 200)"
CMD ["kopilka", "serve", "--host", "0.0.0.0", "--workers", "4"]
