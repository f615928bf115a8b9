<?php
/**
 * wpclone migrator: swapping an import in, and the backup that swap leaves behind.
 *
 * Commit moves the live entries of each imported folder aside and the staged ones in (renames only,
 * undone on failure), then swaps the tables with ONE multi-table RENAME TABLE, which MariaDB >= 10.6
 * and MySQL 8 run atomically. What was live becomes the backup (tables wpcb_<id>_<n>; folders outside
 * the document root, or .wpclone-backup-<id>/site beside deny files): kept when asked, so the import
 * can be rolled back, or dropped.
 */

if (!defined('ABSPATH')) {
    return;
}

final class WPClone_Backups
{
    /**
     * A backup keeps a folder's replaced entries where a rename reaches them (one filesystem), and
     * where the web does not. Outside the document root when the site may write there: the store
     * WPCLONE_BACKUP_DIR names (wp-config.php), or else .wpclone-backups-<site> beside the document
     * root, each backup in <store>/<id>/<folder>/KEPT, only for the site's own user (0700). Where
     * neither is writable on the live folder's filesystem (or WPCLONE_BACKUP_DIR is false), in
     * .wpclone-backup-<id>/KEPT beside the live entries, with files that deny the web any access to
     * it: DENY_FILES. A rollback moves only KEPT's entries back, never these.
     *
     * Apache 2.4 honours .htaccess (Require all denied; PHP off where mod_php allows php_flag; where
     * AllowOverride forbids a directive Apache answers 500, which serves nothing either), IIS honours
     * web.config, and index.php answers 404 to a request for the folder itself. nginx reads none of
     * these: its configuration must deny the folder, e.g. `location ~ /\.wpclone- { deny all; }` (most
     * hardened configurations deny every leading-dot path, `location ~ /\. { deny all; }`, but nginx's
     * default does not). The entries kept are production's own, as production served them.
     */
    const KEPT = 'site';
    const DENY_FILES = [
        '.htaccess' => "# wpclone backup: never served\n"
            . "<IfModule mod_authz_core.c>\n\tRequire all denied\n</IfModule>\n"
            . "<IfModule !mod_authz_core.c>\n\tOrder allow,deny\n\tDeny from all\n</IfModule>\n"
            . "<IfModule mod_php.c>\n\tphp_flag engine off\n</IfModule>\n"
            . "<IfModule mod_php7.c>\n\tphp_flag engine off\n</IfModule>\n"
            . "<IfModule mod_php5.c>\n\tphp_flag engine off\n</IfModule>\n",
        'web.config' => "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- wpclone backup: never served -->\n"
            . "<configuration>\n  <system.webServer>\n    <security>\n      <authorization>\n"
            . "        <remove users=\"*\" roles=\"\" verbs=\"\" />\n"
            . "        <add accessType=\"Deny\" users=\"*\" />\n"
            . "      </authorization>\n    </security>\n  </system.webServer>\n</configuration>\n",
        'index.php' => "<?php\n// wpclone backup: never served.\nhttp_response_code(404);\nexit;\n",
    ];

