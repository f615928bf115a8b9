<?php
/**
 * wpclone migrator: imports. An import is a job: begin, then numbered chunks of frames (database rows
 * into staging tables, files into staging folders), then commit swaps everything in at once, or abort
 * removes every trace. Until commit the live site is not touched.
 */

if (!defined('ABSPATH')) {
    return;
}

/** The state of an import between requests, in the migrator's own folder (never in the database it replaces). */
final class WPClone_Job
{
    /** @var array<string, mixed> */
    public $data;

    private function __construct(array $data)
    {
        $this->data = $data;
    }

    public static function folder(string $inner = ''): string
    {
        $folder = WP_CONTENT_DIR . '/wpclone-migrator';
        if (!is_dir($folder . '/jobs')) {
            wp_mkdir_p($folder . '/jobs');
            wp_mkdir_p($folder . '/backups');
            file_put_contents($folder . '/index.php', "<?php\n// Silence is golden.\n");
            file_put_contents($folder . '/.htaccess', "Require all denied\nDeny from all\n");
        }
        return $folder . ($inner === '' ? '' : '/' . $inner);
    }

    /** One import, commit, rollback or cleanup at a time; released when the request ends. */
    public static function lock()
    {
        $handle = fopen(self::folder('lock'), 'c');
        if ($handle === false || !flock($handle, LOCK_EX)) {
            throw new WPClone_Error('busy', 'cannot take the migrator lock', 503);
        }
        return $handle;
    }

    public static function new_id(): string
    {
        return bin2hex(random_bytes(6));
    }

    public static function ids(): array
    {
        $ids = [];
        foreach ((array) glob(self::folder('jobs') . '/*.json') as $path) {
            $ids[] = basename($path, '.json');
        }
        return $ids;
    }

    public static function start(array $data): self
    {
        $job = new self($data + ['id' => self::new_id(), 'created' => time(), 'state' => 'receiving']);
        $job->save();
        return $job;
    }

    public static function load($id): self
    {
        $path = is_string($id) && preg_match('/^[0-9a-f]{12}$/', $id) ? self::folder("jobs/$id.json") : '';
        $data = $path !== '' && is_file($path) ? json_decode((string) file_get_contents($path), true) : null;
        if (!is_array($data)) {
            throw new WPClone_Error('unknown_job', 'no import job ' . wp_json_encode($id)
                . ' on this site (it was aborted, replaced by a newer import, or finished)', 404);
        }
        return new self($data);
    }

    public function id(): string
    {
        return $this->data['id'];
    }

    public function save(): void
    {
        $this->data['updated'] = time();
        $path = self::folder('jobs/' . $this->id() . '.json');
        file_put_contents($path . '.tmp', wp_json_encode($this->data));
        rename($path . '.tmp', $path);
    }

    public function forget(): void
    {
        @unlink(self::folder('jobs/' . $this->id() . '.json'));
    }
}

final class WPClone_Import
{
    public static function begin(WP_REST_Request $request): array
    {
        $lock = WPClone_Job::lock();
        $db = WPClone_Db::connect();
        self::sweep($db);
        $files = $request->get_param('files') ?: [];
        $roots = WPClone_Site::roots(is_array($files) ? $files : [$files]);
        $tables = $request->get_param('tables');
        if ($tables !== null && (!is_array($tables) || array_filter($tables, 'is_string') !== $tables)) {
            throw new WPClone_Error('bad_request', 'tables must be a list of table names or null for all');
        }
        $job = WPClone_Job::start([
            'database' => (bool) $request->get_param('database'),
            'tables' => $tables,
            'roots' => array_keys($roots),
            'seq' => ['database' => 0, 'files' => 0],
            'last' => ['database' => null, 'files' => null],
            'staged' => [],
            'open_table' => null,
            'open_file' => null,
            'rows' => 0,
            'files' => 0,
            'bytes' => 0,
        ]);
        foreach ($roots as $folder) {
            if (!wp_mkdir_p($folder . '/.wpclone-' . $job->id())) {
                $job->forget();
                throw new WPClone_Error('unwritable', 'cannot create a staging folder in ' . $folder, 500);
            }
        }
        return [
            'job' => $job->id(),
            'max_request_bytes' => WPClone_Site::max_request_bytes(),
            'max_allowed_packet' => (int) $db->value('SELECT @@max_allowed_packet'),
        ];
    }

