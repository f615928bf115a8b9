<?php
/**
 * wpclone migrator: merge restores, which keep production's own changes.
 *
 * export/fingerprints streams, for each table, every row's key and its fingerprint: the md5 of the row
 * as the database export streams it (WPClone_Frames::record, the values as raw bytes). The operator
 * recorded the same fingerprints of the source's rows when it took the clone, so it can tell which
 * rows production changed since.
 *
 * import/merge applies a merge that an import job staged (the rows to write, in staging tables) and a
 * plan names (per table: its key, the keys to delete, and a digest of what production held for every
 * key written when the operator planned). In ONE transaction it locks those rows, checks they still
 * match the digest (else nothing is written: production changed meanwhile), keeps them in backup
 * tables, deletes them and inserts the staged rows. A rollback of that backup puts exactly those rows
 * back and removes the rows the merge inserted. InnoDB tables only: MyISAM has no transactions.
 */

if (!defined('ABSPATH')) {
    return;
}

final class WPClone_Merge
{
    const KEYS_PER_QUERY = 500;
    const MODES = ['rows', 'replace', 'create'];

    public static function fingerprints(WP_REST_Request $request)
    {
        $db = WPClone_Db::connect();
        $tables = WPClone_Export::chosen_tables($db, $request->get_param('tables'));
        WPClone_Stream::begin();
        WPClone_Stream::finish(function () use ($db, $tables) {
            $rows = 0;
            foreach ($tables as $table) {
                $rows += WPClone_Export::table($db, $table, MB_IN_BYTES, function (array $row, array $key) {
                    return WPClone_Frames::record([WPClone_Frames::record($key), md5(WPClone_Frames::record($row), true)]);
                });
            }
            return ['tables' => count($tables), 'rows' => $rows];
        });
    }

    /** Each file's stream path and fingerprint (md5 of its bytes), as export/files walks them: R records. */
    public static function file_fingerprints(WP_REST_Request $request)
    {
        $include = $request->get_param('include');
        $roots = WPClone_Site::roots(is_array($include) ? $include : WPClone_Site::ROOTS);
        $rules = WPClone_Site::rules($request->get_param('dropins'), $request->get_param('exclude'));
        WPClone_Stream::begin();
        WPClone_Stream::finish(function () use ($roots, $rules) {
            $buffer = '';
            $files = 0;
            foreach ($roots as $name => $folder) {
                WPClone_Site::walk($folder, $name, function ($path, $stream_path) use (&$buffer, &$files) {
                    $digest = @md5_file($path, true);
                    if ($digest !== false) {
                        $buffer .= WPClone_Frames::record([$stream_path, $digest]);
                        $files++;
                    }
                    if (strlen($buffer) >= MB_IN_BYTES) {
                        WPClone_Stream::send(WPClone_Frames::frame('R', $buffer));
                        $buffer = '';
                    }
                }, $rules);
            }
            if ($buffer !== '') {
                WPClone_Stream::send(WPClone_Frames::frame('R', $buffer));
            }
            return ['files' => $files];
        });
    }

    /** Applies a staged merge ({job, chunks: {database, files}, plan, files?, backup?}); all of it or nothing. */
    public static function merge(WP_REST_Request $request): array
    {
        return WPClone_Import::finishing($request, false, function (WPClone_Db $db, WPClone_Job $job) use ($request): array {
            $plan = $request->get_param('plan');
            if (!is_array($plan) || array_values($plan) !== $plan) {
                throw new WPClone_Error('bad_request', 'plan must be a list of tables');
            }
            $backup = self::apply($db, $job, $plan, $request->get_param('files'));
            return [$backup, ['tables' => count($backup['merged']) + count($backup['created_tables']),
                'rows' => $backup['rows'], 'files' => count($backup['files'] ?? [])]];
        });
    }

