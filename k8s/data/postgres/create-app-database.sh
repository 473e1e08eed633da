#!/bin/bash
# Runs once, when the data directory is first initialised (docker-entrypoint-initdb.d):
# the service's role, owning its database. The service connects as that role, never as
# the postgres superuser; the role can open no other database (there is none here anyway).
set -euo pipefail
psql --no-psqlrc --set=ON_ERROR_STOP=1 --username="$POSTGRES_USER" --dbname=postgres \
  --set=app_db="$MEDSTATION_DB_NAME" \
  --set=app_user="$MEDSTATION_DB_USER" \
  --set=app_password="$MEDSTATION_DB_PASSWORD" <<'SQL'
CREATE ROLE :"app_user" LOGIN PASSWORD :'app_password';
CREATE DATABASE :"app_db" OWNER :"app_user";
REVOKE ALL ON DATABASE :"app_db" FROM PUBLIC;
GRANT ALL ON DATABASE :"app_db" TO :"app_user";
SQL
