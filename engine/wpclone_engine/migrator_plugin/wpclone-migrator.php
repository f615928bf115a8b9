<?php
/**
 * Plugin Name: wpclone migrator
 * Description: Lets wpclone copy this site to another WordPress and back: authenticated REST routes under /wp-json/wpclone/v1/ that stream the database and wp-content out, import them atomically, and keep a backup to roll back to.
 * Version: 0.1.0
 * Requires at least: 5.6
 * Requires PHP: 7.4
 * License: Apache-2.0
 *
 * Works as a plugin (uploaded as a zip and activated) and as a must-use plugin: these flat files in
 * wp-content/mu-plugins, or in any folder whose files wp-config.php includes at muplugins_loaded (a
 * clone's ConfigMap, whose keys cannot hold a '/'; nothing here needs to load earlier). Only this file
 * registers anything; the others only declare classes, and require_once loads each of them once
 * whether or not the loader has included it already.
 *
 * Routes, all POST, parameters in the body, all for administrators only: `session` takes an
 * administrator's login (HTTP Basic, a login or application password) and answers a token; every other
 * route takes that token, or a clone's WPCLONE_MIGRATOR_TOKEN, in the X-WPClone-Token header
 * (wpclone-migrator-auth.php):
 *   session          open a session: {token, idle_seconds, max_seconds}
 *   session/close    end it                                {remove?: leave the site once no session is live}
 *   info             site report: URLs, versions, prefix, tables (rows, checksums, collations), content sizes, backups
 *   export/database  stream of the site's tables          {tables?, slice_bytes?}
 *   export/files     stream of wp-content folders         {include?: [uploads, themes, plugins, mu-plugins], slice_bytes?}
 *   export/fingerprints stream of each row's key and fingerprint {tables?}
 *   export/file-fingerprints stream of each file's path and md5 {include?, dropins?, exclude?}
 *   import/begin     start an import (replaces any unfinished one) {database, tables?, files?}
 *   import/database  one numbered chunk of table frames   (body: frames, the first an H frame)
 *   import/files     one numbered chunk of file pieces    (body: frames, the first an H frame)
 *   import/commit    check all arrived, swap it in at once {job, chunks: {database, files}, backup?}
 *   import/merge     apply a staged merge in one transaction {job, chunks: {database, files}, plan, files?, backup?}
 *   import/abort     drop an import, or every unfinished one {job?}
 *   import/status    where an import stands               {job}
 *   backup/rollback  put a backup back                     {backup}
 *   backup/delete    drop a backup                         {backup}
 */

if (!defined('ABSPATH') || defined('WPCLONE_MIGRATOR_VERSION')) {
    return;  // not in WordPress, or already loaded from another copy (must-use and plugin both present)
}
define('WPCLONE_MIGRATOR_VERSION', '0.1.0');
define('WPCLONE_MIGRATOR_NAMESPACE', 'wpclone/v1');
define('WPCLONE_MIGRATOR_FILE', __FILE__);
// The routes of an import's chunks: bodies of frames read as a stream, served early when admitted.
define('WPCLONE_MIGRATOR_CHUNK_ROUTES', ['import/database' => ['WPClone_Import', 'database'],
    'import/files' => ['WPClone_Import', 'files']]);

require_once __DIR__ . '/wpclone-migrator-stream.php';
require_once __DIR__ . '/wpclone-migrator-site.php';
require_once __DIR__ . '/wpclone-migrator-auth.php';
require_once __DIR__ . '/wpclone-migrator-export.php';
require_once __DIR__ . '/wpclone-migrator-import.php';
require_once __DIR__ . '/wpclone-migrator-backup.php';
require_once __DIR__ . '/wpclone-migrator-merge.php';
require_once __DIR__ . '/wpclone-migrator-login.php';

add_filter('determine_current_user', ['WPClone_Auth', 'session_user'], 30);
add_filter('rest_authentication_errors', ['WPClone_Auth', 'rest_errors'], 110);
add_action(WPClone_Removal::CRON_HOOK, ['WPClone_Removal', 'if_idle']);
add_action('rest_api_init', 'wpclone_migrator_routes');
add_action('plugins_loaded', 'wpclone_migrator_early_chunk', PHP_INT_MAX);

