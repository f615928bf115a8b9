<?php
/**
 * wpclone migrator: what a site is made of (its tables, its content folders, what is not content),
 * who may drive the migrator, and the site report of the info route.
 */

if (!defined('ABSPATH')) {
    return;
}

final class WPClone_Site
{
    /**
     * Content folders a copy can carry, by the name they have in a stream (the operator asks for
     * mu-plugins only when it copies into a clone).
     */
    const ROOTS = ['uploads', 'themes', 'plugins', 'mu-plugins'];

    /** Names the migrator gives its staging and backup tables; never a site's own table. */
    const OWN_TABLE = '/^wpc[ibr]_[0-9a-f]{12}_[0-9]+$/';

    public static function table_prefix(): string
    {
        global $wpdb;
        return $wpdb->base_prefix;
    }

    /** The site's tables: base tables named with its prefix, without the migrator's own. */
    public static function tables(WPClone_Db $db): array
    {
        return array_values(array_filter($db->tables(self::table_prefix()), function ($name) {
            return !preg_match(self::OWN_TABLE, $name);
        }));
    }

    /**
     * @return array<string, string> stream name => folder on disk. A folder may not exist (a site
     * without must-use plugins): it exports nothing, and an import creates it.
     */
    public static function roots(array $names): array
    {
        $folders = [
            'uploads' => wp_upload_dir(null, false)['basedir'],
            'themes' => get_theme_root(),
            'plugins' => WP_PLUGIN_DIR,
            'mu-plugins' => WPMU_PLUGIN_DIR,
        ];
        $roots = [];
        foreach ($names as $name) {
            if (!is_string($name) || !isset($folders[$name])) {
                throw new WPClone_Error('bad_request', 'unknown content folder: ' . wp_json_encode($name)
                    . ' (known: ' . implode(', ', self::ROOTS) . ')');
            }
            $roots[$name] = untrailingslashit($folders[$name]);
        }
        return $roots;
    }

    /**
     * Whether a path of a stream ("uploads/2024/05/a.jpg") is left out of copies and left alone by
     * imports: the migrator's own data and plugin (and wpclone's must-use plugins, were a site to have
     * them in wp-content/mu-plugins), caches, logs and backup archives.
     */
    public static function excluded(string $path): bool
    {
        $segments = explode('/', $path);
        foreach ($segments as $segment) {
            if (strncmp($segment, '.wpclone-', 9) === 0) {
                return true;
            }
        }
        $top = $segments[1] ?? '';
        if ($segments[0] === 'plugins' && strncmp($top, 'wpclone-migrator', 16) === 0) {
            return true;
        }
        if ($segments[0] === 'mu-plugins' && strncmp($top, 'wpclone-', 8) === 0) {
            return true;
        }
        if ($segments[0] === 'uploads' && count($segments) > 1
            && preg_match('/^(cache|.*backup.*|backwpup-.*|wp-migrate-db|wpvivid.*)$/i', $top)) {
            return true;
        }
        return substr($path, -4) === '.log';
    }

    /**
     * Whether the migrator runs from anywhere but the plugins folder: wp-content/mu-plugins, or the
     * folder a clone's wp-config.php loads it from (a ConfigMap outside wp-content).
     */
    public static function is_must_use(): bool
    {
        // __FILE__ has symbolic links resolved: a ConfigMap mounts files through ..data/ links.
        $plugins = realpath(WP_PLUGIN_DIR);
        return $plugins === false || strpos(dirname(WPCLONE_MIGRATOR_FILE) . '/', $plugins . '/') !== 0;
    }

    /** The size of a request body this site accepts, with room for the multipart-free framing. */
    public static function max_request_bytes(): int
    {
        $post = wp_convert_hr_to_bytes((string) ini_get('post_max_size'));
        $memory = wp_convert_hr_to_bytes((string) ini_get('memory_limit'));
        $limits = [16 * MB_IN_BYTES];
        if ($post > 0) {
            $limits[] = $post - 64 * KB_IN_BYTES;
        }
        if ($memory > 0) {
            $limits[] = intdiv($memory, 8);
        }
        return max(64 * KB_IN_BYTES, min($limits));
    }

    public static function info(WP_REST_Request $request): array
    {
        global $wp_version;
        $db = WPClone_Db::connect();
        $options = self::table_prefix() . 'options';
        $raw_option = function ($name) use ($db, $options) {
            return $db->value('SELECT option_value FROM ' . WPClone_Db::name($options)
                . ' WHERE option_name = ' . $db->quote($name) . ' LIMIT 1');
        };
        $tables = [];
        foreach (self::tables($db) as $name) {
            $table = ['name' => $name, 'rows' => (int) $db->value('SELECT COUNT(*) FROM ' . WPClone_Db::name($name))];
            if ($request->get_param('checksums')) {
                $table['checksum'] = (string) $db->query('CHECKSUM TABLE ' . WPClone_Db::name($name))->fetch_row()[1];
            }
            $tables[] = $table;
        }
        $report = [
            'migrator' => WPCLONE_MIGRATOR_VERSION,
            'mode' => self::is_must_use() ? 'mu-plugin' : 'plugin',
            'plugin' => self::is_must_use() ? null : plugin_basename(WPCLONE_MIGRATOR_FILE),
            'home' => home_url(),
            'siteurl' => site_url(),
            'options' => ['home' => $raw_option('home'), 'siteurl' => $raw_option('siteurl'),
                'blog_public' => $raw_option('blog_public')],
            'wordpress' => $wp_version,
            'php' => PHP_VERSION,
            'database' => $db->server_version(),
            'table_prefix' => self::table_prefix(),
            'tables' => $tables,
            'limits' => [
                'max_request_bytes' => self::max_request_bytes(),
                'max_allowed_packet' => (int) $db->value('SELECT @@max_allowed_packet'),
            ],
            'backups' => WPClone_Backups::all(),
            'jobs' => WPClone_Job::ids(),
        ];
        if ($request->get_param('content')) {
            $report['content'] = [];
            foreach (self::roots(self::ROOTS) as $name => $folder) {
                $report['content'][$name] = self::measure($folder, $name);
            }
        }
        return $report;
    }