    public static function database(WP_REST_Request $request): array
    {
        return self::chunk($request, 'database', function (WPClone_Job $job, Generator $frames) {
            $db = WPClone_Db::connect();
            $db->query('START TRANSACTION');
            $rows = WPClone_Import_Tables::apply($db, $job, $frames);
            $db->query('COMMIT');
            return ['rows' => $rows];
        });
    }

    public static function files(WP_REST_Request $request): array
    {
        return self::chunk($request, 'files', function (WPClone_Job $job, Generator $frames) {
            return WPClone_Import_Files::apply($job, $frames);
        });
    }

    public static function status(WP_REST_Request $request): array
    {
        $job = WPClone_Job::load($request->get_param('job'));
        $data = $job->data;
        unset($data['last']);
        return $data;
    }

    public static function abort(WP_REST_Request $request): array
    {
        $lock = WPClone_Job::lock();
        $id = $request->get_param('job');
        $db = WPClone_Db::connect();
        if ($id === null) {
            self::sweep($db);
            return ['aborted' => 'all'];
        }
        self::discard($db, WPClone_Job::load($id));
        return ['aborted' => $id];
    }

    public static function commit(WP_REST_Request $request): array
    {
        ignore_user_abort(true);
        if (function_exists('set_time_limit')) {
            @set_time_limit(0);
        }
        $lock = WPClone_Job::lock();
        $job = WPClone_Job::load($request->get_param('job'));
        $db = WPClone_Db::connect();
        try {
            self::require_complete($job);
            $backup = WPClone_Backups::swap_in($db, $job);
        } catch (Throwable $error) {
            self::discard($db, $job);
            throw $error;
        }
        $job->forget();
        wp_cache_flush();
        if (!$request->get_param('backup')) {
            WPClone_Backups::remove($db, $backup);
            return ['backup' => null, 'tables' => count($backup['imported']), 'rows' => $job->data['rows'],
                'files' => $job->data['files']];
        }
        WPClone_Backups::save($backup);
        return ['backup' => $backup['id'], 'tables' => count($backup['imported']), 'rows' => $job->data['rows'],
            'files' => $job->data['files']];
    }

    /**
     * Runs one numbered chunk of a job. The first frame names the job and the chunk's number; a chunk
     * sent again (its response was lost) is answered again without being applied twice. Any error
     * discards the whole job, so a bad stream leaves nothing behind.
     */
    private static function chunk(WP_REST_Request $request, string $kind, callable $apply): array
    {
        wp_raise_memory_limit('wpclone');
        $lock = WPClone_Job::lock();
        $frames = WPClone_Frames::parse($request->get_body());
        [$frame, $payload] = $frames->current() ?: ['', ''];
        if ($frame !== 'H') {
            throw new WPClone_Error('malformed_stream', 'an import chunk must begin with its H frame');
        }
        $header = WPClone_Frames::decode_json('H', $payload);
        $frames->next();
        $job = WPClone_Job::load($header['job'] ?? null);
        $seq = $header['seq'] ?? null;
        $done = $job->data['seq'][$kind];
        if ($seq === $done && $job->data['last'][$kind] !== null) {
            return $job->data['last'][$kind] + ['repeated' => true];
        }
        if ($seq !== $done + 1) {
            throw new WPClone_Error('out_of_order', "expected $kind chunk " . ($done + 1) . ', got ' . wp_json_encode($seq), 409);
        }
        try {
            $result = $apply($job, $frames);
        } catch (Throwable $error) {
            self::discard(WPClone_Db::connect(), $job);
            throw $error;
        }
        $result += ['seq' => $seq, 'peak_memory' => memory_get_peak_usage(true)];
        $job->data['seq'][$kind] = $seq;
        $job->data['last'][$kind] = $result;
        $job->save();
        return $result;
    }

