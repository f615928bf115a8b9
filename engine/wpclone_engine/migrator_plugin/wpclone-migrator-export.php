<?php
/**
 * wpclone migrator: the export streams. The database goes out table by table, schema first, then rows
 * read in primary-key order a slice at a time with an unbuffered query (a table is never held in
 * memory); wp-content's folders go out file by file in slices. An interrupted export goes on where its
 * reader says it stopped: past a table it finished, or in a table after a key; in a file, at a byte.
 */

if (!defined('ABSPATH')) {
    return;
}

final class WPClone_Export
{
    /** Rows one keyset query reads; the rows are streamed, not held. */
    const ROWS_PER_QUERY = 2000;

    public static function database(WP_REST_Request $request)
    {
        $db = WPClone_Db::connect();
        [$tables, $after] = self::resume_point($db, $request, self::chosen_tables($db, $request->get_param('tables')));
        $slice = self::slice_bytes($request);
        WPClone_Stream::begin();
        WPClone_Stream::finish(function () use ($db, $tables, $slice, $after) {
            $rows = 0;
            foreach ($tables as $n => $table) {
                $rows += self::table($db, $table, $slice, null, $n === 0 ? $after : null);
            }
            return ['tables' => count($tables), 'rows' => $rows] + WPClone_Site::database_objects($db);
        });
    }

    public static function files(WP_REST_Request $request)
    {
        $include = $request->get_param('include');
        $roots = WPClone_Site::roots(is_array($include) ? $include : WPClone_Site::ROOTS);
        $rules = WPClone_Site::rules($request->get_param('dropins'), $request->get_param('exclude'));
        $slice = self::slice_bytes($request);
        $only = $request->get_param('paths');  // a merge's: only these stream paths
        $only = is_array($only) ? array_fill_keys(array_filter($only, 'is_string'), true) : null;
        $resume = self::files_resume_point($request);
        WPClone_Stream::begin();
        WPClone_Stream::finish(function () use ($roots, $rules, $slice, $only, $resume) {
            $files = 0;
            $bytes = 0;
            $skipped = 0;
            foreach ($roots as $name => $folder) {
                $skipped += WPClone_Site::walk($folder, $name, function ($path, $stream_path) use ($slice, &$files, &$bytes, $only, &$resume) {
                    if ($only !== null && !isset($only[$stream_path])) {
                        return;
                    }
                    $offset = 0;
                    if ($resume !== null) {  // the files before the one the export goes on in were sent
                        if ($stream_path !== $resume[0]) {
                            return;
                        }
                        [, $offset] = $resume;
                        $resume = null;
                    }
                    $bytes += self::file($path, $stream_path, $slice, $offset);
                    $files++;
                }, $rules);
            }
            if ($resume !== null) {
                throw new WPClone_Error('resume_point_gone', "the export cannot go on in {$resume[0]}: it is gone", 409);
            }
            $dropins_left = isset($roots['content']) && !$rules['dropins'] ? WPClone_Site::dropins() : [];
            return ['files' => $files, 'bytes' => $bytes, 'skipped_links' => $skipped, 'dropins_left' => $dropins_left];
        });
    }

    public static function chosen_tables(WPClone_Db $db, $wanted): array
    {
        $tables = WPClone_Site::tables($db);
        if ($wanted === null) {
            return $tables;
        }
        if (!is_array($wanted)) {
            throw new WPClone_Error('bad_request', 'tables must be a list of table names');
        }
        $unknown = array_diff($wanted, $tables);
        if ($unknown) {
            throw new WPClone_Error('unknown_table', 'no such table on this site: ' . implode(', ', $unknown), 404);
        }
        return array_values(array_intersect($tables, $wanted));
    }

