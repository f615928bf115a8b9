<?php
// php install.php DOCROOT TITLE ADMIN_USER ADMIN_PASSWORD ADMIN_EMAIL
// Installs WordPress into the database named in DOCROOT/wp-config.php, with pretty permalinks.
[, $docroot, $title, $adminUser, $adminPassword, $adminEmail] = $argv;

// wp_die() ends the process with status 0: only a script that reaches its last line has succeeded.
register_shutdown_function(function () {
    if (!defined('WPCLONE_SCRIPT_DONE')) {
        exit(1);
    }
});

$_SERVER['HTTP_HOST'] = '127.0.0.1';
$_SERVER['REQUEST_METHOD'] = 'GET';
define('WP_INSTALLING', true);
require $docroot . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

if (is_blog_installed()) {
    fwrite(STDERR, "WordPress is already installed in " . DB_NAME . "\n");
    exit(1);
}
add_filter('pre_wp_mail', '__return_false');  // there is no sendmail
wp_install($title, $adminUser, $adminEmail, true, '', wp_slash($adminPassword));

global $wp_rewrite;
$wp_rewrite->set_permalink_structure('/%postname%/');
$wp_rewrite->flush_rules(false);
define('WPCLONE_SCRIPT_DONE', true);
