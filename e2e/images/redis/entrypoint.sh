#!/bin/sh
# The public image builds Redis with protected mode off (other containers
# connect without a password); Debian's build has it on.
if [ "$1" = redis-server ]; then
	shift
	set -- redis-server "$@" --protected-mode no
fi
exec "$@"
