<?php
/**
 * The migrator's import of database chunks, run by tests/security outside WordPress: the few WordPress
 * names it uses are stood in for here; everything else is the plugin's own code.
 *
 *   php migrator_import.php definitions  stdin [{create, name, staging}...] -> [{statement} or {error, message}...]
 *   php migrator_import.php foreign_keys stdin [{clause, name}...] -> [{key} or {error, message}...]
 *   php migrator_import.php chunk        stdin a database chunk (H, T, R, E frames) -> {rows, tables} or {error, message}
 *   php migrator_import.php query        stdin one query string -> {ok} or {error, message}
 *
 * The database is WPCLONE_DB_HOST (host:port), _USER, _PASSWORD, _NAME; the job's folder WPCLONE_CONTENT_DIR.
 * A chunk's staging tables are dropped before the answer. Any other exception than a WPClone_Error
 * ends the script with an error (an unmapped failure, which the tests count as one).
 */

define('ABSPATH', __DIR__ . '/');
define('KB_IN_BYTES', 1024);
define('MB_IN_BYTES', 1024 * 1024);
define('WP_CONTENT_DIR', (string) getenv('WPCLONE_CONTENT_DIR'));
define('DB_HOST', (string) getenv('WPCLONE_DB_HOST'));
define('DB_USER', (string) getenv('WPCLONE_DB_USER'));
define('DB_PASSWORD', (string) getenv('WPCLONE_DB_PASSWORD'));
define('DB_NAME', (string) getenv('WPCLONE_DB_NAME'));
if (getenv('WPCLONE_CLIENT_FLAGS') !== false) {
    define('MYSQL_CLIENT_FLAGS', (int) getenv('WPCLONE_CLIENT_FLAGS'));
}

final class Stand_In_Wpdb
{
    public $base_prefix = 'wp_';

    public function parse_db_host(string $host): array
    {
        [$name, $port] = explode(':', $host);
        return [$name, $port, null, false];
    }
}

$wpdb = new Stand_In_Wpdb();

function wp_json_encode($data)
{
    return json_encode($data);
}

function wp_mkdir_p(string $folder): bool
{
    return is_dir($folder) || mkdir($folder, 0700, true);
}

$migrator = dirname(__DIR__, 2) . '/engine/wpclone_engine/migrator_plugin';
require $migrator . '/wpclone-migrator-stream.php';
require $migrator . '/wpclone-migrator-site.php';
require $migrator . '/wpclone-migrator-import.php';

function apply_chunk(string $body): array
{
    $db = WPClone_Db::connect();
    $job = WPClone_Job::start(['database' => true, 'tables' => null, 'roots' => [], 'seq' => 0, 'last' => null,
        'staged' => [], 'open_table' => null, 'rows' => 0]);
    try {
        $stream = fopen('php://temp', 'w+b');
        fwrite($stream, $body);
        rewind($stream);
        $frames = new WPClone_Frame_Reader($stream, strlen($body));
        [$kind, $length] = $frames->next() ?? ['', 0];  // as WPClone_Import::open_chunk reads the H frame
        if ($kind !== 'H') {
            throw new WPClone_Error('malformed_stream', 'an import chunk must begin with its H frame');
        }
        $frames->read($length);
        $inserts = WPClone_Import_Tables::read($db, $job, $frames->frames());
        $inserts->run($db);
        $rows = $inserts->rows;
        $tables = [];
        foreach ($job->data['staged'] as $table) {
            $found = $db->query('SELECT * FROM ' . WPClone_Db::name($table['staging']))->fetch_all(MYSQLI_NUM);
            $tables[$table['name']] = ['done' => $table['done'], 'rows' => array_map(function ($row) {
                return array_map(function ($value) {
                    return $value === null ? null : base64_encode($value);
                }, $row);
            }, $found)];
        }
        return ['rows' => $rows, 'tables' => $tables];
    } finally {
        foreach ($db->tables('wpci_') as $table) {
            $db->query('DROP TABLE ' . WPClone_Db::name($table));
        }
    }
}

function check_definition(array $asked): array
{
    try {
        return ['statement' => WPClone_Table_Definition::statement($asked['create'], $asked['name'], $asked['staging'])];
    } catch (WPClone_Error $error) {
        return ['error' => $error->reason, 'message' => $error->getMessage()];
    }
}

function check_foreign_key(array $asked): array
{
    try {
        return ['key' => WPClone_Table_Definition::foreign_key($asked['clause'], $asked['name'])];
    } catch (WPClone_Error $error) {
        return ['error' => $error->reason, 'message' => $error->getMessage()];
    }
}

$input = stream_get_contents(STDIN);
try {
    switch ($argv[1]) {
        case 'definitions':
            $answer = array_map('check_definition', json_decode($input, true));
            break;
        case 'foreign_keys':
            $answer = array_map('check_foreign_key', json_decode($input, true));
            break;
        case 'chunk':
            $answer = apply_chunk($input);
            break;
        case 'query':
            WPClone_Db::connect()->query($input);
            $answer = ['ok' => true];
            break;
        default:
            throw new RuntimeException('unknown mode ' . $argv[1]);
    }
} catch (WPClone_Error $error) {
    $answer = ['error' => $error->reason, 'message' => $error->getMessage()];
}
echo json_encode($answer, JSON_INVALID_UTF8_SUBSTITUTE);