    /** Swaps a complete job in; returns the backup record of what it replaced. */
    public static function swap_in(WPClone_Db $db, WPClone_Job $job): array
    {
        $id = WPClone_Job::new_id();
        $backup = ['id' => $id, 'created' => time(), 'all_tables' => $job->data['tables'] === null,
            'tables' => [], 'imported' => [], 'folders' => [], 'rules' => WPClone_Site::rules_of($job->data)];
        $renames = [];
        if ($job->data['database']) {
            $incoming = array_column($job->data['staged'], 'staging', 'name');
            $live = WPClone_Site::tables($db);
            $replaced = $backup['all_tables'] ? $live : array_intersect($live, array_keys($incoming));
            foreach (array_values($replaced) as $i => $name) {
                $renames[] = [$name, "wpcb_{$id}_$i"];
                $backup['tables'][] = [$name, "wpcb_{$id}_$i"];
            }
            foreach ($incoming as $name => $staging) {
                $renames[] = [$staging, $name];
                $backup['imported'][] = $name;
            }
            self::keep_migrator_active($db, $incoming);
        }
        $moves = [];
        $outers = [];
        try {
            foreach (WPClone_Site::roots($job->data['roots']) as $root => $folder) {
                $outers[$folder] = self::make_outer($folder, $root, $id);
                $backup['folders'][$root] = ['backup' => $outers[$folder]] + self::swap_folder(
                    $folder, $root, "$folder/.wpclone-" . $job->id(), $outers[$folder] . '/' . self::KEPT,
                    $backup['rules'], $moves);
            }
            if ($renames) {
                self::rename_tables($db, $renames);
            }
        } catch (Throwable $error) {
            self::undo($moves);
            foreach ($outers as $folder => $outer) {
                self::remove_outer($folder, ['backup' => $outer]);  // never its content, were undo to fail
            }
            throw $error;
        }
        foreach (WPClone_Site::roots($job->data['roots']) as $folder) {
            @rmdir($folder . '/.wpclone-' . $job->id());
        }
        return $backup;
    }

    /** Puts a backup back in place of what is live now, and forgets it. */
    public static function rollback(WP_REST_Request $request): array
    {
        $lock = WPClone_Job::lock(true);
        $backup = self::load($request->get_param('backup'));
        $db = WPClone_Db::connect();
        $id = $backup['id'];
        if (($backup['kind'] ?? '') === 'merge') {
            WPClone_Merge::undo($db, $backup);
            @unlink(self::path($id));
            wp_cache_flush();
            return ['rolled_back' => $id];
        }
        $existing = $db->tables('');
        $replaced = $backup['all_tables'] ? WPClone_Site::tables($db) : array_intersect($backup['imported'], $existing);
        $renames = [];
        foreach (array_values($replaced) as $i => $name) {
            $renames[] = [$name, "wpcr_{$id}_$i"];
        }
        foreach ($backup['tables'] as [$name, $kept]) {
            if (!in_array($kept, $existing, true)) {
                throw new WPClone_Error('backup_damaged', "backup $id lost its table $kept", 409);
            }
            $renames[] = [$kept, $name];
        }
        $moves = [];
        try {
            foreach (WPClone_Site::roots(array_keys($backup['folders'])) as $root => $folder) {
                self::swap_folder($folder, $root, self::absolute($folder, $backup['folders'][$root]['kept']),
                    "$folder/.wpclone-trash-$id", WPClone_Site::rules_of($backup), $moves);
            }
            if ($renames) {
                self::rename_tables($db, $renames);
            }
        } catch (Throwable $error) {
            self::undo($moves);
            throw $error;
        }
        foreach (array_slice($renames, 0, count($replaced)) as [, $trash]) {
            $db->query('DROP TABLE IF EXISTS ' . WPClone_Db::name($trash));
        }
        foreach (WPClone_Site::roots(array_keys($backup['folders'])) as $root => $folder) {
            self::remove_folder("$folder/.wpclone-trash-$id");
            self::remove_outer($folder, $backup['folders'][$root]);
        }
        @unlink(self::path($id));
        wp_cache_flush();
        return ['rolled_back' => $id];
    }

    public static function delete(WP_REST_Request $request): array
    {
        $lock = WPClone_Job::lock(true);
        $backup = self::load($request->get_param('backup'));
        self::remove(WPClone_Db::connect(), $backup);
        return ['deleted' => $backup['id']];
    }

    public static function save(array $backup): void
    {
        file_put_contents(self::path($backup['id']), wp_json_encode($backup));
    }

    /** Drops a backup's tables and folders. */
    public static function remove(WPClone_Db $db, array $backup): void
    {
        foreach ($backup['tables'] as [, $kept]) {
            $db->query('DROP TABLE IF EXISTS ' . WPClone_Db::name($kept));
        }
        foreach (WPClone_Site::roots(array_keys($backup['folders'])) as $root => $folder) {
            self::remove_folder(self::absolute($folder, self::outer($backup['folders'][$root])));
            self::remove_outer($folder, $backup['folders'][$root]);
        }
        @unlink(self::path($backup['id']));
    }

