# The same install as the README: the project into a virtualenv, run as an unprivileged user.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY workers ./workers
COPY scheduler ./scheduler
COPY couchwatch ./couchwatch
RUN pip install --no-cache-dir .
RUN useradd --system --uid 10001 couchwatch
USER couchwatch
CMD ["couchwatch", "--help"]
