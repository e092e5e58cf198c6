#!/bin/sh
# The compose file's PostgreSQL init script: the two roles of postgres-roles.sql, with passwords.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -f /patronlink/postgres-roles.sql
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v owner_password="$PATRONLINK_OWNER_PASSWORD" -v app_password="$PATRONLINK_APP_PASSWORD" <<'SQL'
ALTER ROLE patronlink_owner PASSWORD :'owner_password';
ALTER ROLE patronlink_app PASSWORD :'app_password';
SQL
