#!/bin/sh
# The public nginx image's 20-envsubst-on-templates.sh, in short: each
# /etc/nginx/templates/X.template becomes /etc/nginx/conf.d/X, with only the
# environment's own variables substituted (nginx's $variables stay).
set -e
defined=$(printf '${%s} ' $(env | cut -d= -f1))
if [ -d /etc/nginx/templates ]; then
	for template in /etc/nginx/templates/*.template; do
		[ -f "$template" ] || continue
		out="/etc/nginx/conf.d/$(basename "$template" .template)"
		envsubst "$defined" <"$template" >"$out"
		echo "docker-entrypoint: $template → $out"
	done
fi
exec "$@"
