-- Least privileges for patronlink on PostgreSQL (docs/deployment.md). Run once, as a superuser
-- (or a role with CREATEROLE), connected to patronlink's database:
--     psql -v ON_ERROR_STOP=1 -d patronlink -f deploy/postgres-roles.sql
-- then give both roles passwords (ALTER ROLE ... PASSWORD) or use another authentication method.
--
-- patronlink_owner owns the schema and is used only by `patronlink db upgrade`.
-- patronlink_app is what `serve`, `worker` and the other commands use: it reads and writes rows,
-- and can create, alter or drop nothing. tests/integration/test_deployment.py runs this file.

CREATE ROLE patronlink_owner LOGIN;
CREATE ROLE patronlink_app LOGIN;

CREATE SCHEMA patronlink AUTHORIZATION patronlink_owner;
ALTER ROLE patronlink_owner SET search_path = patronlink;
ALTER ROLE patronlink_app SET search_path = patronlink;

DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO patronlink_owner, patronlink_app',
                   current_database());
END
$$;

GRANT USAGE ON SCHEMA patronlink TO patronlink_app;
-- Every table and sequence the migrations create, now and in later versions.
ALTER DEFAULT PRIVILEGES FOR ROLE patronlink_owner IN SCHEMA patronlink
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO patronlink_app;
ALTER DEFAULT PRIVILEGES FOR ROLE patronlink_owner IN SCHEMA patronlink
    GRANT USAGE, SELECT ON SEQUENCES TO patronlink_app;