    /**
     * The tables an export that goes on still has to send, and the key the first one goes on after (its
     * values base64-encoded, as the reader saw them), or null for the whole table.
     */
    private static function resume_point(WPClone_Db $db, WP_REST_Request $request, array $tables): array
    {
        $past = $request->get_param('resume_past');
        $from = $request->get_param('resume_from');
        if ($past === null && $from === null) {
            return [$tables, null];
        }
        $at = array_search($past ?? $from, $tables, true);
        if ($at === false) {
            throw new WPClone_Error('bad_request', 'an export can only go on at a table it sends');
        }
        if ($past !== null) {
            return [array_slice($tables, $at + 1), null];
        }
        $after = $request->get_param('resume_after');
        if ($after !== null) {
            if (!is_array($after) || !$after || count($after) > 16) {
                throw new WPClone_Error('bad_request', 'resume_after must be the values of a key');
            }
            $after = array_map(function ($value) {
                $decoded = is_string($value) ? base64_decode($value, true) : false;
                if ($decoded === false) {
                    throw new WPClone_Error('bad_request', 'resume_after must be base64-encoded values');
                }
                return $decoded;
            }, array_values($after));
            $key = self::keyset_columns($db, $tables[$at], $db->rows('SHOW FULL COLUMNS FROM ' . WPClone_Db::name($tables[$at])));
            if (count($after) !== count($key)) {
                throw new WPClone_Error('bad_request', "table {$tables[$at]} cannot go on after that key");
            }
        }
        return [array_slice($tables, $at), $after];
    }

    /**
     * The file a files export that goes on begins with (its stream path, as the walk names it) and the
     * byte of it to go on from (its reader took those before it), or null for the whole export.
     */
    private static function files_resume_point(WP_REST_Request $request): ?array
    {
        $file = $request->get_param('resume_file');
        $offset = $request->get_param('resume_offset');
        if ($file === null && $offset === null) {
            return null;
        }
        if (!is_string($file) || $file === '' || strlen($file) > 4096 || !is_int($offset) || $offset < 0) {
            throw new WPClone_Error('bad_request', 'resume_file must be a stream path and resume_offset a byte of it');
        }
        return [$file, $offset];
    }

    private static function slice_bytes(WP_REST_Request $request): int
    {
        $wanted = (int) ($request->get_param('slice_bytes') ?: MB_IN_BYTES);
        return max(16 * KB_IN_BYTES, min($wanted, 16 * MB_IN_BYTES));
    }

    /**
     * Streams one table: T, R..., E. Returns its row count. Each R record is the row itself, or what
     * $record makes of the row and its key's values (the fingerprints stream). With $after, only the rows
     * after that key (an export that goes on); E counts the rows this stream sent.
     */
    public static function table(WPClone_Db $db, string $table, int $slice, ?callable $record = null,
                                 ?array $after = null): int
    {
        $columns = $db->rows('SHOW FULL COLUMNS FROM ' . WPClone_Db::name($table));
        $names = array_column($columns, 'Field');
        $key = self::keyset_columns($db, $table, $columns);  // as long as $after (resume_point checked it)
        WPClone_Stream::send(WPClone_Frames::json('T', [
            'name' => $table,
            'create' => $db->query('SHOW CREATE TABLE ' . WPClone_Db::name($table))->fetch_row()[1],
            'columns' => $names,
            'key' => array_column($key, 'Field'),
        ]));
        $select = 'SELECT ' . implode(', ', array_map(['WPClone_Db', 'name'], $names))
            . ' FROM ' . WPClone_Db::name($table);
        $positions = array_map(function ($column) use ($names) {
            return array_search($column['Field'], $names, true);
        }, $key);
        $buffer = '';
        $count = 0;
        $emit = function (array $row) use (&$buffer, &$count, $slice, $record, $positions) {
            $buffer .= $record === null ? WPClone_Frames::record($row) : $record($row, array_map(function ($position) use ($row) {
                return $row[$position];
            }, $positions));
            $count++;
            if (strlen($buffer) >= $slice) {
                WPClone_Stream::send(WPClone_Frames::frame('R', $buffer));
                $buffer = '';
            }
        };
        if (!$key) {
            // No primary or unique key to walk: one unbuffered scan, still row by row.
            $result = $db->query($select, true);
            while (($row = $result->fetch_row()) !== null) {
                $emit($row);
            }
            $result->free();
        } else {
            $order = ' ORDER BY ' . implode(', ', array_map(['WPClone_Db', 'name'], array_column($key, 'Field')))
                . ' LIMIT ' . self::ROWS_PER_QUERY;
            do {
                $where = $after === null ? '' : ' WHERE ' . self::after($db, $key, $after);
                $result = $db->query($select . $where . $order, true);
                $read = 0;
                while (($row = $result->fetch_row()) !== null) {
                    $emit($row);
                    $after = array_map(function ($position) use ($row) {
                        return $row[$position];
                    }, $positions);
                    $read++;
                }
                $result->free();
            } while ($read === self::ROWS_PER_QUERY);
        }
        if ($buffer !== '') {
            WPClone_Stream::send(WPClone_Frames::frame('R', $buffer));
        }
        WPClone_Stream::send(WPClone_Frames::json('E', ['name' => $table, 'rows' => $count]));
        return $count;
    }

