<?php
/**
 * wpclone migrator: the framed stream format (the same as wpclone_engine/frames.py), errors, and the
 * database connection the migrator reads and writes through.
 *
 * A stream is a sequence of frames: one byte of kind, a 4-byte big-endian payload length, the payload.
 *   H  import request header, JSON {job, seq}
 *   T  table begins, JSON {name, create, columns, key}
 *   R  rows of the open table: records (see record())
 *   E  table ends, JSON {name, rows}
 *   F  file begins: a record [path, size, mtime, mode]
 *   D  data of the open file
 *   Z  end of an export stream, JSON totals
 *   X  the exporter failed after the stream had begun, JSON {message}
 *   P  a piece of a file, in imports: a record [path, offset, size, mtime, mode, data]
 * A record is the 4-byte big-endian lengths of its values (0xFFFFFFFF for NULL), then the values.
 * A stream is hostile until parsed (it comes from another site, through the operator): what is not
 * exactly this is refused with a WPClone_Error, and every loop here consumes input.
 *
 * Like every helper file it only declares classes: as a must-use plugin WordPress includes it on its own,
 * and wpclone-migrator.php's require_once then finds it already loaded.
 */

if (!defined('ABSPATH')) {
    return;
}

/** A failure with the HTTP status and machine-readable reason the operator receives. */
final class WPClone_Error extends Exception
{
    /** @var string */
    public $reason;
    /** @var int */
    public $status;

    public function __construct(string $reason, string $message, int $status = 400)
    {
        parent::__construct($message);
        $this->reason = $reason;
        $this->status = $status;
    }

    public function to_wp_error(): WP_Error
    {
        return new WP_Error('wpclone_' . $this->reason, $this->getMessage(), ['status' => $this->status]);
    }
}

final class WPClone_Frames
{
    const NULL_LENGTH = 4294967295;
    const HEADER_BYTES = 5;
    /** MySQL's own limit of columns in a table: the width of a record. */
    const MAX_COLUMNS = 4096;
    /** Sizes, offsets, times, modes: 18 digits stay below PHP_INT_MAX, so (int) never saturates. */
    const NUMBER = '/^[0-9]{1,18}\z/';

    public static function frame(string $kind, string $payload): string
    {
        return $kind . pack('N', strlen($payload)) . $payload;
    }

    public static function json(string $kind, array $data): string
    {
        $payload = json_encode($data, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);
        if ($payload === false) {
            throw new WPClone_Error('encoding', 'cannot encode a ' . $kind . ' frame: ' . json_last_error_msg(), 500);
        }
        return self::frame($kind, $payload);
    }

    /** @param array<int, string|null> $values */
    public static function record(array $values): string
    {
        $lengths = [];
        foreach ($values as $value) {
            $lengths[] = $value === null ? self::NULL_LENGTH : strlen($value);
        }
        return pack('N*', ...$lengths) . implode('', $values);
    }

    /** @return array<string, mixed> */
    public static function decode_json(string $kind, string $payload): array
    {
        $data = json_decode($payload, true);
        if (!is_array($data)) {
            throw new WPClone_Error('malformed_stream', "frame '$kind' does not hold a JSON object");
        }
        return $data;
    }

    /**
     * The records in a payload, each with exactly $width values.
     *
     * @return Generator<int, array<int, string|null>>
     */
    public static function records(string $payload, int $width): Generator
    {
        foreach (self::record_lengths($payload, $width) as [$at, $lengths]) {
            $values = [];
            foreach ($lengths as $length) {
                if ($length === self::NULL_LENGTH) {
                    $values[] = null;
                    continue;
                }
                $values[] = substr($payload, $at, $length);
                $at += $length;
            }
            yield $values;
        }
    }

    /** How many records a payload holds (checked as records() reads them, without taking out their values). */
    public static function count_records(string $payload, int $width): int
    {
        $count = 0;
        foreach (self::record_lengths($payload, $width) as $ignored) {
            $count++;
        }
        return $count;
    }

