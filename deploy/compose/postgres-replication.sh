#!/bin/sh
# Run once by the postgres image when it initialises its data: lets the
# replica service stream (with the same password) from the other containers.
set -e
echo "host replication postgres all scram-sha-256" >> "$PGDATA/pg_hba.conf"