    public static function all(): array
    {
        $backups = [];
        foreach ((array) glob(WPClone_Job::folder('backups') . '/*.json') as $path) {
            $backup = json_decode((string) file_get_contents($path), true);
            if (is_array($backup)) {
                $backups[] = ['id' => $backup['id'], 'created' => $backup['created'],
                    'tables' => array_column($backup['tables'], 0), 'folders' => array_keys($backup['folders'])];
            }
        }
        return $backups;
    }

    /** Deletes a folder and everything in it, never following a symbolic link out of it. */
    public static function remove_folder(string $path): void
    {
        if (is_link($path) || is_file($path)) {
            @unlink($path);
            return;
        }
        if (!is_dir($path)) {
            return;
        }
        foreach ((array) scandir($path) as $entry) {
            if ($entry !== '.' && $entry !== '..') {
                self::remove_folder("$path/$entry");
            }
        }
        @rmdir($path);
    }

    /** Creates a backup's folder with the files that keep the web out of it, before anything moves in. */
    private static function deny_web(string $outer): void
    {
        if (!is_dir($outer) && !mkdir($outer, 0755)) {
            throw new WPClone_Error('unwritable', "cannot create $outer", 500);
        }
        foreach (self::DENY_FILES as $name => $content) {
            if (file_put_contents("$outer/$name", $content) !== strlen($content)) {
                throw new WPClone_Error('unwritable', "cannot write $outer/$name", 500);
            }
            @chmod("$outer/$name", 0644);
        }
    }

    /** The folder that will hold a backup of $folder's entries: outside the document root if it can. */
    public static function make_outer(string $folder, string $root, string $id): string
    {
        $store = self::store($folder);
        if ($store === null) {
            self::deny_web("$folder/.wpclone-backup-$id");
            return "$folder/.wpclone-backup-$id";
        }
        if (!is_dir("$store/$id/$root") && !mkdir("$store/$id/$root", 0700, true)) {
            throw new WPClone_Error('unwritable', "cannot create a backup folder in $store", 500);
        }
        return "$store/$id/$root";
    }

    /**
     * The store outside the document root for backups of $folder, created on first use; null where the
     * site cannot write one on $folder's filesystem (a swap must stay a rename).
     */
    private static function store(string $folder): ?string
    {
        if (defined('WPCLONE_BACKUP_DIR')) {
            $store = WPCLONE_BACKUP_DIR === false ? '' : (string) WPCLONE_BACKUP_DIR;
        } else {
            $served = realpath((string) ($_SERVER['DOCUMENT_ROOT'] ?? '') ?: ABSPATH);
            $store = $served === false || dirname($served) === $served ? ''
                : dirname($served) . '/.wpclone-backups-' . substr(hash('sha256', ABSPATH), 0, 12);
        }
        if ($store === '' || (!is_dir($store) && !@mkdir($store, 0700, true))) {
            return null;
        }
        $real = realpath($store);
        foreach ([(string) ($_SERVER['DOCUMENT_ROOT'] ?? ''), ABSPATH, WP_CONTENT_DIR] as $served) {
            $served = $served === '' ? false : realpath($served);
            if ($real === false || ($served !== false && strpos($real . '/', rtrim($served, '/') . '/') === 0)) {
                return null;  // inside what is served: not a store
            }
        }
        $here = @stat($folder);
        $there = @stat($real);
        return $here !== false && $there !== false && $here['dev'] === $there['dev'] && is_writable($real) ? $real : null;
    }

    /** Removes what holds a backup's kept folder once nothing is kept in it (deny files and all). */
    public static function remove_outer(string $folder, array $record): void
    {
        $outer = self::absolute($folder, self::outer($record));
        @rmdir($outer . '/' . self::KEPT);
        if (file_exists($outer . '/' . self::KEPT)) {
            return;  // something is still kept there: it stays denied
        }
        foreach (array_keys(self::DENY_FILES) as $name) {
            if (is_file("$outer/$name")) {
                @unlink("$outer/$name");
            }
        }
        @rmdir($outer);
        if (strpos($outer, $folder . '/') !== 0) {
            @rmdir(dirname($outer));  // <store>/<id>, once its last folder is gone
        }
    }

