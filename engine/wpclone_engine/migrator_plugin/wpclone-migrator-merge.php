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

    /** Applies a staged merge ({job, chunks: {database}, plan, backup?}); all of it or, on any error, nothing. */
    public static function merge(WP_REST_Request $request): array
    {
        ignore_user_abort(true);
        if (function_exists('set_time_limit')) {
            @set_time_limit(0);
        }
        $lock = WPClone_Job::lock(true);
        $job = WPClone_Job::load($request->get_param('job'));
        $chunks = (array) $request->get_param('chunks');
        $plan = $request->get_param('plan');
        $db = WPClone_Db::connect();
        try {
            if ($job->data['seq'] !== (int) ($chunks['database'] ?? 0)) {
                throw new WPClone_Error('incomplete', sprintf('%d database chunks were sent, %d arrived',
                    (int) ($chunks['database'] ?? 0), $job->data['seq']), 409);
            }
            foreach ($job->data['staged'] as $table) {
                if (!$table['done']) {
                    throw new WPClone_Error('incomplete', 'table ' . $table['name'] . ' was not received completely', 409);
                }
            }
            if (!is_array($plan) || array_values($plan) !== $plan) {
                throw new WPClone_Error('bad_request', 'plan must be a list of tables');
            }
            $backup = self::apply($db, $job, $plan);
        } catch (Throwable $error) {
            WPClone_Import::discard($db, $job);
            throw $error;
        }
        WPClone_Import::discard($db, $job);
        wp_cache_flush();
        $answer = ['tables' => count($backup['merged']) + count($backup['created_tables']), 'rows' => $backup['rows']];
        if (!$request->get_param('backup')) {
            WPClone_Backups::remove($db, $backup);
            return $answer + ['backup' => null];
        }
        WPClone_Backups::save($backup);
        return $answer + ['backup' => $backup['id']];
    }

    private static function apply(WPClone_Db $db, WPClone_Job $job, array $plan): array
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
            $db->query('COMMIT');
        } catch (Throwable $error) {
            $db->query('ROLLBACK');
            foreach ($kept as $table) {
                $db->query('DROP TABLE IF EXISTS ' . WPClone_Db::name($table));
            }
            throw $error;
        }
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
    }
}