    /**
     * Each record's lengths, checked against the payload, and where its first value begins.
     *
     * @return Generator<int, array{0: int, 1: array<int, int>}>
     */
    private static function record_lengths(string $payload, int $width): Generator
    {
        if ($width < 1 || $width > self::MAX_COLUMNS) {  // a record of no values takes no bytes: no end
            throw new WPClone_Error('malformed_rows', "records of $width values (a table has 1 to "
                . self::MAX_COLUMNS . ' columns)');
        }
        $size = strlen($payload);
        $head = 4 * $width;
        $format = 'N' . $width;
        $at = 0;
        while ($at < $size) {
            if ($size - $at < $head) {
                throw new WPClone_Error('malformed_rows', "a record's lengths run past the end of its frame");
            }
            $lengths = unpack($format, $payload, $at);
            $at += $head;
            $first = $at;
            foreach ($lengths as $length) {
                if ($length === self::NULL_LENGTH) {
                    continue;
                }
                if ($length > $size - $at) {
                    throw new WPClone_Error('malformed_rows', "a value is longer than what is left of its frame");
                }
                $at += $length;
            }
            yield [$first, $lengths];
        }
    }

    /** Whether a record's value is a non-negative integer PHP holds exactly. */
    public static function is_number($value): bool
    {
        return is_string($value) && preg_match(self::NUMBER, $value) === 1;
    }

    /** @return array<int, string|null> */
    public static function single_record(string $payload, int $width): array
    {
        $found = iterator_to_array(self::records($payload, $width), false);
        if (count($found) !== 1) {
            throw new WPClone_Error('malformed_stream', 'expected exactly one record, found ' . count($found));
        }
        return $found[0];
    }
}

/**
 * A request body (an import chunk) read frame by frame from a stream (php://input), never held whole
 * in memory: a file piece's data goes from the request into its file a block at a time. A frame that
 * runs past the end of the body is refused; each payload is read or copied in order.
 */
final class WPClone_Frame_Reader
{
    /** The largest payload read whole into memory (H frames and the fields of a file piece are far smaller). */
    const MAX_READ_BYTES = 1048576;
    const BLOCK_BYTES = 1048576;

    /** @var resource */
    private $input;
    /** @var int the body's length (its Content-Length), or at most what PHP takes when it was not announced */
    private $size;
    /** @var int bytes of the body consumed */
    private $at = 0;
    /** @var int bytes of the current frame's payload not yet consumed */
    private $left = 0;
    /** @var string the current frame's kind */
    private $kind = '';

    /** @param resource $input */
    public function __construct($input, int $size = PHP_INT_MAX)
    {
        $this->input = $input;
        $this->size = $size;
    }

    public static function request(): self
    {
        $input = fopen('php://input', 'rb');
        if ($input === false) {
            throw new WPClone_Error('unreadable', 'cannot read the request body', 500);
        }
        $length = (string) ($_SERVER['CONTENT_LENGTH'] ?? '');
        if (preg_match(WPClone_Frames::NUMBER, $length) === 1) {
            return new self($input, (int) $length);
        }
        $most = wp_convert_hr_to_bytes((string) ini_get('post_max_size'));  // PHP drops a longer body
        return new self($input, $most > 0 ? $most : PHP_INT_MAX);
    }

    /** @return array{0: string, 1: int}|null the next frame's kind and payload length, null at the end of the body */
    public function next(): ?array
    {
        if ($this->left > 0) {
            throw new LogicException("frame '{$this->kind}' was not read to its end");
        }
        $start = $this->at;
        $head = $this->take(WPClone_Frames::HEADER_BYTES);
        if ($head === '') {
            return null;
        }
        if (strlen($head) < WPClone_Frames::HEADER_BYTES) {
            throw new WPClone_Error('malformed_stream', 'truncated frame header at byte ' . $start);
        }
        $this->kind = $head[0];
        $length = unpack('N', $head, 1)[1];
        if ($length > $this->size - $this->at) {
            throw new WPClone_Error('malformed_stream', sprintf(
                "frame '%s' at byte %d announces %d bytes but the request holds %d",
                $this->kind, $start, $length, $this->size - $this->at
            ));
        }
        $this->left = $length;
        return [$this->kind, $length];
    }

    /**
     * The frames that are left, each read whole (a database chunk's rows: one frame in memory at a
     * time, as large as the body holds: a single row may be larger than a chunk is cut to).
     *
     * @return Generator<int, array{0: string, 1: string}>
     */
    public function frames(): Generator
    {
        while (($frame = $this->next()) !== null) {
            yield [$frame[0], $this->read($frame[1], PHP_INT_MAX)];
        }
    }

    /** The next $length bytes of the current frame's payload (at most $most). */
    public function read(int $length, int $most = self::MAX_READ_BYTES): string
    {
        $this->consume($length, $most);
        $data = $this->take($length);
        if (strlen($data) < $length) {
            throw $this->ended();
        }
        return $data;
    }