    /**
     * The columns to walk the table by: its primary key, else a unique key of NOT NULL columns, else
     * none (the table is then read in one unbuffered scan).
     */
    public static function keyset_columns(WPClone_Db $db, string $table, array $columns): array
    {
        $by_name = array_column($columns, null, 'Field');
        $indexes = [];
        foreach ($db->rows('SHOW INDEX FROM ' . WPClone_Db::name($table)) as $part) {
            if ($part['Non_unique'] === '0') {
                $indexes[$part['Key_name']][(int) $part['Seq_in_index']] = $part;
            }
        }
        uksort($indexes, function ($a, $b) {
            return ($b === 'PRIMARY') <=> ($a === 'PRIMARY');
        });
        foreach ($indexes as $parts) {
            ksort($parts);
            $usable = true;
            foreach ($parts as $part) {
                $column = $by_name[$part['Column_name']] ?? null;
                $usable = $usable && $column !== null && $column['Null'] === 'NO' && $part['Sub_part'] === null;
            }
            if ($usable) {
                return array_map(function ($part) use ($by_name) {
                    return $by_name[$part['Column_name']];
                }, array_values($parts));
            }
        }
        return [];
    }

    /** The keyset condition "(k1, k2, ...) > (v1, v2, ...)" in the key columns' own order. */
    private static function after(WPClone_Db $db, array $key, array $values): string
    {
        $alternatives = [];
        foreach ($key as $i => $column) {
            $terms = [];
            for ($j = 0; $j < $i; $j++) {
                $terms[] = WPClone_Db::name($key[$j]['Field']) . ' = ' . self::literal($db, $key[$j], $values[$j]);
            }
            $terms[] = WPClone_Db::name($column['Field']) . ' > ' . self::literal($db, $column, $values[$i]);
            $alternatives[] = '(' . implode(' AND ', $terms) . ')';
        }
        return '(' . implode(' OR ', $alternatives) . ')';
    }

    /** A value as a literal that compares the way the column orders: numbers as numbers, text in its collation. */
    public static function literal(WPClone_Db $db, array $column, string $value): string
    {
        if (preg_match('/^(tinyint|smallint|mediumint|int|integer|bigint|decimal|numeric|float|double|year)\b/i', $column['Type'])
            && preg_match('/^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/', $value)) {
            return $value;
        }
        if ($column['Collation'] !== null && $column['Collation'] !== '') {
            $charset = strtok($column['Collation'], '_');
            return 'CONVERT(_binary' . $db->quote($value) . ' USING ' . $charset . ') COLLATE ' . $column['Collation'];
        }
        return '_binary' . $db->quote($value);
    }

    /** Streams one file: F, then D slices of its bytes from $offset on. Returns how many it sent. */
    private static function file(string $path, string $stream_path, int $slice, int $offset = 0): int
    {
        $handle = @fopen($path, 'rb');
        if ($handle === false) {
            throw new WPClone_Error('unreadable_file', 'cannot read ' . $stream_path, 500);
        }
        $stat = fstat($handle);
        $size = (int) $stat['size'];
        if ($offset > $size || ($offset > 0 && fseek($handle, $offset) !== 0)) {
            fclose($handle);
            throw new WPClone_Error('file_changed', "$stream_path is shorter than the $offset bytes already sent", 409);
        }
        WPClone_Stream::send(WPClone_Frames::frame('F', WPClone_Frames::record([
            $stream_path, (string) $size, (string) $stat['mtime'], (string) ($stat['mode'] & 0777),
        ])));
        $left = $size - $offset;
        while ($left > 0) {
            $data = fread($handle, min($slice, $left));
            if ($data === false || $data === '') {
                fclose($handle);
                throw new WPClone_Error('file_changed', $stream_path . ' shrank while it was being read', 500);
            }
            WPClone_Stream::send(WPClone_Frames::frame('D', $data));
            $left -= strlen($data);
        }
        fclose($handle);
        return $size - $offset;
    }
}
