-- Runs once, when the postgres container initialises an empty data volume.
-- Creates the Tempoflow role and database; Temporal's own databases (temporal,
-- temporal_visibility) are created by temporalio/auto-setup.
-- The password comes from the container's POSTGRES_PASSWORD (psql 15+ \getenv),
-- so no secret is stored in this file.
\getenv tempoflow_password POSTGRES_PASSWORD
CREATE ROLE tempoflow LOGIN PASSWORD :'tempoflow_password';
CREATE DATABASE tempoflow OWNER tempoflow;
