<?php
/**
 * wpclone migrator: imports. An import is a job: begin, then numbered chunks of frames (database rows
 * into staging tables, file pieces into staging folders), then commit checks that everything arrived
 * and swaps it in at once, or abort removes every trace. Until commit the live site is not touched.
 *
 * Database chunks are read one after the other, in order (the rows of one go in while the next is
 * read). File chunks are independent (each piece says where it goes) and may arrive in any order and
 * at the same time; commit checks that the pieces of every file cover it exactly. A chunk sent again
 * (its reply was lost) is not applied twice.
 */

if (!defined('ABSPATH')) {
    return;
}

/**
 * The state of an import between requests, in the migrator's own folder (never in the database it
 * replaces): jobs/<id>.json for the job and its tables, jobs/<id>/files-<seq>.json per file chunk.
 */
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

    /**
     * Chunks share the lock; begin, commit, abort and the backup routes hold it alone, so they never
     * run while a chunk is being applied. Released when the request ends.
     *
     * @return resource
     */
    public static function lock(bool $alone, string $name = 'lock')
    {
        $handle = fopen(self::folder($name), 'c');
        if ($handle === false || !flock($handle, $alone ? LOCK_EX : LOCK_SH)) {
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
        $job = new self($data + ['id' => self::new_id(), 'created' => time()]);
        wp_mkdir_p(self::folder('jobs/' . $job->id()));
        $job->save();
        return $job;
    }

    public static function load($id): self
    {
        $path = is_string($id) && preg_match('/^[0-9a-f]{12}$/', $id) ? self::folder("jobs/$id.json") : '';
        $data = $path !== '' && is_file($path) ? json_decode((string) file_get_contents($path), true) : null;
        $failure = $path !== '' && is_file(self::folder("jobs/$id.failed"))
            ? json_decode((string) file_get_contents(self::folder("jobs/$id.failed")), true) : null;
        if (!is_array($data) && is_array($failure)) {
            // Chunks sent side by side with the one that failed get its reason, not a bare "no such job".
            throw new WPClone_Error((string) $failure['reason'], 'the import was dropped: ' . $failure['message'],
                (int) $failure['status']);
        }
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
        self::write(self::folder('jobs/' . $this->id() . '.json'), $this->data);
    }

    /** @return array<string, mixed>|null */
    public function manifest(int $seq)
    {
        $path = self::folder('jobs/' . $this->id() . "/files-$seq.json");
        return is_file($path) ? json_decode((string) file_get_contents($path), true) : null;
    }

    public function save_manifest(int $seq, array $manifest): void
    {
        self::write(self::folder('jobs/' . $this->id() . "/files-$seq.json"), $manifest);
    }

    /** @return int[] */
    public function manifest_numbers(): array
    {
        return array_map(function ($path) {
            return (int) substr(basename($path, '.json'), 6);
        }, (array) glob(self::folder('jobs/' . $this->id()) . '/files-*.json'));
    }

    /** Records why the job was dropped, for the chunks still arriving (removed by the next sweep). */
    public function failed(Throwable $error): void
    {
        $known = $error instanceof WPClone_Error;
        self::write(self::folder('jobs/' . $this->id() . '.failed'), [
            'reason' => $known ? $error->reason : 'failed', 'message' => $error->getMessage(),
            'status' => $known ? $error->status : 500]);
    }

    /** Removes the record of a dropped job; whether there was one. */
    public static function forget_failure($id): bool
    {
        $path = is_string($id) && preg_match('/^[0-9a-f]{12}$/', $id) ? self::folder("jobs/$id.failed") : '';
        return $path !== '' && is_file($path) && unlink($path);
    }

    public function forget(): void
    {
        WPClone_Backups::remove_folder(self::folder('jobs/' . $this->id()));
        @unlink(self::folder('jobs/' . $this->id() . '.json'));
    }

    private static function write(string $path, array $data): void
    {
        file_put_contents($path . '.tmp', wp_json_encode($data));
        rename($path . '.tmp', $path);
    }
}

final class WPClone_Import
{
    /** How many database chunks the engine sends at once (DATABASE_CHUNKS_IN_FLIGHT in import_chunks.py). */
    const DATABASE_CHUNKS_IN_FLIGHT = 3;

    public static function begin(WP_REST_Request $request): array
    {
        $lock = WPClone_Job::lock(true);
        $db = WPClone_Db::connect();
        self::sweep($db);
        $files = $request->get_param('files') ?: [];
        $roots = WPClone_Site::roots(is_array($files) ? $files : [$files]);
        $tables = $request->get_param('tables');
        if ($tables !== null && (!is_array($tables) || array_filter($tables, 'is_string') !== $tables)) {
            throw new WPClone_Error('bad_request', 'tables must be a list of table names or null for all');
        }
        if ($request->get_param('database') && WPClone_Db::is_sqlite()) {
            throw new WPClone_Error('sqlite_site', 'this site keeps its tables in SQLite (the SQLite drop-in): '
                . 'the migrator imports its files only', 409);
        }
        $job = WPClone_Job::start([
            'database' => (bool) $request->get_param('database'),
            'tables' => $tables,
            'roots' => array_keys($roots),
            'rules' => WPClone_Site::rules($request->get_param('dropins'), $request->get_param('exclude')),
            'seq' => 0,
            'last' => null,
            'staged' => [],
            'open_table' => null,
            'rows' => 0,
        ]);
        foreach ($roots as $folder) {
            if (!wp_mkdir_p($folder . '/.wpclone-' . $job->id())) {
                self::discard($db, $job);
                throw new WPClone_Error('unwritable', 'cannot create a staging folder in ' . $folder, 500);
            }
        }
        return [
            'job' => $job->id(),
            'max_request_bytes' => WPClone_Site::max_request_bytes(),
            'max_allowed_packet' => $db->max_allowed_packet(),
        ];
    }