    /**
     * Copies the next $length bytes of the current frame's payload into $handle, a block at a time.
     * Returns false if $handle did not take them all (they are read from the body all the same).
     */
    public function copy(int $length, $handle): bool
    {
        $this->consume($length, PHP_INT_MAX);
        $written = true;
        while ($length > 0) {
            $block = fread($this->input, min($length, self::BLOCK_BYTES));
            if ($block === false || $block === '') {
                throw $this->ended();
            }
            $this->at += strlen($block);
            $length -= strlen($block);
            $written = $written && fwrite($handle, $block) === strlen($block);
        }
        return $written;
    }

    private function consume(int $length, int $most): void
    {
        if ($length < 0 || $length > $this->left || $length > $most) {
            throw new WPClone_Error('malformed_stream', sprintf("%d bytes asked of frame '%s', which has %d left%s",
                $length, $this->kind, $this->left, $length > $most ? " (at most $most are read at once)" : ''));
        }
        $this->left -= $length;
    }

    /** Up to $length bytes of the body: fewer only where it ends. */
    private function take(int $length): string
    {
        $data = $length > 0 ? stream_get_contents($this->input, $length) : '';  // into one string of that size
        $data = $data === false ? '' : $data;
        $this->at += strlen($data);
        return $data;
    }

    private function ended(): WPClone_Error
    {
        return new WPClone_Error('malformed_stream', sprintf("the request ends at byte %d, inside frame '%s'",
            $this->at, $this->kind));
    }
}

/**
 * An export stream: the response is written as it is produced, never held whole in memory.
 */
final class WPClone_Stream
{
    public static function begin(): void
    {
        if (function_exists('set_time_limit')) {
            @set_time_limit(0);
        }
        ignore_user_abort(false);
        while (ob_get_level() > 0) {
            ob_end_clean();
        }
        status_header(200);
        header('Content-Type: application/octet-stream');
        header('Cache-Control: no-store');
        header('X-Accel-Buffering: no');
        header('Content-Encoding: identity');
    }

    public static function send(string $frame): void
    {
        echo $frame;
        flush();
    }

    /** Ends an export stream with Z, or with X when it failed after the response had begun. */
    public static function finish(callable $produce): void
    {
        try {
            $totals = $produce();
            $totals['peak_memory'] = memory_get_peak_usage(true);
            self::send(WPClone_Frames::json('Z', $totals));
        } catch (Throwable $error) {
            self::send(WPClone_Frames::json('X', ['message' => $error->getMessage()]));
        }
        exit;
    }
}

/**
 * The migrator's own connection to the site's database, separate from $wpdb: values travel as raw
 * bytes (SET NAMES binary), so nothing is converted between character sets on the way out or in.
 * Each query() is one statement: mysqli removes CLIENT_MULTI_STATEMENTS from the flags of real_connect
 * (MYSQL_CLIENT_FLAGS included), so the server refuses `...; DROP ...`, and multi_query() is never used.
 * A site on the SQLite drop-in (a SQLite clone) has no MySQL database: it gets no connection, and the
 * migrator moves its files only (its tables are the copy's to write, beside WordPress).
 */
final class WPClone_Db
{
    /** Rows in one prepared INSERT, unless they would pass the statement's size or the protocol's
     * 65,535 values. */
    const ROWS_PER_INSERT = 64;

    /** @var mysqli|null null on a SQLite site */
    private $link;

    /** @var array<string, mysqli_stmt> prepared INSERTs of rows_per_insert() rows, by table */
    private $inserts = [];

    private function __construct(?mysqli $link)
    {
        $this->link = $link;
    }

    public static function is_sqlite(): bool
    {
        return defined('DB_ENGINE') && DB_ENGINE === 'sqlite';
    }

    public static function connect(): self
    {
        global $wpdb;
        if (self::is_sqlite()) {
            return new self(null);
        }
        [$host, $port, $socket, $is_ipv6] = $wpdb->parse_db_host(DB_HOST) ?: [DB_HOST, null, null, false];
        if ($is_ipv6 && extension_loaded('mysqlnd')) {
            $host = "[$host]";
        }
        mysqli_report(MYSQLI_REPORT_OFF);
        $link = mysqli_init();
        $flags = defined('MYSQL_CLIENT_FLAGS') ? MYSQL_CLIENT_FLAGS : 0;
        if (!@$link->real_connect($host, DB_USER, DB_PASSWORD, DB_NAME, $port ? (int) $port : null, $socket, $flags)) {
            throw new WPClone_Error('database', 'cannot connect to the database: ' . mysqli_connect_error(), 500);
        }
        $db = new self($link);
        $link->set_charset('binary');
        $db->query("SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO', foreign_key_checks = 0, unique_checks = 0");
        return $db;
    }