    private static function apply(WPClone_Db $db, WPClone_Job $job, array $plan, $files): array
    {
        $db->query('SET SESSION unique_checks = 1');  // a merge must never let a duplicate unique key in
        $staged = array_column($job->data['staged'], null, 'name');
        $live = WPClone_Site::tables($db);
        $id = WPClone_Job::new_id();
        $backup = ['id' => $id, 'created' => time(), 'kind' => 'merge', 'all_tables' => false, 'tables' => [],
            'imported' => [], 'folders' => [], 'rules' => $job->data['rules'], 'merged' => [],
            'created_tables' => [], 'rows' => 0];
        $steps = self::checked_plan($plan, $staged, $live);
        foreach ($steps as $n => $step) {  // DDL ends a transaction: the backup tables come first
            if ($step['mode'] !== 'create') {
                $kept = "wpcb_{$id}_$n";
                $db->query('CREATE TABLE ' . WPClone_Db::name($kept) . ' LIKE ' . WPClone_Db::name($step['name']));
                $backup['tables'][] = [$step['name'], $kept];
            }
        }
        $kept = array_column($backup['tables'], 1, 0);
        try {
            $db->query('START TRANSACTION');
            foreach ($steps as $step) {
                $name = $step['name'];
                if ($step['mode'] === 'rows') {
                    $backup['merged'][$name] = self::merge_rows($db, $step, $staged[$name] ?? null, $kept[$name], $backup['rows']);
                } elseif ($step['mode'] === 'replace') {
                    $db->query('INSERT INTO ' . WPClone_Db::name($kept[$name]) . ' SELECT * FROM ' . WPClone_Db::name($name));
                    $db->query('DELETE FROM ' . WPClone_Db::name($name));
                    $backup['rows'] += self::insert_staged($db, $name, $staged[$name]);
                    $backup['merged'][$name] = ['replace' => true];
                }
            }
            // The files last, while the rows are locked: renames, undone if anything fails before COMMIT.
            $moves = [];
            if (is_array($files)) {
                self::merge_files($job, $files, $backup, $moves);
            }
            $db->query('COMMIT');
        } catch (Throwable $error) {
            $db->query('ROLLBACK');
            WPClone_Backups::undo($moves ?? []);
            foreach ($kept as $table) {
                $db->query('DROP TABLE IF EXISTS ' . WPClone_Db::name($table));
            }
            foreach ($backup['folders'] as $root => $record) {
                WPClone_Backups::remove_outer(WPClone_Site::roots([$root])[$root], $record);
            }
            throw $error;
        }
        // Tables production did not have: their keys first (to each other's staged copies, or to live tables).
        $created = array_values(array_map(function (array $step) use ($staged) {
            return $staged[$step['name']];
        }, array_filter($steps, function (array $step) {
            return $step['mode'] === 'create';
        })));
        WPClone_Import::add_foreign_keys($db, $created, array_column($created, 'staging', 'name'));
        foreach ($steps as $step) {
            if ($step['mode'] === 'create') {  // a table production did not have: in whole, at once
                $db->query('RENAME TABLE ' . WPClone_Db::name($staged[$step['name']]['staging']) . ' TO '
                    . WPClone_Db::name($step['name']));
                $backup['created_tables'][] = $step['name'];
                $backup['rows'] += (int) $staged[$step['name']]['rows'];
            }
        }
        return $backup;
    }