    /** The folder a backup keeps (older backups kept the entries directly in .wpclone-backup-<id>). */
    private static function outer(array $folder): string
    {
        return $folder['backup'] ?? $folder['kept'];
    }

    /** A path of a backup record: absolute, or (records before the store) relative to the live folder. */
    private static function absolute(string $folder, string $path): string
    {
        return $path !== '' && $path[0] === '/' ? $path : "$folder/$path";
    }

    private static function load($id): array
    {
        $path = is_string($id) && preg_match('/^[0-9a-f]{12}$/', $id) ? self::path($id) : '';
        $backup = $path !== '' && is_file($path) ? json_decode((string) file_get_contents($path), true) : null;
        if (!is_array($backup)) {
            throw new WPClone_Error('unknown_backup', 'no backup ' . wp_json_encode($id) . ' on this site', 404);
        }
        return $backup;
    }

    private static function path(string $id): string
    {
        return WPClone_Job::folder("backups/$id.json");
    }

    private static function rename_tables(WPClone_Db $db, array $renames): void
    {
        $db->query('RENAME TABLE ' . implode(', ', array_map(function ($rename) {
            return WPClone_Db::name($rename[0]) . ' TO ' . WPClone_Db::name($rename[1]);
        }, $renames)));
    }

    /**
     * Moves the live entries of $folder (except what imports leave alone) into the folder $aside, then
     * the entries of the folder $incoming into $folder. Every rename is recorded in $moves so it can be undone.
     */
    private static function swap_folder(string $folder, string $root, string $incoming, string $aside, array $rules,
        array &$moves): array
    {
        if (!is_dir($aside) && !mkdir($aside, 0755)) {
            throw new WPClone_Error('unwritable', "cannot create $aside", 500);
        }
        foreach ((array) scandir($folder) as $entry) {
            if ($entry !== '.' && $entry !== '..' && !WPClone_Site::excluded("$root/$entry", $rules)) {
                self::move("$folder/$entry", "$aside/$entry", $moves);
            }
        }
        $imported = [];
        foreach ((array) @scandir($incoming) as $entry) {
            if ($entry !== '.' && $entry !== '..') {
                self::move("$incoming/$entry", "$folder/$entry", $moves);
                $imported[] = $entry;
            }
        }
        return ['kept' => $aside, 'imported' => $imported];
    }

    private static function move(string $from, string $to, array &$moves): void
    {
        if (!@rename($from, $to)) {
            throw new WPClone_Error('unwritable', "cannot move $from to $to", 500);
        }
        $moves[] = [$from, $to];
    }

    public static function undo(array $moves): void
    {
        foreach (array_reverse($moves) as [$from, $to]) {
            @rename($to, $from);
        }
    }

    /** A migrator running as a plugin stays active in the options it imports, or it would lock itself out. */
    private static function keep_migrator_active(WPClone_Db $db, array $incoming): void
    {
        $options = $incoming[WPClone_Site::table_prefix() . 'options'] ?? null;
        if ($options === null || WPClone_Site::is_must_use()) {
            return;
        }
        $table = WPClone_Db::name($options);
        $value = $db->value("SELECT option_value FROM $table WHERE option_name = 'active_plugins'");
        $active = $value === null ? [] : @unserialize($value, ['allowed_classes' => false]);
        $active = is_array($active) ? $active : [];
        $self = plugin_basename(WPCLONE_MIGRATOR_FILE);
        if (in_array($self, $active, true)) {
            return;
        }
        $active[] = $self;
        $db->query("INSERT INTO $table (option_name, option_value, autoload) VALUES ('active_plugins', "
            . $db->quote(serialize(array_values($active))) . ", 'yes') ON DUPLICATE KEY UPDATE option_value = VALUES(option_value)");
    }
}
