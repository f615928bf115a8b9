<?php
/*
 * wp-config.php of the WordPress image built from Debian's packages (testenv/images.py). The entrypoint
 * copies it into /var/www/html with @SALT@ replaced by fresh random values; everything else is read from
 * the environment at request time, like the official wordpress image: WORDPRESS_DB_HOST, _NAME, _USER,
 * _PASSWORD, _CHARSET, _COLLATE, WORDPRESS_TABLE_PREFIX, WORDPRESS_DEBUG, WORDPRESS_CONFIG_EXTRA,
 * WORDPRESS_AUTH_KEY and the other keys and salts, each also as NAME_FILE (a file holding the value).
 */

if (!function_exists('getenv_docker')) {
	function getenv_docker($name, $default) {
		$file = getenv($name . '_FILE');
		if ($file) {
			return rtrim(file_get_contents($file), "\r\n");
		}
		$value = getenv($name);
		return $value === false ? $default : $value;
	}
}

define('DB_NAME', getenv_docker('WORDPRESS_DB_NAME', 'wordpress'));
define('DB_USER', getenv_docker('WORDPRESS_DB_USER', 'example username'));
define('DB_PASSWORD', getenv_docker('WORDPRESS_DB_PASSWORD', 'example password'));
define('DB_HOST', getenv_docker('WORDPRESS_DB_HOST', 'mysql'));
define('DB_CHARSET', getenv_docker('WORDPRESS_DB_CHARSET', 'utf8'));
define('DB_COLLATE', getenv_docker('WORDPRESS_DB_COLLATE', ''));

// One line each: the entrypoint gives every @SALT@ its own random value.
define('AUTH_KEY',         getenv_docker('WORDPRESS_AUTH_KEY',         '@SALT@'));
define('SECURE_AUTH_KEY',  getenv_docker('WORDPRESS_SECURE_AUTH_KEY',  '@SALT@'));
define('LOGGED_IN_KEY',    getenv_docker('WORDPRESS_LOGGED_IN_KEY',    '@SALT@'));
define('NONCE_KEY',        getenv_docker('WORDPRESS_NONCE_KEY',        '@SALT@'));
define('AUTH_SALT',        getenv_docker('WORDPRESS_AUTH_SALT',        '@SALT@'));
define('SECURE_AUTH_SALT', getenv_docker('WORDPRESS_SECURE_AUTH_SALT', '@SALT@'));
define('LOGGED_IN_SALT',   getenv_docker('WORDPRESS_LOGGED_IN_SALT',   '@SALT@'));
define('NONCE_SALT',       getenv_docker('WORDPRESS_NONCE_SALT',       '@SALT@'));

$table_prefix = getenv_docker('WORDPRESS_TABLE_PREFIX', 'wp_');

define('WP_DEBUG', !!getenv_docker('WORDPRESS_DEBUG', ''));

// TLS usually ends at a proxy in front of the container.
if (isset($_SERVER['HTTP_X_FORWARDED_PROTO']) && strpos($_SERVER['HTTP_X_FORWARDED_PROTO'], 'https') !== false) {
	$_SERVER['HTTPS'] = 'on';
}

if ($configExtra = getenv_docker('WORDPRESS_CONFIG_EXTRA', '')) {
	eval($configExtra);
}

if (!defined('ABSPATH')) {
	define('ABSPATH', __DIR__ . '/');
}

require_once ABSPATH . 'wp-settings.php';
