#!/bin/sh
# mmdebstrap customize hook of the wordpress image: lays out root filesystem $1 like the official image
# (WordPress at /var/www/html, pristine wp-content at /usr/src/wordpress) from the files in folder $2.
set -eu
root="$1"
files="$2"

# WordPress core as plain files: Debian's tree is full of symlinks into /usr/share/javascript,
# /usr/share/php and /etc/wordpress, and its wp-config.php wants /etc/wordpress/config-<host>.php.
# The package's own file times are kept: opcache's file cache (below) records them, and mmdebstrap
# sets every later time to the moment it began.
rm -rf "$root/var/www/html"
cp -rL --preserve=timestamps "$root/usr/share/wordpress" "$root/var/www/html"
rm -f "$root/var/www/html/wp-config.php" "$root/var/www/html/.htaccess"
rm -rf "$root/var/www/html/wp-content"

# The default wp-content (index.php, akismet, the theme) is Debian's /var/lib/wordpress/wp-content,
# whose entries are symlinks to /usr/share/wordpress/wp-content.
mkdir -p "$root/usr/src/wordpress"
cp -rL "$root/var/lib/wordpress/wp-content" "$root/usr/src/wordpress/wp-content"
for folder in plugins themes; do
	[ -e "$root/usr/src/wordpress/wp-content/$folder/index.php" ] ||
		cp "$root/usr/src/wordpress/wp-content/index.php" "$root/usr/src/wordpress/wp-content/$folder/index.php"
done
cp -R "$root/usr/src/wordpress/wp-content" "$root/var/www/html/wp-content"
install -m 0644 "$files/wp-config-docker.php" "$files/htaccess" "$root/usr/src/wordpress/"
mv "$root/usr/src/wordpress/htaccess" "$root/usr/src/wordpress/.htaccess"
cp "$root/usr/src/wordpress/.htaccess" "$root/var/www/html/.htaccess"
# The copies are complete: drop Debian's wordpress package and what only it needed (the MariaDB
# client, the shared JavaScript and PHP libraries), near a third of the image.
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq wordpress wordpress-theme-twentytwentythree >/dev/null
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get autoremove --purge -y -qq >/dev/null

# The pod runs Apache as uid 33 (www-data), which must own what WordPress writes.
chown -R 33:33 "$root/var/www/html" "$root/usr/src/wordpress"

install -m 0755 "$files/docker-entrypoint.sh" "$files/apache2-foreground" "$root/usr/local/bin/"

# Apache: one site, mod_rewrite for permalinks, logs to the container's output.
install -m 0644 "$files/apache-wordpress.conf" "$root/etc/apache2/sites-available/wordpress.conf"
chroot "$root" a2dissite -q 000-default >/dev/null
chroot "$root" a2ensite -q wordpress >/dev/null
chroot "$root" a2enmod -q rewrite >/dev/null
chroot "$root" a2disconf -q other-vhosts-access-log >/dev/null
ln -sfT /proc/self/fd/2 "$root/var/log/apache2/error.log"
ln -sfT /proc/self/fd/1 "$root/var/log/apache2/access.log"
chown -R 33:33 "$root/var/log/apache2"
# Any uid may start Apache (the official image does the same): it writes its pid file and mutexes here.
# mmdebstrap keeps /run as the packages left it (--skip=cleanup/run): only these two folders.
mkdir -p "$root/run/apache2" "$root/run/lock/apache2"
chmod 1777 "$root/run/apache2" "$root/run/lock/apache2" "$root/run/lock"
install -m 0644 "$files/php.ini" "$root/etc/php/8.2/apache2/conf.d/90-wpclone.ini"

# WordPress core compiled ahead into opcache's file cache (php.ini names it): a new pod's first request
# loads it instead of compiling core, about 50 ms of CPU instead of 250 (50 clones starting at once
# spent seconds of the machine's two cores on it). The cache records each file's time (the package's,
# which nothing changes after this). The CLI that wrote it stays: purging it takes mod_php with it.
mkdir -p "$root/var/cache/php-opcache"
chroot "$root" php -d opcache.enable_cli=1 -d opcache.file_cache=/var/cache/php-opcache \
	-d opcache.file_cache_only=1 -d opcache.file_update_protection=0 -d display_errors=0 -d log_errors=0 -r '
	// (A file compiled in the two seconds after it was written would be cached for this process only,
	// without file_update_protection=0.) Compiling declares a file'"'"'s functions in this process: a stub that declares core'"'"'s names again
	// (wp-admin/includes/noop.php) fails here, so wp-includes goes first. What fails is compiled at run time.
	$paths = glob("/var/www/html/*.php");
	foreach (["/var/www/html/wp-includes", "/var/www/html/wp-admin"] as $folder) {
		$files = iterator_to_array(new RecursiveIteratorIterator(new RecursiveDirectoryIterator($folder, FilesystemIterator::SKIP_DOTS)));
		ksort($files);
		$paths = array_merge($paths, preg_grep("/\.php\z/", array_keys($files)));
	}
	$compiled = count(array_filter($paths, function ($path) { return @opcache_compile_file($path); }));
	fwrite(STDERR, "opcache file cache: $compiled of " . count($paths) . " files compiled\n");
	exit($compiled > 500 ? 0 : 1);'
# Apache's: opcache turns a file cache off where it may not write (it then keeps what it compiles
# later, a site's own plugins and theme, there too, beside core).
chown -R 33:33 "$root/var/cache/php-opcache"

# Nothing of the host's resolver or name leaks into the image (the runtime provides both).
rm -f "$root/etc/resolv.conf" "$root/etc/hostname"