    /**
     * A database chunk: read in order, once; the job's tables are its state. Its turn covers reading
     * it (tables created, rows counted, ends checked) and recording it in the job; its rows
     * then go in while the next chunk takes its turn, so two chunks' rows go in at once. Chunks are
     * sent DATABASE_CHUNKS_IN_FLIGHT at a time. One that comes before its predecessor has begun is
     * refused at once as not yet: waiting here for a request that may be queued behind this one in
     * the same server process (PHP's built-in server takes several at a time, a pool may have one
     * worker) could wait for ever; the engine sends it again once its predecessor is answered.
     */
    public static function database(WP_REST_Request $request): array
    {
        wp_raise_memory_limit('wpclone');
        // The turn first, then the shared lock: a chunk waiting for its turn holds no lock that the one
        // being applied needs (a failing chunk takes the shared lock alone to discard the job).
        $turn = WPClone_Job::lock(true, 'lock-database');
        $lock = WPClone_Job::lock(false);
        $body = WPClone_Frame_Reader::request();
        [$job, $seq] = self::open_chunk($body);
        if (is_int($seq) && $seq > $job->data['seq'] + 1 && $seq <= $job->data['seq'] + self::DATABASE_CHUNKS_IN_FLIGHT) {
            throw new WPClone_Error('not_yet', 'database chunk ' . $seq . ' came before chunk ' . ($job->data['seq'] + 1)
                . ': send it again once that one is answered', 409);
        }
        if (is_int($seq) && $seq <= $job->data['seq'] && $seq >= 1) {
            // Sent again (its answer was lost) after it was read: the job may have gone on since.
            return $seq === $job->data['seq'] && $job->data['last'] !== null
                ? $job->data['last'] + ['repeated' => true] : ['seq' => $seq, 'repeated' => true];
        }
        if ($seq !== $job->data['seq'] + 1) {
            throw new WPClone_Error('out_of_order', 'expected database chunk ' . ($job->data['seq'] + 1)
                . ', got ' . wp_json_encode($seq), 409);
        }
        // Should its rows fail to go in, the job is dropped (and the commit then refused), though the
        // chunks after it were read.
        return self::applying($lock, $job, function () use ($job, $body, $seq, $turn) {
            $db = WPClone_Db::connect();
            $inserts = WPClone_Import_Tables::read($db, $job, $body->frames());
            $job->data['seq'] = $seq;
            $job->data['last'] = ['rows' => $inserts->rows, 'seq' => $seq];
            $job->save();
            flock($turn, LOCK_UN);
            $db->query('START TRANSACTION');
            $inserts->run($db);
            $db->query('COMMIT');
            return $job->data['last'];  // what a repeat of this chunk is answered, as it is
        });
    }

    /** A file chunk: independent of the others; sent again, it is answered from its manifest. */
    public static function files(WP_REST_Request $request): array
    {
        wp_raise_memory_limit('wpclone');
        $lock = WPClone_Job::lock(false);
        $body = WPClone_Frame_Reader::request();
        [$job, $seq] = self::open_chunk($body);
        if (!is_int($seq) || $seq < 1) {
            throw new WPClone_Error('malformed_stream', 'a file chunk is numbered from 1, got ' . wp_json_encode($seq));
        }
        $done = $job->manifest($seq);
        if ($done !== null) {
            return ['pieces' => count($done['pieces']), 'bytes' => $done['bytes'], 'seq' => $seq, 'repeated' => true];
        }
        $manifest = self::applying($lock, $job, function () use ($job, $body) {
            return WPClone_Import_Files::apply($job, $body);
        });
        $job->save_manifest($seq, $manifest);
        return ['pieces' => count($manifest['pieces']), 'bytes' => $manifest['bytes'], 'seq' => $seq,
            'peak_memory' => memory_get_peak_usage(true)];
    }

    public static function status(WP_REST_Request $request): array
    {
        $job = WPClone_Job::load($request->get_param('job'));
        $data = $job->data;
        unset($data['last']);
        $data['file_chunks'] = count($job->manifest_numbers());
        return $data;
    }

