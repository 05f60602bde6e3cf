#!/bin/sh
# One database per service, each owned by a role of its own that owns nothing else: a service
# cannot read another's database (PUBLIC may not connect to any of them). The postgres image
# runs this once, on an empty data volume; the passwords come from compose (.env).
set -eu
for service in storage song resource; do
    password=$(printenv "$(echo "${service}_DB_PASSWORD" | tr a-z A-Z)")
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v role="${service}_service" -v database="${service}_db" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"database" OWNER :"role";
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
SQL
done
