#!/bin/bash
# Entrypoint of the WordPress image built from Debian's packages: the official wordpress image's contract
# (WORDPRESS_DB_*, WORDPRESS_TABLE_PREFIX, WORDPRESS_CONFIG_EXTRA), working as root or as any other uid.
set -Eeuo pipefail
cd /var/www/html

if [[ "${1-}" == apache2* ]]; then
	uid="$(id -u)"
	# A fresh volume mounted on wp-content: seed it with the default themes and plugins, never overwriting.
	if [ ! -e wp-content/index.php ]; then
		echo >&2 "No WordPress content in $PWD/wp-content - copying the defaults"
		cp -R -n /usr/src/wordpress/wp-content/. wp-content/
		if [ "$uid" = 0 ]; then chown -R www-data:www-data wp-content; fi
	fi
	if [ ! -e .htaccess ]; then
		cp /usr/src/wordpress/.htaccess .htaccess
	fi
	# As in the official image: wp-config.php reads the variables at request time (no password lands in a
	# file), and only the salts are fixed here, fresh and random for each new wp-config.php.
	settings=( "${!WORDPRESS_@}" )
	if [ ! -s wp-config.php ] && [ "${#settings[@]}" -gt 0 ]; then
		while IFS= read -r line; do
			if [[ "$line" == *@SALT@* ]]; then
				line="${line//@SALT@/$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')}"
			fi
			printf '%s\n' "$line"
		done < /usr/src/wordpress/wp-config-docker.php > wp-config.php
		if [ "$uid" = 0 ]; then chown www-data:www-data wp-config.php; fi
	fi
fi

exec "$@"