    /** @return array{files: int, bytes: int} */
    private static function measure(string $folder, string $name): array
    {
        $files = 0;
        $bytes = 0;
        self::walk($folder, $name, function ($path, $stream_path) use (&$files, &$bytes) {
            $files++;
            $bytes += filesize($path);
        });
        return ['files' => $files, 'bytes' => $bytes];
    }

    /**
     * Calls $visit(path on disk, path in the stream) for every regular file under $folder that is not
     * excluded. Symbolic links are not followed and not copied; their count is returned.
     */
    public static function walk(string $folder, string $stream_path, callable $visit): int
    {
        $skipped = 0;
        $entries = @scandir($folder);
        if ($entries === false) {
            return 0;
        }
        foreach ($entries as $entry) {
            if ($entry === '.' || $entry === '..') {
                continue;
            }
            $path = $folder . '/' . $entry;
            $inner = $stream_path . '/' . $entry;
            if (self::excluded($inner)) {
                continue;
            }
            if (is_link($path)) {
                $skipped++;
            } elseif (is_dir($path)) {
                $skipped += self::walk($path, $inner, $visit);
            } elseif (is_file($path)) {
                $visit($path, $inner);
            }
        }
        return $skipped;
    }
}

/**
 * Every route needs the site's administrator: HTTP Basic checked with wp_authenticate() (a login
 * password, or an application password where WordPress allows them), or the bearer token a clone's
 * configuration defines as WPCLONE_MIGRATOR_TOKEN.
 */
final class WPClone_Auth
{
    /** @return true|WP_Error */
    public static function check(WP_REST_Request $request)
    {
        $header = self::authorization();
        if (preg_match('/^Bearer\s+(\S+)\s*$/i', $header, $match)) {
            $token = defined('WPCLONE_MIGRATOR_TOKEN') ? (string) WPCLONE_MIGRATOR_TOKEN : '';
            if (strlen($token) >= 16 && hash_equals($token, $match[1])) {
                return true;
            }
            return new WP_Error('wpclone_bad_token', 'The bearer token is not valid for this site.', ['status' => 401]);
        }
        [$login, $password] = self::basic($header);
        if ($login === '') {
            return new WP_Error('wpclone_unauthenticated',
                'Send an administrator login with HTTP Basic authentication.', ['status' => 401]);
        }
        $user = wp_authenticate($login, $password);
        if (is_wp_error($user)) {
            return new WP_Error('wpclone_login_failed', 'The login or password is not valid.', ['status' => 401]);
        }
        if (!user_can($user, 'manage_options')) {
            return new WP_Error('wpclone_forbidden', 'The user is not an administrator of this site.', ['status' => 403]);
        }
        wp_set_current_user($user->ID);
        return true;
    }

    /**
     * Core refuses HTTP Basic with a login password once application passwords are in use on a site;
     * the migrator's routes check credentials themselves, so core's verdict is dropped for them only.
     */
    public static function core_errors($result)
    {
        $route = $GLOBALS['wp']->query_vars['rest_route'] ?? '';
        if (is_wp_error($result) && strpos((string) $route, '/' . WPCLONE_MIGRATOR_NAMESPACE . '/') === 0) {
            return null;
        }
        return $result;
    }

    private static function authorization(): string
    {
        foreach (['HTTP_AUTHORIZATION', 'REDIRECT_HTTP_AUTHORIZATION'] as $key) {
            if (!empty($_SERVER[$key])) {
                return trim((string) $_SERVER[$key]);
            }
        }
        if (isset($_SERVER['PHP_AUTH_USER'])) {
            return 'Basic ' . base64_encode($_SERVER['PHP_AUTH_USER'] . ':' . ($_SERVER['PHP_AUTH_PW'] ?? ''));
        }
        return '';
    }

    /** @return array{0: string, 1: string} */
    private static function basic(string $header): array
    {
        if (!preg_match('/^Basic\s+([A-Za-z0-9+\/=]+)\s*$/i', $header, $match)) {
            return ['', ''];
        }
        $pair = (string) base64_decode($match[1], true);
        $colon = strpos($pair, ':');
        if ($colon === false) {
            return ['', ''];
        }
        return [substr($pair, 0, $colon), substr($pair, $colon + 1)];
    }
}