    public static function abort(WP_REST_Request $request): array
    {
        $lock = WPClone_Job::lock(true);
        $id = $request->get_param('job');
        $db = WPClone_Db::connect();
        if ($id === null) {
            self::sweep($db);
            return ['aborted' => 'all'];
        }
        if (WPClone_Job::forget_failure($id)) {
            return ['aborted' => $id];  // dropped already, when one of its chunks failed
        }
        self::discard($db, WPClone_Job::load($id));
        return ['aborted' => $id];
    }

    /** Checks that everything sent arrived ({job, chunks: {database, files}}), then swaps it in. */
    public static function commit(WP_REST_Request $request): array
    {
        return self::finishing($request, true, function (WPClone_Db $db, WPClone_Job $job, int $files): array {
            self::add_foreign_keys($db, $job->data['staged'], array_column($job->data['staged'], 'staging', 'name'));
            $backup = WPClone_Backups::swap_in($db, $job);
            return [$backup, ['tables' => count($backup['imported']), 'rows' => $job->data['rows'], 'files' => $files]];
        });
    }

    /**
     * Ends a job (a commit, a merge): checks that every chunk sent arrived, has $apply put it in place
     * ($apply returns the backup record of what it replaced, and the answer), then keeps that backup or
     * drops it. Any failure discards the job: the site stays as it was.
     */
    public static function finishing(WP_REST_Request $request, bool $needs_tables, callable $apply): array
    {
        ignore_user_abort(true);
        if (function_exists('set_time_limit')) {
            @set_time_limit(0);
        }
        $lock = WPClone_Job::lock(true);
        $job = WPClone_Job::load($request->get_param('job'));
        $chunks = (array) $request->get_param('chunks');
        $db = WPClone_Db::connect();
        try {
            self::require_tables($job, (int) ($chunks['database'] ?? 0), $needs_tables);
            $files = WPClone_Import_Files::finish($job, (int) ($chunks['files'] ?? 0));
            [$backup, $answer] = $apply($db, $job, $files);
        } catch (Throwable $error) {
            self::discard($db, $job);
            throw $error;
        }
        self::discard($db, $job);  // what is left of it: the job's record, emptied staging folders
        wp_cache_flush();
        if (!$request->get_param('backup')) {
            WPClone_Backups::remove($db, $backup);
            return $answer + ['backup' => null];
        }
        WPClone_Backups::save($backup);
        return $answer + ['backup' => $backup['id']];
    }