    /**
     * Merges files ({delete: [stream paths], expect: digest}): every staged file replaces or joins the live
     * one, every deleted one goes; what they replace or delete is kept in the backup's folders first. The
     * digest covers what was live for each path (md5, or nothing) when the operator planned.
     */
    private static function merge_files(WPClone_Job $job, array $files, array &$backup, array &$moves): void
    {
        $written = [];
        foreach ($job->manifest_numbers() as $seq) {
            foreach ($job->manifest($seq)['pieces'] as [$path]) {
                $written[(string) $path] = true;
            }
        }
        $deleted = [];
        foreach ((array) ($files['delete'] ?? []) as $path) {
            if (!is_string($path) || WPClone_Site::excluded($path, WPClone_Site::rules_of($job->data))) {
                throw new WPClone_Error('bad_request', 'a file to delete must be a stream path of the merged folders');
            }
            $deleted[$path] = true;
        }
        $paths = [];  // in the order of their key records, as the operator's digest takes them
        foreach (array_keys($written + $deleted) as $path) {
            $paths[WPClone_Frames::record([(string) $path])] = (string) $path;
        }
        ksort($paths, SORT_STRING);
        $digest = hash_init('md5');
        $live = [];
        foreach ($paths as $record => $path) {
            $live[$path] = self::live_path($job, $path);
            $now = is_file($live[$path]) && !is_link($live[$path]) ? md5_file($live[$path], true) : false;
            hash_update($digest, pack('N', strlen($record)) . $record . ($now === false ? str_repeat("\0", 16) : $now));
        }
        if (!is_string($files['expect'] ?? null) || !hash_equals(hash_final($digest), $files['expect'])) {
            throw new WPClone_Error('production_changed', 'files changed in production while the merge was planned; '
                . 'nothing was written (restore again)', 409);
        }
        $backup['files'] = [];
        foreach ($paths as $path) {
            $root = explode('/', $path, 2)[0];
            $folder = WPClone_Site::roots([$root])[$root];
            if (!isset($backup['folders'][$root])) {
                $outer = WPClone_Backups::make_outer($folder, $root, $backup['id']);
                $backup['folders'][$root] = ['backup' => $outer, 'kept' => $outer . '/' . WPClone_Backups::KEPT];
            }
            $kept = $backup['folders'][$root]['kept'] . '/' . substr($path, strlen($root) + 1);
            $was = is_file($live[$path]);
            if ($was) {
                self::move_into($live[$path], $kept, $moves);
            }
            if (isset($written[$path])) {
                self::move_into($folder . '/.wpclone-' . $job->id() . '/' . substr($path, strlen($root) + 1),
                    $live[$path], $moves);
            }
            $backup['files'][] = [$path, $was];
        }
    }

    private static function live_path(WPClone_Job $job, string $path): string
    {
        $segments = explode('/', $path);
        $root = array_shift($segments);
        if (!in_array($root, $job->data['roots'], true) || !$segments || array_intersect($segments, ['', '.', '..'])
            || strpos($path, "\0") !== false) {
            throw new WPClone_Error('bad_path', 'refusing file path ' . wp_json_encode($path) . ' in a merge');
        }
        return WPClone_Site::roots([$root])[$root] . '/' . implode('/', $segments);
    }

    private static function move_into(string $from, string $to, array &$moves): void
    {
        if (!is_dir(dirname($to)) && !@mkdir(dirname($to), 0755, true)) {
            throw new WPClone_Error('unwritable', 'cannot create the folder of ' . $to, 500);
        }
        if (!@rename($from, $to)) {
            throw new WPClone_Error('unwritable', "cannot move $from to $to", 500);
        }
        $moves[] = [$from, $to];
    }

    /** The plan's entries, each a table of this site in a mode it can be merged in. */
    private static function checked_plan(array $plan, array $staged, array $live): array
    {
        $steps = [];
        $seen = [];
        foreach ($plan as $entry) {
            $name = is_array($entry) ? ($entry['name'] ?? null) : null;
            $mode = is_array($entry) ? ($entry['mode'] ?? null) : null;
            if (!is_string($name) || strpos($name, WPClone_Site::table_prefix()) !== 0
                || preg_match(WPClone_Site::OWN_TABLE, $name) || !in_array($mode, self::MODES, true) || isset($seen[$name])) {
                throw new WPClone_Error('bad_request', 'each entry of a merge plan names a different table of this site '
                    . 'and a mode (' . implode(', ', self::MODES) . ')');
            }
            $seen[$name] = true;
            if ($mode === 'create' ? in_array($name, $live, true) : !in_array($name, $live, true)) {
                throw new WPClone_Error('production_changed', "table $name " . ($mode === 'create'
                    ? 'appeared in production' : 'is not in production any more') . '; nothing was written', 409);
            }
            if ($mode !== 'rows' && !isset($staged[$name])) {
                throw new WPClone_Error('bad_request', "table $name: mode $mode needs its rows staged");
            }
            $steps[] = $entry;
        }
        return $steps;
    }