    private static function require_complete(WPClone_Job $job): void
    {
        foreach ($job->data['staged'] as $table) {
            if (!$table['done']) {
                throw new WPClone_Error('incomplete', 'table ' . $table['name'] . ' was not received completely', 409);
            }
        }
        if ($job->data['open_file'] !== null) {
            throw new WPClone_Error('incomplete', 'file ' . $job->data['open_file']['path'] . ' was not received completely', 409);
        }
        if ($job->data['database'] && !$job->data['staged']) {
            throw new WPClone_Error('incomplete', 'the import holds no tables', 409);
        }
    }

    /** Removes a job's staging tables and folders and the job itself. */
    public static function discard(WPClone_Db $db, WPClone_Job $job): void
    {
        foreach ($db->tables('wpci_' . $job->id() . '_') as $table) {
            $db->query('DROP TABLE IF EXISTS ' . WPClone_Db::name($table));
        }
        foreach (WPClone_Site::roots($job->data['roots']) as $folder) {
            WPClone_Backups::remove_folder($folder . '/.wpclone-' . $job->id());
        }
        $job->forget();
    }

    /**
     * Leftovers of imports that never finished (their requester died with them): every job, staging
     * table and staging folder. A new import replaces any unfinished one.
     */
    private static function sweep(WPClone_Db $db): void
    {
        foreach (WPClone_Job::ids() as $id) {
            self::discard($db, WPClone_Job::load($id));
        }
        foreach (array_merge($db->tables('wpci_'), $db->tables('wpcr_')) as $table) {
            if (preg_match(WPClone_Site::OWN_TABLE, $table)) {
                $db->query('DROP TABLE IF EXISTS ' . WPClone_Db::name($table));
            }
        }
        foreach (WPClone_Site::roots(WPClone_Site::ROOTS) as $folder) {
            foreach ((array) glob($folder . '/.wpclone-*', GLOB_ONLYDIR) as $path) {
                if (preg_match('/\/\.wpclone-(trash-)?[0-9a-f]{12}$/', $path)) {
                    WPClone_Backups::remove_folder($path);
                }
            }
        }
    }
}

/** Database chunks: T creates a staging table, R inserts rows into it, E checks the count. */
final class WPClone_Import_Tables
{
    const NAME = '/^[0-9A-Za-z_$-]{1,64}$/';

    public static function apply(WPClone_Db $db, WPClone_Job $job, Generator $frames): int
    {
        $inserted = 0;
        $max_statement = max(64 * KB_IN_BYTES, min(4 * MB_IN_BYTES,
            (int) $db->value('SELECT @@max_allowed_packet') - 64 * KB_IN_BYTES));
        for (; $frames->valid(); $frames->next()) {
            [$kind, $payload] = $frames->current();
            $open = $job->data['open_table'];
            if ($kind === 'T') {
                if ($open !== null) {
                    throw new WPClone_Error('malformed_stream', 'table ' . $job->data['staged'][$open]['name'] . ' was not ended');
                }
                self::create($db, $job, WPClone_Frames::decode_json('T', $payload));
            } elseif ($kind === 'R') {
                if ($open === null) {
                    throw new WPClone_Error('malformed_stream', 'rows outside a table');
                }
                $inserted += self::insert($db, $job->data['staged'][$open], $payload, $max_statement);
            } elseif ($kind === 'E') {
                if ($open === null) {
                    throw new WPClone_Error('malformed_stream', 'end of a table that was not begun');
                }
                self::end($job, WPClone_Frames::decode_json('E', $payload));
            } else {
                throw new WPClone_Error('malformed_stream', "unexpected frame '$kind' in a database chunk");
            }
        }
        $job->data['rows'] += $inserted;
        return $inserted;
    }