/**
 * An import chunk, served once the plugins are loaded, before the theme and `init`: most of what a
 * WordPress request costs (11 of a migrator request's 19 ms on the reference site, far more on a site
 * with a heavy theme), and a copy sends a chunk per few megabytes. Only a request that every check
 * admits is served here: the plugins' `rest_authentication_errors` and the migrator's own permission,
 * as the REST server asks them. Any refusal is left to WordPress, which goes on and answers it from
 * the REST route as it would have. What hooks `init`, `rest_api_init` or the REST server's own filters
 * does not see a chunk served here: a chunk only carries on an import that a session, which went
 * through all of them, began.
 */
function wpclone_migrator_early_chunk(): void
{
    $route = WPClone_Auth::requested_route();
    $method = $_SERVER['REQUEST_METHOD'] ?? '';
    if ($route === null || !isset(WPCLONE_MIGRATOR_CHUNK_ROUTES[$route]) || $method !== 'POST') {
        return;
    }
    $request = new WP_REST_Request('POST', '/' . WPCLONE_MIGRATOR_NAMESPACE . '/' . $route);
    if (is_wp_error(apply_filters('rest_authentication_errors', null)) || WPClone_Auth::check($request) !== true) {
        return;
    }
    $answer = wpclone_migrator_answer(WPCLONE_MIGRATOR_CHUNK_ROUTES[$route], $request);
    $status = is_wp_error($answer) ? (int) ($answer->get_error_data()['status'] ?? 500) : 200;
    status_header($status);
    header('Content-Type: application/json; charset=' . get_option('blog_charset'));
    echo wp_json_encode(is_wp_error($answer)  // as the REST server writes an error
        ? ['code' => $answer->get_error_code(), 'message' => $answer->get_error_message(), 'data' => ['status' => $status]]
        : $answer);
    exit;
}

/** @return array|WP_Error what a route's handler answers, or its failure */
function wpclone_migrator_answer(callable $handler, WP_REST_Request $request)
{
    try {
        return call_user_func($handler, $request);
    } catch (WPClone_Error $error) {
        return $error->to_wp_error();
    } catch (Throwable $error) {
        return new WP_Error('wpclone_failed', $error->getMessage(), ['status' => 500]);
    }
}

function wpclone_migrator_routes(): void
{
    $namespace = '/' . WPCLONE_MIGRATOR_NAMESPACE . '/';
    $route = untrailingslashit((string) ($GLOBALS['wp']->query_vars['rest_route'] ?? ''));
    // Core's own routes (posts, users, ... : a fifth of what a request of the migrator cost, about 7 ms of
    // its 19) serve nothing here; a site's own plugins' routes stay.
    if (strpos($route, $namespace) === 0) {
        remove_action('rest_api_init', 'create_initial_rest_routes', 99);
        // An import chunk's handler reads its body as a stream (WPClone_Frame_Reader). Core's REST server,
        // about to serve the request, would first read all of it into one string (16 MiB: as long as the
        // handler takes to write a chunk of files); it takes this as the body instead.
        if (isset(WPCLONE_MIGRATOR_CHUNK_ROUTES[substr($route, strlen($namespace))])) {
            $GLOBALS['HTTP_RAW_POST_DATA'] = '';
        }
    }
    $routes = WPCLONE_MIGRATOR_CHUNK_ROUTES + [
        'session' => ['WPClone_Sessions', 'open'],
        'session/close' => ['WPClone_Sessions', 'close'],
        'info' => ['WPClone_Site', 'info'],
        'export/database' => ['WPClone_Export', 'database'],
        'export/files' => ['WPClone_Export', 'files'],
        'export/fingerprints' => ['WPClone_Merge', 'fingerprints'],
        'export/file-fingerprints' => ['WPClone_Merge', 'file_fingerprints'],
        'import/begin' => ['WPClone_Import', 'begin'],
        'import/commit' => ['WPClone_Import', 'commit'],
        'import/merge' => ['WPClone_Merge', 'merge'],
        'import/abort' => ['WPClone_Import', 'abort'],
        'import/status' => ['WPClone_Import', 'status'],
        'backup/rollback' => ['WPClone_Backups', 'rollback'],
        'backup/delete' => ['WPClone_Backups', 'delete'],
    ];
    foreach ($routes as $route => $handler) {
        register_rest_route(WPCLONE_MIGRATOR_NAMESPACE, '/' . $route, [
            'methods' => 'POST',
            'permission_callback' => ['WPClone_Auth', $route === 'session' ? 'login' : 'check'],
            'callback' => function (WP_REST_Request $request) use ($handler) {
                return rest_ensure_response(wpclone_migrator_answer($handler, $request));
            },
        ]);
    }
}