    /** @return mysqli_result|true */
    public function query(string $sql, bool $unbuffered = false)
    {
        if ($this->link === null) {
            throw new WPClone_Error('sqlite_site', 'this site keeps its tables in SQLite (the SQLite drop-in): '
                . 'the migrator moves its files only', 409);
        }
        $result = $this->link->query($sql, $unbuffered ? MYSQLI_USE_RESULT : MYSQLI_STORE_RESULT);
        if ($result === false) {
            throw new WPClone_Error('database', 'database error: ' . $this->link->error . ' (in: ' . substr($sql, 0, 80) . ')', 500);
        }
        return $result;
    }

    /** @return array<int, array<string, string|null>> */
    public function rows(string $sql): array
    {
        return $this->query($sql)->fetch_all(MYSQLI_ASSOC);
    }

    /** @return array<int, string|null> */
    public function column(string $sql): array
    {
        return array_column($this->query($sql)->fetch_all(MYSQLI_NUM), 0);
    }

    /** @return string|null */
    public function value(string $sql)
    {
        $row = $this->query($sql)->fetch_row();
        return $row === null ? null : $row[0];
    }

    /** The largest statement the server takes (none on a SQLite site). */
    public function max_allowed_packet(): int
    {
        return $this->link === null ? 0 : (int) $this->value('SELECT @@max_allowed_packet');
    }

    /**
     * Inserts `$rows` rows into `$table`, their values one row after another in `$values`, by a prepared
     * statement: the values travel as they are, with nothing to quote here nor any literal for the
     * server to parse (15,000 post-like rows: less than half of the server's time, a fifth of PHP's, than
     * as a statement's text).
     * @param string[] $columns
     * @param array<int, string|null> $values
     */
    public function insert(string $table, array $columns, int $rows, array $values): void
    {
        $kept = $rows === self::rows_per_insert(count($columns));
        $statement = $kept ? ($this->inserts[$table] ?? null) : null;
        if ($statement === null) {
            $row = '(' . implode(',', array_fill(0, count($columns), '?')) . ')';
            $sql = 'INSERT INTO ' . self::name($table) . ' (' . implode(', ', array_map([self::class, 'name'], $columns))
                . ') VALUES ' . implode(',', array_fill(0, $rows, $row));
            $statement = $this->link->prepare($sql);
            if ($statement === false) {
                throw new WPClone_Error('database', 'database error: ' . $this->link->error . " (preparing an insert into $table)", 500);
            }
            if ($kept) {
                $this->inserts[$table] = $statement;
            }
        }
        $statement->bind_param(str_repeat('s', count($values)), ...$values);
        if (!$statement->execute()) {
            throw new WPClone_Error('database', 'database error: ' . $statement->error . " (inserting into $table)", 500);
        }
        if (!$kept) {
            $statement->close();
        }
    }

    public static function rows_per_insert(int $columns): int
    {
        return max(1, min(self::ROWS_PER_INSERT, intdiv(65535, $columns)));
    }

    public function quote(?string $value): string
    {
        return $value === null ? 'NULL' : "'" . $this->link->real_escape_string($value) . "'";
    }

    public function like_prefix(string $prefix): string
    {
        return "'" . $this->link->real_escape_string(addcslashes($prefix, '_%\\')) . "%'";
    }

    public static function name(string $identifier): string
    {
        return '`' . str_replace('`', '``', $identifier) . '`';
    }

    /** Base tables whose names start with $prefix, in name order. */
    public function tables(string $prefix): array
    {
        if ($this->link === null) {
            return [];
        }
        $sql = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
            . " AND TABLE_TYPE = 'BASE TABLE' AND TABLE_NAME LIKE BINARY " . $this->like_prefix($prefix);
        $names = array_map('strval', $this->column($sql));
        sort($names, SORT_STRING);
        return $names;
    }

    public function server_version(): string
    {
        if ($this->link === null) {
            return 'SQLite ' . (class_exists('SQLite3') ? SQLite3::version()['versionString'] : '');
        }
        return $this->link->server_info;
    }
}