    private static function create(WPClone_Db $db, WPClone_Job $job, array $table): void
    {
        $name = $table['name'] ?? null;
        $columns = $table['columns'] ?? null;
        $create = $table['create'] ?? null;
        if (!is_string($name) || !preg_match(self::NAME, $name) || strpos($name, WPClone_Site::table_prefix()) !== 0
            || preg_match(WPClone_Site::OWN_TABLE, $name)) {
            throw new WPClone_Error('bad_table', 'refusing table name ' . wp_json_encode($name)
                . ': a table of this site is named with its prefix ' . WPClone_Site::table_prefix());
        }
        $wanted = $job->data['tables'];
        if (!$job->data['database'] || ($wanted !== null && !in_array($name, $wanted, true))) {
            throw new WPClone_Error('bad_table', "table $name is not part of this import");
        }
        if (in_array($name, array_column($job->data['staged'], 'name'), true)) {
            throw new WPClone_Error('bad_table', "table $name was sent twice");
        }
        if (!is_array($columns) || !$columns || array_filter($columns, 'is_string') !== $columns) {
            throw new WPClone_Error('bad_table', "table $name has no column list");
        }
        $head = 'CREATE TABLE ' . WPClone_Db::name($name) . ' (';
        if (!is_string($create) || strpos($create, $head) !== 0) {
            throw new WPClone_Error('bad_table', "the definition of $name does not begin with: $head");
        }
        $staging = 'wpci_' . $job->id() . '_' . count($job->data['staged']);
        $db->query('CREATE TABLE ' . WPClone_Db::name($staging) . ' (' . substr($create, strlen($head)));
        $job->data['staged'][] = ['name' => $name, 'staging' => $staging, 'columns' => $columns, 'rows' => 0, 'done' => false];
        $job->data['open_table'] = count($job->data['staged']) - 1;
    }

    private static function insert(WPClone_Db $db, array &$table, string $payload, int $max_statement): int
    {
        $head = 'INSERT INTO ' . WPClone_Db::name($table['staging']) . ' ('
            . implode(', ', array_map(['WPClone_Db', 'name'], $table['columns'])) . ') VALUES ';
        $tuples = [];
        $size = 0;
        $count = 0;
        foreach (WPClone_Frames::records($payload, count($table['columns'])) as $row) {
            $tuple = '(' . implode(',', array_map([$db, 'quote'], $row)) . ')';
            if ($tuples && $size + strlen($tuple) > $max_statement) {
                $db->query($head . implode(',', $tuples));
                $tuples = [];
                $size = 0;
            }
            $tuples[] = $tuple;
            $size += strlen($tuple) + 1;
            $count++;
        }
        if ($tuples) {
            $db->query($head . implode(',', $tuples));
        }
        $table['rows'] += $count;
        return $count;
    }

    private static function end(WPClone_Job $job, array $end): void
    {
        $open = $job->data['open_table'];
        $table = &$job->data['staged'][$open];
        if (($end['name'] ?? null) !== $table['name']) {
            throw new WPClone_Error('malformed_stream', 'the end of ' . wp_json_encode($end['name'] ?? null)
                . ' arrived while ' . $table['name'] . ' was open');
        }
        if (($end['rows'] ?? null) !== $table['rows']) {
            throw new WPClone_Error('row_count', sprintf('table %s: the stream announced %s rows, %d arrived',
                $table['name'], wp_json_encode($end['rows'] ?? null), $table['rows']));
        }
        $table['done'] = true;
        $job->data['open_table'] = null;
    }
}