    /** Merges one table by its key; returns what a rollback needs. Adds the rows written to $rows. */
    private static function merge_rows(WPClone_Db $db, array $step, ?array $staging, string $kept, int &$rows): array
    {
        $name = $step['name'];
        $columns = $db->rows('SHOW FULL COLUMNS FROM ' . WPClone_Db::name($name));
        $key = WPClone_Export::keyset_columns($db, $name, $columns);
        if (!$key || array_column($key, 'Field') !== $step['key']) {
            throw new WPClone_Error('production_changed', "the key of table $name changed in production; nothing was written", 409);
        }
        $deleted = self::keys($step['delete'] ?? [], count($key));
        $written = $staging === null ? [] : self::staged_keys($db, $staging['staging'], $key);
        $keys = array_values(array_unique(array_merge($deleted, $written)));
        sort($keys, SORT_STRING);
        $now = self::locked_fingerprints($db, $name, $columns, $key, $keys);
        $digest = hash_init('md5');
        foreach ($keys as $record) {
            hash_update($digest, pack('N', strlen($record)) . $record . ($now[$record] ?? str_repeat("\0", 16)));
        }
        if (!is_string($step['expect'] ?? null) || !hash_equals(hash_final($digest), $step['expect'])) {
            throw new WPClone_Error('production_changed', "rows of $name changed in production while the merge was "
                . 'planned; nothing was written (restore again)', 409);
        }
        foreach (array_chunk($keys, self::KEYS_PER_QUERY) as $batch) {
            $where = self::where($db, $key, $batch);
            $db->query('INSERT INTO ' . WPClone_Db::name($kept) . ' SELECT * FROM ' . WPClone_Db::name($name) . " WHERE $where");
            $db->query('DELETE FROM ' . WPClone_Db::name($name) . " WHERE $where");
        }
        $rows += count(array_intersect($deleted, array_keys($now)));
        if ($staging !== null) {
            $rows += self::insert_staged($db, $name, $staging);
        }
        $inserted = array_values(array_diff($written, array_keys($now)));
        return ['key' => array_column($key, 'Field'), 'inserted' => array_map('base64_encode', $inserted)];
    }

    private static function insert_staged(WPClone_Db $db, string $name, array $staging): int
    {
        $columns = implode(', ', array_map(['WPClone_Db', 'name'], $staging['columns']));
        try {
            $db->query('INSERT INTO ' . WPClone_Db::name($name) . " ($columns) SELECT $columns FROM "
                . WPClone_Db::name($staging['staging']));
        } catch (WPClone_Error $error) {
            throw new WPClone_Error('merge_conflict', "table $name: a row of the clone collides with one production "
                . 'added (' . substr($error->getMessage(), 0, 200) . '); nothing was written', 409);
        }
        return (int) $staging['rows'];
    }

    /** @return string[] the key records (base64 in the plan), each of $width values */
    private static function keys($encoded, int $width): array
    {
        if (!is_array($encoded)) {
            throw new WPClone_Error('bad_request', 'the keys to delete must be a list');
        }
        $keys = [];
        foreach ($encoded as $text) {
            $record = is_string($text) ? base64_decode($text, true) : false;
            if ($record === false) {
                throw new WPClone_Error('bad_request', 'a key to delete is not base64');
            }
            WPClone_Frames::single_record($record, $width);
            $keys[] = $record;
        }
        return $keys;
    }

    /** @return string[] the key record of every row of a table */
    private static function staged_keys(WPClone_Db $db, string $table, array $key): array
    {
        $keys = [];
        $result = $db->query('SELECT ' . implode(', ', array_map(function ($column) {
            return WPClone_Db::name($column['Field']);
        }, $key)) . ' FROM ' . WPClone_Db::name($table), true);
        while (($row = $result->fetch_row()) !== null) {
            $keys[] = WPClone_Frames::record($row);
        }
        $result->free();
        return $keys;
    }

    /** @return array<string, string> key record => fingerprint of the rows of $keys, locked FOR UPDATE */
    private static function locked_fingerprints(WPClone_Db $db, string $name, array $columns, array $key, array $keys): array
    {
        $fields = array_column($columns, 'Field');
        $positions = array_map(function ($column) use ($fields) {
            return array_search($column['Field'], $fields, true);
        }, $key);
        $select = 'SELECT ' . implode(', ', array_map(['WPClone_Db', 'name'], $fields)) . ' FROM ' . WPClone_Db::name($name);
        $now = [];
        foreach (array_chunk($keys, self::KEYS_PER_QUERY) as $batch) {
            $result = $db->query($select . ' WHERE ' . self::where($db, $key, $batch) . ' FOR UPDATE');
            while (($row = $result->fetch_row()) !== null) {
                $now[WPClone_Frames::record(array_map(function ($position) use ($row) {
                    return $row[$position];
                }, $positions))] = md5(WPClone_Frames::record($row), true);
            }
            $result->free();
        }
        return $now;
    }

