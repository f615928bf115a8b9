<?php
/**
 * wpclone migrator: what a site is made of (its tables, its content folders, what is not content),
 * and the site report of the info route.
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
    const ROOTS = ['uploads', 'themes', 'plugins', 'mu-plugins', 'content'];

    /**
     * wp-content's drop-ins: files WordPress loads in place of its own code (caches, database layers,
     * error pages). They belong to a server (an object cache reaching production's Redis), so a copy
     * carries them only when asked ($rules['dropins']), and an import leaves the destination's alone.
     */
    const DROPINS = ['advanced-cache.php', 'object-cache.php', 'db.php', 'db-error.php', 'install.php',
        'maintenance.php', 'php-error.php', 'fatal-error-handler.php', 'sunrise.php', 'blog-deleted.php',
        'blog-inactive.php', 'blog-suspended.php'];

    /**
     * What of the rest of wp-content ("content/...") no copy carries: the other roots' folders (copied
     * as themselves), the migrator's state, caches (and cache plugins' configuration, written for one
     * server), upgrade leftovers, backup plugins' archives and security plugins' logs.
     */
    const CONTENT_SKIPPED = '/^(uploads|themes|plugins|mu-plugins|wpclone-migrator|cache|et-cache|litespeed'
        . '|w3tc-config|wp-rocket-config|wpo-cache|upgrade|upgrade-temp-backup|updraft|ai1wm-backups'
        . '|.*backup.*|backwpup-.*|wpvivid.*|wflogs)$/i';

    /** The rules of a copy that asks for none: no drop-ins, no exclusions. */
    const NO_RULES = ['dropins' => false, 'exclude' => []];

    /** Server configuration files: environment-specific, never carried in the rest of wp-content. */
    const SERVER_CONFIG = '/^(\.htaccess|\.user\.ini|web\.config|php\.ini)$/i';

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
            'content' => WP_CONTENT_DIR,
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
     * A copy's rules (the job's, or a request's): whether drop-ins go too, and the user's exclusions,
     * shell patterns of a root's top-level entries ("uploads/2019", "content/languages", "plugins/big-*").
     *
     * @return array{dropins: bool, exclude: list<string>}
     */
    public static function rules($dropins, $exclude): array
    {
        $exclude = $exclude ?? [];
        if (!is_array($exclude) || count($exclude) > 100) {
            throw new WPClone_Error('bad_request', 'exclude must be a list of at most 100 patterns');
        }
        foreach ($exclude as $pattern) {
            $parts = is_string($pattern) ? explode('/', $pattern) : [];
            if (count($parts) !== 2 || !in_array($parts[0], self::ROOTS, true) || $parts[1] === ''
                || strlen($pattern) > 256 || strpos($pattern, "\0") !== false) {
                throw new WPClone_Error('bad_request', 'exclude pattern ' . wp_json_encode($pattern)
                    . ' must name a top-level entry of a content folder, such as uploads/2019 or content/languages');
            }
        }
        return ['dropins' => (bool) $dropins, 'exclude' => array_values($exclude)];
    }

    /** The rules recorded in a job's or a backup's data (those made before rules existed: none). */
    public static function rules_of(array $data): array
    {
        return $data['rules'] ?? self::NO_RULES;
    }

    /**
     * Whether a path of a stream ("uploads/2024/05/a.jpg") is left out of copies and left alone by
     * imports: the migrator's own data and plugin (and wpclone's must-use plugins, were a site to have
     * them in wp-content/mu-plugins), caches, logs and backup archives; in the rest of wp-content, what
     * CONTENT_SKIPPED names and server configuration, and drop-ins unless the rules carry them; and
     * what the rules exclude.
     */
    public static function excluded(string $path, array $rules = self::NO_RULES): bool
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
        if ($segments[0] === 'content' && count($segments) > 1) {
            if (preg_match(self::CONTENT_SKIPPED, $top) || preg_match(self::SERVER_CONFIG, end($segments))
                || (count($segments) === 2 && !$rules['dropins'] && in_array($top, self::DROPINS, true))
                || (count($segments) === 2 && in_array($top, self::nested_roots(), true))) {
                return true;
            }
        }
        if (count($segments) > 1) {
            foreach ($rules['exclude'] as $pattern) {
                if (fnmatch($pattern, $segments[0] . '/' . $top, FNM_PATHNAME | FNM_PERIOD)) {
                    return true;
                }
            }
        }
        return substr($path, -4) === '.log';
    }

    /** The longest definition of a view, trigger or routine a copy carries. */
    const MAX_DEFINITION_BYTES = 65536;

    /**
     * The site's views (named with its prefix), its tables' triggers and the database's stored procedures
     * and functions, at most 100: each one's definition as SHOW CREATE gives it, for a copy to make again
     * ({type, name, create}); in `not_copied`, in words, what it does not carry: events, and what this
     * login may not read.
     */
    public static function database_objects(WPClone_Db $db): array
    {
        $prefix = $db->like_prefix(self::table_prefix());
        $wanted = array_merge(
            array_map(function ($name) { return ['view', $name]; }, $db->column(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
                . " AND TABLE_TYPE = 'VIEW' AND TABLE_NAME LIKE BINARY $prefix ORDER BY 1 LIMIT 100")),
            array_map(function ($row) { return ['trigger', $row[0]]; }, $db->query(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA"
                . " = DATABASE() AND EVENT_OBJECT_TABLE LIKE BINARY $prefix ORDER BY 1 LIMIT 100")->fetch_all(MYSQLI_NUM)),
            array_map(function ($row) { return [strtolower($row[0]), $row[1]]; }, $db->query(
                "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()"
                . " ORDER BY 2 LIMIT 100")->fetch_all(MYSQLI_NUM))
        );
        $objects = [];
        $not_copied = array_map(function ($name) { return "event $name"; }, $db->column(
            "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE() ORDER BY 1 LIMIT 100"));
        foreach (array_slice($wanted, 0, 100) as [$type, $name]) {
            $create = self::show_create($db, $type, (string) $name);
            if ($create === null) {
                $not_copied[] = "$type $name (its definition is not readable by this site's database login)";
            } elseif (strlen($create) > self::MAX_DEFINITION_BYTES) {
                $not_copied[] = "$type $name (its definition is longer than " . self::MAX_DEFINITION_BYTES . ' bytes)';
            } else {
                $objects[] = ['type' => $type, 'name' => (string) $name, 'create' => $create];
            }
        }
        return ['objects' => $objects, 'not_copied' => array_slice(array_map('strval', $not_copied), 0, 100)];
    }

    /** SHOW CREATE of a view, trigger, procedure or function: its definition, or null where it is hidden. */
    private static function show_create(WPClone_Db $db, string $type, string $name): ?string
    {
        // The column that holds it: a view's second, a trigger's or a routine's third.
        $column = $type === 'view' ? 1 : 2;
        try {
            $row = $db->query('SHOW CREATE ' . strtoupper($type) . ' ' . WPClone_Db::name($name))->fetch_row();
        } catch (WPClone_Error $error) {
            return null;  // no privilege to show it
        }
        return is_array($row) && isset($row[$column]) && is_string($row[$column]) ? $row[$column] : null;
    }

    /** The drop-ins present in wp-content, which a copy without drop-ins leaves behind. */
    public static function dropins(): array
    {
        return array_values(array_filter(self::DROPINS, function ($name) {
            return is_file(WP_CONTENT_DIR . '/' . $name);
        }));
    }

    /** The names in wp-content of the other roots' folders where a site moved them (UPLOADS, WP_PLUGIN_DIR). */
    private static function nested_roots(): array
    {
        $content = untrailingslashit(WP_CONTENT_DIR);
        $names = [];
        foreach (self::roots(['uploads', 'themes', 'plugins', 'mu-plugins']) as $folder) {
            if (dirname($folder) === $content) {
                $names[] = basename($folder);
            }
        }
        return $names;
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

    /**
     * This copy's release: the SHA-256 of a line per file of the plugin (its name and the file's SHA-256),
     * in name order, as the engine computes its own (wpclone_engine.migrator.build), so that a copy of
     * another release (kept on a site by an earlier job) is found and replaced before it is used.
     */
    public static function build(): string
    {
        $files = glob(dirname(WPCLONE_MIGRATOR_FILE) . '/wpclone-migrator*.php') ?: [];
        sort($files, SORT_STRING);
        $lines = '';
        foreach ($files as $file) {
            $lines .= basename($file) . ' ' . hash_file('sha256', $file) . "\n";
        }
        return hash('sha256', $lines);
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
            if (WPClone_Db::is_sqlite()) {  // its tables are read by the drop-in only (the copy reads the file)
                global $wpdb;
                return $wpdb->get_var($wpdb->prepare('SELECT option_value FROM ' . WPClone_Db::name($options)
                    . ' WHERE option_name = %s LIMIT 1', $name));
            }
            return $db->value('SELECT option_value FROM ' . WPClone_Db::name($options)
                . ' WHERE option_name = ' . $db->quote($name) . ' LIMIT 1');
        };
        $collations = null;  // table => the collations of the table and its columns
        if ($request->get_param('collations') && !WPClone_Db::is_sqlite()) {
            $collations = [];
            foreach ($db->rows('SELECT TABLE_NAME AS name, TABLE_COLLATION AS collation FROM information_schema.TABLES '
                . 'WHERE TABLE_SCHEMA = DATABASE() AND TABLE_COLLATION IS NOT NULL UNION SELECT TABLE_NAME, '
                . 'COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() '
                . 'AND COLLATION_NAME IS NOT NULL') as $row) {
                $collations[$row['name']][] = $row['collation'];
            }
        }
        $tables = [];
        foreach (self::tables($db) as $name) {
            $table = ['name' => $name, 'rows' => (int) $db->value('SELECT COUNT(*) FROM ' . WPClone_Db::name($name))];
            if ($request->get_param('checksums')) {
                $table['checksum'] = $name === $options ? self::options_checksum($db, $options)
                    : (string) $db->query('CHECKSUM TABLE ' . WPClone_Db::name($name))->fetch_row()[1];
            }
            if ($collations !== null) {
                $table['collations'] = array_values(array_unique($collations[$name] ?? []));
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
                'max_allowed_packet' => $db->max_allowed_packet(),
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

    /**
     * The options table's checksum for a restore's conflict check: every row but WP-Cron's schedule and
     * transients, which a live site (and the migrator's own installation, through wp-admin) rewrites
     * all day without anyone having changed its content. Order-independent, from each row's MD5.
     */
    private static function options_checksum(WPClone_Db $db, string $options): string
    {
        $row = "MD5(CONCAT_WS(0x1f, option_id, option_name, option_value, autoload))";
        return 'rows-' . (string) $db->value("SELECT CONCAT(COUNT(*), '-', COALESCE(SUM(CONV(SUBSTRING(h, 1, 15), 16, 10)), 0),"
            . " '-', COALESCE(SUM(CONV(SUBSTRING(h, 16, 15), 16, 10)), 0)) FROM (SELECT $row AS h FROM "
            . WPClone_Db::name($options) . " WHERE option_name NOT IN ('cron', 'doing_cron')"
            . " AND option_name NOT LIKE '\\_transient\\_%' AND option_name NOT LIKE '\\_site\\_transient\\_%') AS options_rows");
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
    public static function walk(string $folder, string $stream_path, callable $visit,
        array $rules = self::NO_RULES): int
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
            if (self::excluded($inner, $rules)) {
                continue;
            }
            if (is_link($path)) {
                $skipped++;
            } elseif (is_dir($path)) {
                $skipped += self::walk($path, $inner, $visit, $rules);
            } elseif (is_file($path)) {
                $visit($path, $inner);
            }
        }
        return $skipped;
    }
}