/** File chunks: F opens a file in the staging folder, D appends to it, no more than announced. */
final class WPClone_Import_Files
{
    public static function apply(WPClone_Job $job, Generator $frames): array
    {
        $handle = null;
        $files = 0;
        $bytes = 0;
        for (; $frames->valid(); $frames->next()) {
            [$kind, $payload] = $frames->current();
            $open = &$job->data['open_file'];
            if ($kind === 'F') {
                $files += self::close($job, $handle);
                [$path, $size, $mtime, $mode] = WPClone_Frames::single_record($payload, 4);
                if (!ctype_digit((string) $size) || !ctype_digit((string) $mtime) || !ctype_digit((string) $mode)) {
                    throw new WPClone_Error('malformed_stream', 'the header of a file is not numeric');
                }
                $target = self::staged_path($job, (string) $path);
                $handle = @fopen($target, 'xb');
                if ($handle === false) {
                    throw new WPClone_Error('bad_path', 'cannot create ' . $path . ' (sent twice, or a folder of that name)');
                }
                $open = ['path' => $path, 'size' => (int) $size, 'written' => 0, 'mtime' => (int) $mtime,
                    'mode' => (int) $mode & 0777];
            } elseif ($kind === 'D') {
                if ($open === null) {
                    throw new WPClone_Error('malformed_stream', 'file data outside a file');
                }
                if ($open['written'] + strlen($payload) > $open['size']) {
                    throw new WPClone_Error('too_much_data', sprintf('%s: more than the %d bytes announced',
                        $open['path'], $open['size']));
                }
                $handle = $handle ?: fopen(self::staged_path($job, $open['path']), 'ab');
                if ($handle === false || fwrite($handle, $payload) !== strlen($payload)) {
                    throw new WPClone_Error('unwritable', 'cannot write ' . $open['path'] . ' (disk full?)', 507);
                }
                $open['written'] += strlen($payload);
                $bytes += strlen($payload);
            } else {
                throw new WPClone_Error('malformed_stream', "unexpected frame '$kind' in a files chunk");
            }
            unset($open);
        }
        $open = $job->data['open_file'];
        if ($open !== null && $open['written'] === $open['size']) {
            $files += self::close($job, $handle);
        } elseif ($handle) {
            fclose($handle);
        }
        $job->data['files'] += $files;
        $job->data['bytes'] += $bytes;
        return ['files' => $files, 'bytes' => $bytes];
    }

    /** Finishes the open file, which must hold exactly what was announced. Returns 1 if one was open. */
    private static function close(WPClone_Job $job, &$handle): int
    {
        $open = $job->data['open_file'];
        if ($open === null) {
            return 0;
        }
        if ($open['written'] !== $open['size']) {
            throw new WPClone_Error('malformed_stream', sprintf('%s: %d of the %d bytes announced arrived',
                $open['path'], $open['written'], $open['size']));
        }
        if ($handle) {
            fclose($handle);
            $handle = null;
        }
        $target = self::staged_path($job, $open['path']);
        if ($open['size'] === 0 && !is_file($target)) {
            touch($target);
        }
        @chmod($target, $open['mode'] | 0600);
        @touch($target, $open['mtime']);
        $job->data['open_file'] = null;
        return 1;
    }

    /**
     * Where a file of the stream is staged. A path must be relative, inside one of the folders being
     * imported, without empty, "." or ".." segments, and must not reach the migrator's own files.
     */
    private static function staged_path(WPClone_Job $job, string $path): string
    {
        $segments = explode('/', $path);
        $unsafe = strlen($path) > 4096 || strpos($path, "\0") !== false || strpos($path, '\\') !== false
            || count($segments) < 2 || array_intersect($segments, ['', '.', '..']);
        if ($unsafe || WPClone_Site::excluded($path)) {
            throw new WPClone_Error('bad_path', 'refusing file path ' . wp_json_encode($path)
                . ': not a relative path inside the imported folders');
        }
        $root = array_shift($segments);
        if (!in_array($root, $job->data['roots'], true)) {
            throw new WPClone_Error('bad_path', "refusing $path: $root is not part of this import");
        }
        $stage = WPClone_Site::roots([$root])[$root] . '/.wpclone-' . $job->id();
        $target = $stage . '/' . implode('/', $segments);
        $parent = dirname($target);
        if (!is_dir($parent) && !wp_mkdir_p($parent)) {
            throw new WPClone_Error('bad_path', 'cannot create the folder of ' . $path);
        }
        $real = realpath($parent);
        if ($real === false || strpos($real . '/', realpath($stage) . '/') !== 0) {
            throw new WPClone_Error('bad_path', "refusing $path: it leads outside the staging folder");
        }
        return $target;
    }
}