    /** "(k1, k2) IN ((v, v), ...)" for key records, each value a literal that compares as its column does. */
    private static function where(WPClone_Db $db, array $key, array $records): string
    {
        $tuples = [];
        foreach ($records as $record) {
            $values = WPClone_Frames::single_record($record, count($key));
            $literals = [];
            foreach ($key as $i => $column) {
                $literals[] = WPClone_Export::literal($db, $column, (string) $values[$i]);
            }
            $tuples[] = '(' . implode(', ', $literals) . ')';
        }
        $names = implode(', ', array_map(function ($column) {
            return WPClone_Db::name($column['Field']);
        }, $key));
        return "($names) IN (" . implode(', ', $tuples) . ')';
    }

    /** Puts a merge's backup back: the rows it replaced or deleted, without the rows it inserted or the tables it created. */
    public static function undo(WPClone_Db $db, array $backup): void
    {
        $db->query('SET SESSION unique_checks = 1');
        $existing = $db->tables('');
        foreach ($backup['tables'] as [$name, $kept]) {
            if (!in_array($kept, $existing, true) || !in_array($name, $existing, true)) {
                throw new WPClone_Error('backup_damaged', 'backup ' . $backup['id'] . " lost its table $kept, or $name is gone", 409);
            }
        }
        try {
            $db->query('START TRANSACTION');
            foreach ($backup['tables'] as [$name, $kept]) {
                $merged = $backup['merged'][$name] ?? ['replace' => true];
                if (!empty($merged['replace'])) {
                    $db->query('DELETE FROM ' . WPClone_Db::name($name));
                } else {
                    $columns = array_column($db->rows('SHOW FULL COLUMNS FROM ' . WPClone_Db::name($name)), null, 'Field');
                    $key = array_map(function ($field) use ($columns) {
                        return $columns[$field];
                    }, (array) $merged['key']);
                    $keys = array_merge(self::keys($merged['inserted'], count($key)), self::staged_keys($db, $kept, $key));
                    foreach (array_chunk($keys, self::KEYS_PER_QUERY) as $batch) {
                        $db->query('DELETE FROM ' . WPClone_Db::name($name) . ' WHERE ' . self::where($db, $key, $batch));
                    }
                }
                $db->query('INSERT INTO ' . WPClone_Db::name($name) . ' SELECT * FROM ' . WPClone_Db::name($kept));
            }
            $db->query('COMMIT');
        } catch (Throwable $error) {
            $db->query('ROLLBACK');
            throw $error;
        }
        foreach ($backup['tables'] as [, $kept]) {
            $db->query('DROP TABLE IF EXISTS ' . WPClone_Db::name($kept));
        }
        foreach ($backup['created_tables'] as $table) {
            $db->query('DROP TABLE IF EXISTS ' . WPClone_Db::name($table));
        }
        self::undo_files($backup);
    }

    /** Puts back the files a merge replaced or deleted, and removes the ones it added. */
    private static function undo_files(array $backup): void
    {
        foreach ($backup['files'] ?? [] as [$path, $was]) {
            $root = explode('/', (string) $path, 2)[0];
            $relative = substr((string) $path, strlen($root) + 1);
            $live = WPClone_Site::roots([$root])[$root] . '/' . $relative;
            if (is_file($live) || is_link($live)) {
                @unlink($live);
            }
            if ($was) {
                $moves = [];
                self::move_into($backup['folders'][$root]['kept'] . '/' . $relative, $live, $moves);
            }
        }
        foreach ($backup['folders'] as $root => $record) {
            $folder = WPClone_Site::roots([$root])[$root];
            WPClone_Backups::remove_folder($record['kept']);
            WPClone_Backups::remove_outer($folder, $record);
        }
    }
}
