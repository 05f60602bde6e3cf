#!/bin/sh
# The stand-in's entrypoint: the official image's environment variables, written as config.
set -eu
{
    # As in the official image: the default user may connect from other containers.
    echo "loopback_users.guest = false"
    echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
    echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
    echo "default_vhost = ${RABBITMQ_DEFAULT_VHOST:-/}"
    echo "listeners.tcp.default = ${RABBITMQ_NODE_PORT:-5672}"
    # The official image reads /etc/rabbitmq/conf.d/*.conf after its defaults; Debian's 3.10
    # reads one file, so they are appended to it, later lines winning as they do there.
    for extra in /etc/rabbitmq/conf.d/*.conf; do
        [ -f "$extra" ] && cat "$extra"
    done
} > /etc/rabbitmq/rabbitmq.conf
chmod 640 /etc/rabbitmq/rabbitmq.conf
chown rabbitmq:rabbitmq /etc/rabbitmq/rabbitmq.conf
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
# The node port is in the config file; the variable would also reach the CLI tools' distribution.
unset RABBITMQ_NODE_PORT
# Debian's rabbitmq-server (and rabbitmq-diagnostics, for the healthcheck) switch to the
# rabbitmq user themselves.
exec "$@"
