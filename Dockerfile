# Airflow 3 with a JDK for local Spark and this project's pinned dependencies.
FROM apache/airflow:3.3.2-python3.11

USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64

USER airflow
# The same lock file the Makefile installs from, then this project (editable: compose mounts
# the same folders over these, so the containers run the working tree).
COPY requirements.lock /requirements.lock
RUN pip install --no-cache-dir --require-hashes -r /requirements.lock
COPY --chown=airflow:root pyproject.toml /opt/airflow/
COPY --chown=airflow:root spark_jobs /opt/airflow/spark_jobs
COPY --chown=airflow:root plugins /opt/airflow/plugins
COPY --chown=airflow:root pipeline /opt/airflow/pipeline
COPY --chown=airflow:root churn_tools /opt/airflow/churn_tools
RUN pip install --no-cache-dir --no-deps --no-build-isolation -e /opt/airflow