    /**
     * Staged tables' foreign keys, before the swap: one that refers to a table this import brings
     * (`$staged`: name => staging name) refers to its staged copy, which the swap's rename turns into the live
     * table (and the table it replaces, with its own keys, into its backup). Without names: the server names
     * them after their table, as the rename renames them.
     */
    public static function add_foreign_keys(WPClone_Db $db, array $tables, array $staged): void
    {
        foreach ($tables as $table) {
            $clauses = array_map(function (array $key) use ($staged) {
                return 'ADD ' . $key['head'] . ' REFERENCES ' . WPClone_Db::name($staged[$key['references']]
                    ?? $key['references']) . ' ' . $key['tail'];
            }, $table['foreign_keys'] ?? []);
            if ($clauses) {
                $db->query('ALTER TABLE ' . WPClone_Db::name($table['staging']) . ' ' . implode(', ', $clauses));
            }
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
     * The job and number of a chunk, from the H frame its body begins with. A chunk's body is read as a
     * stream, frame by frame (a file piece's data into its file a block at a time), never held whole.
     *
     * @return array{0: WPClone_Job, 1: mixed}
     */
    private static function open_chunk(WPClone_Frame_Reader $body): array
    {
        [$frame, $length] = $body->next() ?? ['', 0];
        if ($frame !== 'H') {
            throw new WPClone_Error('malformed_stream', 'an import chunk must begin with its H frame');
        }
        $header = WPClone_Frames::decode_json('H', $body->read($length));
        return [WPClone_Job::load($header['job'] ?? null), $header['seq'] ?? null];
    }

    /**
     * Applies a chunk. Any error discards the whole job, so a bad stream leaves nothing behind: the
     * shared lock becomes exclusive first, so no other chunk of the job is still being written.
     */
    private static function applying($lock, WPClone_Job $job, callable $apply): array
    {
        try {
            return $apply();
        } catch (Throwable $error) {
            flock($lock, LOCK_EX);
            try {
                $dropped = WPClone_Job::load($job->id());
                $dropped->failed($error);
                self::discard(WPClone_Db::connect(), $dropped);
            } catch (WPClone_Error $gone) {
                // another failing chunk of the same job discarded it first
            }
            throw $error;
        }
    }

    private static function require_tables(WPClone_Job $job, int $chunks, bool $needs_tables = true): void
    {
        if ($job->data['seq'] !== $chunks) {
            throw new WPClone_Error('incomplete', sprintf('%d database chunks were sent, %d arrived',
                $chunks, $job->data['seq']), 409);
        }
        foreach ($job->data['staged'] as $table) {
            if (!$table['done']) {
                throw new WPClone_Error('incomplete', 'table ' . $table['name'] . ' was not received completely', 409);
            }
        }
        if ($needs_tables && $job->data['database'] && !$job->data['staged']) {
            throw new WPClone_Error('incomplete', 'the import holds no tables', 409);
        }
    }

    /**
     * Leftovers of imports that never finished (their requester died with them): every job, staging
     * table and staging folder. A new import replaces any unfinished one.
     */
    public static function sweep(WPClone_Db $db): void
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
        foreach ((array) glob(WPClone_Job::folder('jobs') . '/*', GLOB_ONLYDIR) as $path) {
            WPClone_Backups::remove_folder($path);
        }
        foreach ((array) glob(WPClone_Job::folder('jobs') . '/*.failed') as $path) {
            @unlink($path);
        }
    }
}

/** Database chunks: T creates a staging table, R inserts rows into it, E checks the count. */
final class WPClone_Import_Tables
{
    const NAME = '/^[0-9A-Za-z_$-]{1,64}\z/';

    /**
     * Reads a chunk's frames after its H frame: creates the tables it begins, counts its rows (which
     * go in when the inserts it returns are run) and checks the tables it ends.
     *
     * @param iterable<array{0: string, 1: string}> $frames
     */
    public static function read(WPClone_Db $db, WPClone_Job $job, iterable $frames): WPClone_Inserts
    {
        $inserts = new WPClone_Inserts();
        foreach ($frames as [$kind, $payload]) {
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
                $job->data['staged'][$open]['rows'] += $inserts->add($job->data['staged'][$open], $payload);
            } elseif ($kind === 'E') {
                if ($open === null) {
                    throw new WPClone_Error('malformed_stream', 'end of a table that was not begun');
                }
                self::end($job, WPClone_Frames::decode_json('E', $payload));
            } else {
                throw new WPClone_Error('malformed_stream', "unexpected frame '$kind' in a database chunk");
            }
        }
        $job->data['rows'] += $inserts->rows;
        return $inserts;
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
        $is_column = function ($column) {
            return is_string($column) && preg_match('/^.{1,64}\z/us', $column) === 1;
        };
        if (!is_array($columns) || !$columns || count($columns) > WPClone_Frames::MAX_COLUMNS
            || array_values(array_filter($columns, $is_column)) !== $columns
            || count(array_unique($columns)) !== count($columns)) {
            throw new WPClone_Error('bad_table', "table $name needs a list of 1 to " . WPClone_Frames::MAX_COLUMNS
                . ' distinct column names (of 1 to 64 characters)');
        }
        if (!is_string($create)) {
            throw new WPClone_Error('bad_table', "table $name has no definition");
        }
        $keys = $table['foreign_keys'] ?? [];
        if (!is_array($keys) || count($keys) > 64 || array_values($keys) !== $keys) {
            throw new WPClone_Error('bad_table', "table $name needs a list of at most 64 foreign keys");
        }
        $keys = array_map(function ($clause) use ($name) {
            $key = WPClone_Table_Definition::foreign_key($clause, $name);
            if (!preg_match(self::NAME, $key['references']) || strpos($key['references'], WPClone_Site::table_prefix()) !== 0
                || preg_match(WPClone_Site::OWN_TABLE, $key['references'])) {
                throw new WPClone_Error('bad_table_definition', "a foreign key of $name refers to "
                    . wp_json_encode(substr($key['references'], 0, 80)) . ', which is not a table of this site');
            }
            return $key;
        }, $keys);
        $staging = 'wpci_' . $job->id() . '_' . count($job->data['staged']);
        $db->query(WPClone_Table_Definition::statement($create, $name, $staging));
        $job->data['staged'][] = ['name' => $name, 'staging' => $staging, 'columns' => $columns, 'rows' => 0,
            'done' => false, 'foreign_keys' => $keys];
        $job->data['open_table'] = count($job->data['staged']) - 1;
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

/**
 * A database chunk's rows, counted when the chunk is read and put into their staging tables afterwards,
 * parsed again then: in statements of rows_per_insert() rows, or fewer where a statement would outgrow
 * the server's max_allowed_packet. Only one statement's values are in memory at a time.
 */
final class WPClone_Inserts
{
    /** @var int rows in all */
    public $rows = 0;
    /** @var array<int, array{0: array, 1: string}> per R frame: its staged table and its records */
    private $frames = [];

    /** Adds the records of an R frame for $table (a staged table of the job); returns how many there are. */
    public function add(array $table, string $payload): int
    {
        $count = WPClone_Frames::count_records($payload, count($table['columns']));
        $this->frames[] = [$table, $payload];
        $this->rows += $count;
        return $count;
    }

    public function run(WPClone_Db $db): void
    {
        $max_statement = max(64 * KB_IN_BYTES, min(4 * MB_IN_BYTES, $db->max_allowed_packet() - 64 * KB_IN_BYTES));
        foreach ($this->frames as [$table, $payload]) {
            $width = count($table['columns']);
            $per_insert = WPClone_Db::rows_per_insert($width);
            $values = [];
            $rows = 0;
            $size = 0;
            foreach (WPClone_Frames::records($payload, $width) as $row) {
                $length = 9 * $width;  // at most what the protocol adds to each value
                foreach ($row as $value) {
                    $length += $value === null ? 0 : strlen($value);
                }
                if ($rows && ($rows === $per_insert || $size + $length > $max_statement)) {
                    $db->insert($table['staging'], $table['columns'], $rows, $values);
                    $values = [];
                    $rows = 0;
                    $size = 0;
                }
                array_push($values, ...$row);
                $rows++;
                $size += $length;
            }
            if ($rows) {
                $db->insert($table['staging'], $table['columns'], $rows, $values);
            }
        }
    }
}

/**
 * A table definition from a stream, taken apart and checked before any database sees it, by the rules of
 * table_definition() in wpclone_engine/site_move.py (which the operator applies first):
 * CREATE TABLE `name` ( columns, keys and constraints ) and then only allowed table options. Only what
 * was checked is rebuilt into the statement that runs. (One statement in any case: mysqli never lets
 * the server run several per query; see WPClone_Db.)
 */
final class WPClone_Table_Definition
{
    /** Far above any real table's definition (InnoDB allows 1017 columns, each commented in 1024 characters). */
    const MAX_BYTES = 1048576;
    /** Engines that keep a table in the database's own files: never FEDERATED, CONNECT, MERGE, ... */
    const ENGINES = ['aria', 'innodb', 'memory', 'myisam'];
    /** Options that only say how a table is stored: never DATA/INDEX DIRECTORY, CONNECTION, UNION, SELECT, ... */
    const OPTIONS = [
        'engine', 'auto_increment', 'charset', 'character set', 'collate', 'comment', 'row_format', 'checksum',
        'page_checksum', 'transactional', 'pack_keys', 'delay_key_write', 'key_block_size', 'avg_row_length',
        'max_rows', 'min_rows', 'stats_persistent', 'stats_auto_recalc', 'stats_sample_pages', 'page_compressed',
        'page_compression_level', 'encrypted', 'encryption_key_id', 'compression',
    ];
    /** How a part that is not a column begins. */
    const KEY_WORDS = ['primary', 'unique', 'key', 'index', 'fulltext', 'spatial', 'constraint', 'check', 'foreign'];
    /**
     * MySQL's tokens as this session reads them (no ANSI_QUOTES, no NO_BACKSLASH_ESCAPES), one group per
     * kind. Anything else is refused: ';' (a second statement), '"', '@', '?', and comments, which can
     * hide anything and of which /*! ... *\/ even runs.
     */
    const TOKEN = <<<'REGEX'
/\G(?:([ \t\r\n]++)|(--|\/\*|\*\/|#)|(`(?:[^`]++|``)*+`)|('(?:[^'\\]++|\\.|'')*+')|([0-9]++(?:\.[0-9]*+)?(?:[eE][+-]?[0-9]++)?)|([A-Za-z_$][A-Za-z0-9_$]*+)|([(),.=+\-*\/%<>!&|^~:]))/s
REGEX;
    const KINDS = [1 => 'space', 2 => 'comment', 3 => 'name', 4 => 'string', 5 => 'number', 6 => 'word', 7 => 'symbol'];

    /** The CREATE TABLE of $staging with $name's checked definition; a bad_table_definition error says why not. */
    public static function statement(string $create, string $name, string $staging): string
    {
        if (strlen($create) > self::MAX_BYTES) {
            throw self::refused($name, 'it is longer than ' . self::MAX_BYTES . ' bytes');
        }
        $tokens = self::tokens($create, $name);
        if (count($tokens) < 4 || !self::is_word($tokens[0], 'create') || !self::is_word($tokens[1], 'table')
            || $tokens[2][1] !== WPClone_Db::name($name) || $tokens[3][1] !== '(') {
            throw self::refused($name, 'it does not begin with CREATE TABLE ' . WPClone_Db::name($name) . ' (');
        }
        $parts = [];
        $depth = 1;
        $start = 4;
        for ($at = 4; $at < count($tokens) && $depth > 0; $at++) {
            $text = $tokens[$at][0] === 'symbol' ? $tokens[$at][1] : '';
            $depth += ($text === '(' ? 1 : 0) - ($text === ')' ? 1 : 0);
            if (($depth === 1 && $text === ',') || $depth === 0) {
                $parts[] = array_slice($tokens, $start, $at - $start);
                $start = $at + 1;
            }
        }
        if ($depth !== 0) {
            throw self::refused($name, 'its parentheses do not close');
        }
        $kept = [];
        foreach ($parts as $part) {
            self::check_part($part, $name);
            $last = $part[count($part) - 1];
            $kept[] = substr($create, $part[0][2], $last[3] - $part[0][2]);
        }
        $options = array_slice($tokens, $start);
        self::check_options($options, $name);
        return 'CREATE TABLE ' . WPClone_Db::name($staging) . " (\n  " . implode(",\n  ", $kept) . "\n)"
            . ($options ? ' ' . trim(substr($create, $options[0][2])) : '');
    }

    /** How a foreign key may act when its row changes. */
    const FOREIGN_KEY_ACTIONS = ['restrict', 'cascade', 'set null', 'set default', 'no action'];

    /**
     * One FOREIGN KEY clause of $name's definition ([CONSTRAINT [`c`]] FOREIGN KEY [`i`] (`a`, ...) REFERENCES
     * `t` (`b`, ...) [ON DELETE|UPDATE action]... [MATCH ...]), checked and rebuilt without its names (the
     * replaced table keeps those, in its backup): {head: FOREIGN KEY (...), references: t, tail: (...) ON ...}.
     * A table of another database, or anything else, is refused.
     */
    public static function foreign_key($clause, string $name): array
    {
        if (!is_string($clause) || strlen($clause) > 4096) {
            throw self::refused($name, 'a foreign key that is no clause of at most 4096 bytes');
        }
        $tokens = self::tokens($clause, $name);
        $at = 0;
        if (isset($tokens[0]) && self::is_word($tokens[0], 'constraint')) {
            $at = isset($tokens[1]) && $tokens[1][0] === 'name' ? 2 : 1;
        }
        if (!isset($tokens[$at + 1]) || !self::is_word($tokens[$at], 'foreign') || !self::is_word($tokens[$at + 1], 'key')) {
            throw self::refused($name, 'a foreign key that does not say FOREIGN KEY');
        }
        $at += isset($tokens[$at + 2]) && $tokens[$at + 2][0] === 'name' ? 3 : 2;
        $columns = self::names($tokens, $at, $name);
        if (!isset($tokens[$at + 1]) || !self::is_word($tokens[$at], 'references') || $tokens[$at + 1][0] !== 'name'
            || (isset($tokens[$at + 2]) && $tokens[$at + 2][1] === '.')) {
            throw self::refused($name, 'a foreign key that refers to no table of the same database');
        }
        $references = str_replace('``', '`', substr($tokens[$at + 1][1], 1, -1));
        $at += 2;
        $tail = self::names($tokens, $at, $name);
        while ($at < count($tokens)) {
            $words = strtolower(implode(' ', array_column(array_slice($tokens, $at, 4), 1)));
            $action = null;
            foreach (self::FOREIGN_KEY_ACTIONS as $candidate) {
                foreach (['on delete', 'on update'] as $event) {
                    if (strpos("$words ", "$event $candidate ") === 0) {
                        $action = "$event $candidate";
                    }
                }
            }
            if ($action === null && preg_match('/^match (full|partial|simple)( |$)/', $words, $match)) {
                $action = "match {$match[1]}";
            }
            if ($action === null) {
                throw self::refused($name, 'a foreign key that goes on with ' . substr($tokens[$at][1], 0, 40));
            }
            $at += substr_count($action, ' ') + 1;
            $tail .= ' ' . strtoupper($action);
        }
        return ['head' => 'FOREIGN KEY ' . $columns, 'references' => $references, 'tail' => $tail];
    }

    /** A parenthesized list of names at $at, rebuilt; $at moves past it. */
    private static function names(array $tokens, int &$at, string $name): string
    {
        $names = [];
        if (($tokens[$at][1] ?? '') !== '(') {
            throw self::refused($name, 'a foreign key without its list of columns');
        }
        do {
            $at++;
            if (($tokens[$at][0] ?? '') !== 'name' || !in_array($tokens[$at + 1][1] ?? '', [',', ')'], true)) {
                throw self::refused($name, 'a foreign key whose columns are not a list of names');
            }
            $names[] = $tokens[$at][1];
            $at++;
        } while ($tokens[$at][1] === ',');
        $at++;
        return '(' . implode(', ', $names) . ')';
    }

    /** @return array<int, array{0: string, 1: string, 2: int, 3: int}> kind, text, start, end of each token */
    private static function tokens(string $create, string $name): array
    {
        $tokens = [];
        $at = 0;
        while ($at < strlen($create)) {
            if (preg_match(self::TOKEN, $create, $match, PREG_UNMATCHED_AS_NULL, $at) !== 1 || isset($match[2])) {
                throw self::refused($name, wp_json_encode(substr($create, $at, 20))
                    . " at byte $at is not part of a table definition");
            }
            $kind = 'space';
            foreach (self::KINDS as $group => $candidate) {
                if (isset($match[$group])) {
                    $kind = $candidate;
                    break;
                }
            }
            $end = $at + strlen($match[0]);
            if ($kind !== 'space') {
                $tokens[] = [$kind, $match[0], $at, $end];
            }
            $at = $end;
        }
        return $tokens;
    }

    /** A column (its name, then its type), or a key or constraint; never a column that refers to another table. */
    private static function check_part(array $part, string $name): void
    {
        if (count($part) < 2) {
            throw self::refused($name, 'an empty column or key');
        }
        if ($part[0][0] === 'name' && $part[1][0] === 'word') {
            foreach ($part as $token) {
                if (self::is_word($token, 'references')) {
                    throw self::refused($name, 'column ' . substr($part[0][1], 0, 80) . ' refers to another table');
                }
            }
        } elseif (!self::is_word($part[0], ...self::KEY_WORDS)) {
            throw self::refused($name, substr($part[0][1], 0, 40) . ' ' . substr($part[1][1], 0, 40)
                . ' is neither a column nor a key');
        }
    }

    /** What follows the closing parenthesis: allowed table options only, ENGINE among the allowed engines. */
    private static function check_options(array $tokens, string $name): void
    {
        for ($at = 0; $at < count($tokens); $at++) {
            if (self::is_word($tokens[$at], 'default') && $at + 1 < count($tokens)) {  // DEFAULT CHARSET, COLLATE
                $at++;
            }
            $option = $tokens[$at][0] === 'word' ? strtolower($tokens[$at][1]) : '';
            if ($option === 'character' && $at + 1 < count($tokens) && self::is_word($tokens[$at + 1], 'set')) {
                $option = 'character set';
                $at++;
            }
            if (!in_array($option, self::OPTIONS, true)) {
                throw self::refused($name, substr($tokens[$at][1], 0, 40)
                    . ' after its closing parenthesis, where only the allowed table options may follow');
            }
            $at++;
            if ($at < count($tokens) && $tokens[$at][1] === '=') {
                $at++;
            }
            if ($at >= count($tokens) || !in_array($tokens[$at][0], ['word', 'number', 'string'], true)) {
                throw self::refused($name, "table option $option without a value");
            }
            if ($option === 'engine' && !in_array(strtolower($tokens[$at][1]), self::ENGINES, true)) {
                throw self::refused($name, 'ENGINE=' . substr($tokens[$at][1], 0, 40) . ' (allowed: '
                    . implode(', ', self::ENGINES) . ')');
            }
        }
    }

    private static function is_word(array $token, string ...$words): bool
    {
        return $token[0] === 'word' && in_array(strtolower($token[1]), $words, true);
    }

    private static function refused(string $name, string $why): WPClone_Error
    {
        return new WPClone_Error('bad_table_definition', "the definition of $name is refused: $why");
    }
}

/**
 * File chunks: each P frame is a record [path, offset, size, mtime, mode, data], a piece of a file
 * written at its offset in the staging folder. Writing a piece again writes the same bytes.
 */
final class WPClone_Import_Files
{
    /** The file pieces of a chunk, each written into its staged file as it is read. */
    public static function apply(WPClone_Job $job, WPClone_Frame_Reader $body): array
    {
        $pieces = [];
        $bytes = 0;
        while (($frame = $body->next()) !== null) {
            [$kind, $length] = $frame;
            if ($kind !== 'P') {
                throw new WPClone_Error('malformed_stream', "unexpected frame '$kind' in a files chunk");
            }
            [$path, $offset, $size, $mtime, $mode, $data_length] = self::piece_header($body, $length);
            $staged = self::staged_path($job, $path);  // a path that escapes is refused as such first
            self::refuse_forbidden($path);
            if ($offset + $data_length > $size) {
                throw new WPClone_Error('too_much_data', sprintf('%s: more than the %d bytes announced', $path, $size));
            }
            $handle = @fopen($staged, 'cb');
            $written = $handle !== false && fseek($handle, $offset) === 0 && $body->copy($data_length, $handle);
            if (!($handle !== false && fclose($handle) && $written)) {
                throw new WPClone_Error('unwritable', "cannot write $path (a folder of that name, or the disk is full)", 507);
            }
            $pieces[] = [$path, $offset, $data_length, $size, $mtime, $mode & 0777];
            $bytes += $data_length;
        }
        return ['pieces' => $pieces, 'bytes' => $bytes];
    }

    /**
     * The fields of a P frame's one record [path, offset, size, mtime, mode, data], but for its data,
     * which is left to be copied: its length comes last.
     *
     * @return array{0: string, 1: int, 2: int, 3: int, 4: int, 5: int}
     */
    private static function piece_header(WPClone_Frame_Reader $body, int $length): array
    {
        $head = 4 * 6;
        if ($length < $head) {
            throw new WPClone_Error('malformed_stream', "a file piece's lengths run past the end of its frame");
        }
        $lengths = array_values(unpack('N6', $body->read($head)));
        if (in_array(WPClone_Frames::NULL_LENGTH, $lengths, true) || array_sum($lengths) !== $length - $head) {
            throw new WPClone_Error('malformed_stream', 'a file piece is not exactly one record of 6 values');
        }
        $fields = array_map([$body, 'read'], array_slice($lengths, 0, 5));
        foreach (array_slice($fields, 1) as $number) {
            if (!WPClone_Frames::is_number($number)) {
                throw new WPClone_Error('malformed_stream', 'the header of a file piece is not numeric');
            }
        }
        return [$fields[0], (int) $fields[1], (int) $fields[2], (int) $fields[3], (int) $fields[4], $lengths[5]];
    }

    /**
     * At commit: the file chunks numbered 1..$chunks all arrived, no other, and the pieces of every
     * file cover it exactly once. Gives the files their times and modes; returns how many there are.
     */
    public static function finish(WPClone_Job $job, int $chunks): int
    {
        $numbers = $job->manifest_numbers();
        sort($numbers);
        if ($numbers !== ($chunks > 0 ? range(1, $chunks) : [])) {
            throw new WPClone_Error('incomplete', sprintf('%d file chunks were sent, %d arrived', $chunks, count($numbers)), 409);
        }
        $files = [];
        $folders = [];
        foreach ($numbers as $seq) {
            foreach ($job->manifest($seq)['pieces'] as [$path, $offset, $length, $size, $mtime, $mode]) {
                if (isset($files[$path]) && $files[$path]['size'] !== $size) {
                    throw new WPClone_Error('malformed_stream', "$path was announced with two sizes");
                }
                $files[$path]['size'] = $size;
                $files[$path]['meta'] = [$mtime, $mode];
                $files[$path]['pieces'][] = [$offset, $length];
            }
        }
        foreach ($files as $path => $file) {
            sort($file['pieces']);
            $covered = 0;
            foreach ($file['pieces'] as [$offset, $length]) {
                if ($offset !== $covered) {
                    throw new WPClone_Error('incomplete', sprintf('%s: bytes from %d %s', $path, min($offset, $covered),
                        $offset > $covered ? 'never arrived' : 'arrived twice'), 409);
                }
                $covered += $length;
            }
            $target = self::staged_path($job, (string) $path);
            clearstatcache(true, $target);
            if ($covered !== $file['size'] || filesize($target) !== $file['size']) {
                throw new WPClone_Error('incomplete', sprintf('%s: %d of its %d bytes arrived', $path, $covered, $file['size']), 409);
            }
            // Whatever mode the stream announces, a file is 0644 and its folders 0755: never
            // executable, never writable by others, never unreadable by the web server.
            @chmod($target, 0644);
            @touch($target, $file['meta'][0]);
            $segments = explode('/', (string) $path);
            for ($depth = count($segments) - 1; $depth > 1; $depth--) {
                $folders[self::staged_folder($job, array_slice($segments, 0, $depth))] = true;
            }
        }
        foreach (array_keys($folders) as $folder) {
            @chmod($folder, 0755);
        }
        return count($files);
    }

    /**
     * Names in uploads/ that a web server may run or read as its configuration: PHP anywhere in the
     * name (Apache's AddHandler runs x.php.jpg), CGI and other scripts, and server configuration files.
     * Themes and plugins hold PHP by nature and are left alone.
     */
    const FORBIDDEN_EXTENSION = '/\.(php[0-9]*|phtml|phar|pht|phps|cgi|pl|py|sh|shtml|asp|aspx|jsp)$/i';
    const FORBIDDEN_SEGMENT = '/\.(php[0-9]*|phtml|phar|pht|phps)(\.|$)/i';
    const FORBIDDEN_NAMES = ['.htaccess', '.htpasswd', '.user.ini', 'php.ini', 'web.config'];

    /** Whether a stream path ("uploads/2024/05/a.jpg") is refused in a restore. */
    public static function forbidden(string $path): bool
    {
        $segments = explode('/', $path);
        if ($segments[0] !== 'uploads' || count($segments) < 2) {
            return false;
        }
        $name = (string) end($segments);
        return in_array(strtolower($name), self::FORBIDDEN_NAMES, true)
            || preg_match(self::FORBIDDEN_EXTENSION, $name) === 1 || preg_match(self::FORBIDDEN_SEGMENT, $name) === 1;
    }

    /**
     * Refuses a forbidden upload in an import into a site that is not a wpclone clone: a restore's target,
     * production. A clone (its configuration defines WPCLONE_MIGRATOR_TOKEN) receives production's
     * uploads as they are, .htaccess files of security plugins and all, and they are refused only on
     * their way back.
     */
    private static function refuse_forbidden(string $path): void
    {
        $clone = defined('WPCLONE_MIGRATOR_TOKEN') && (string) constant('WPCLONE_MIGRATOR_TOKEN') !== '';
        if (!$clone && self::forbidden($path)) {
            throw new WPClone_Error('forbidden_file', 'refusing ' . wp_json_encode($path, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE)
                . ': uploads may not hold executable or server configuration files; nothing was changed', 422);
        }
    }

    /** The staging folder of the stream folder $segments (the root first): ["uploads", "2024"]. */
    private static function staged_folder(WPClone_Job $job, array $segments): string
    {
        $root = array_shift($segments);
        return WPClone_Site::roots([$root])[$root] . '/.wpclone-' . $job->id() . '/' . implode('/', $segments);
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
        if ($unsafe || WPClone_Site::excluded($path, WPClone_Site::rules_of($job->data))) {
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
        // File chunks run side by side: another request may create the same folders at the same time.
        for ($attempt = 0; $attempt < 3 && !is_dir($parent); $attempt++) {
            @mkdir($parent, 0755, true);
        }
        if (!is_dir($parent)) {
            throw new WPClone_Error('bad_path', 'cannot create the folder of ' . $path);
        }
        $real = realpath($parent);
        if ($real === false || strpos($real . '/', realpath($stage) . '/') !== 0) {
            throw new WPClone_Error('bad_path', "refusing $path: it leads outside the staging folder");
        }
        return $target;
    }
}
