<?php
/**
 * wpclone migrator: who may drive it, and how it leaves a site.
 *
 * A job opens a session with an administrator's login (HTTP Basic on the `session` route, checked by
 * wp_authenticate(): a login password or an application password, with every `authenticate` filter,
 * two-factor and lockout plugins among them, having its say) and receives a random token; every other
 * route takes only that token, in the X-WPClone-Token header, so the password crosses the network
 * once per job. A clone's configuration defines WPCLONE_MIGRATOR_TOKEN, which its operator sends in
 * the same header instead.
 *
 * The token logs its user in through `determine_current_user` on this namespace's requests only, the
 * way application passwords do, so other plugins' REST checks see an administrator and their refusals
 * stand. The migrator sets aside only core's verdict on HTTP Basic as an application password, on the
 * session route (which checks the login itself), and nothing on a clone (the operator's own site).
 * An import chunk is served before the theme and `init` (wpclone_migrator_early_chunk) only when the
 * plugins' `rest_authentication_errors` and the token both admit it; otherwise the REST route answers.
 *
 * Failed logins on the session route are counted per login name and per client address; past the
 * limit the route answers 429 without looking at the password until the window has passed.
 */

if (!defined('ABSPATH')) {
    return;
}

final class WPClone_Auth
{
    const HEADER = 'HTTP_X_WPCLONE_TOKEN';

    /** @var array{user: int, hash: string}|null the session the current request's token opened */
    private static $session = null;
    /**
     * @var true|WP_Error|null the session route's verdict on this request's login: core asks a route's
     * permission again for its Allow header, and a login is checked (and a failure counted) once.
     */
    private static $login_verdict = null;

    /** `determine_current_user`: a live session's token logs its user in, for the migrator's routes only. */
    public static function session_user($user_id)
    {
        if (!empty($user_id) || self::token() === '' || !self::for_migrator()) {
            return $user_id;
        }
        self::$session = WPClone_Sessions::find(self::token());
        return self::$session === null ? $user_id : self::$session['user'];
    }

    /** Permission of the session route: an administrator's login, unless throttled. */
    public static function login(WP_REST_Request $request)
    {
        if (self::$login_verdict === null) {
            self::$login_verdict = self::check_login();
        }
        return self::$login_verdict;
    }

    /** @return true|WP_Error */
    private static function check_login()
    {
        [$login, $password] = self::basic(self::authorization());
        if ($login === '') {
            return new WP_Error('wpclone_unauthenticated',
                'Open a session with an administrator login in HTTP Basic authentication.', ['status' => 401]);
        }
        $wait = WPClone_Throttle::wait($login);
        if ($wait > 0) {
            return new WP_Error('wpclone_throttled', "Too many failed logins: try again in $wait seconds.",
                ['status' => 429]);
        }
        $user = wp_authenticate($login, $password);
        if (is_wp_error($user)) {
            WPClone_Throttle::failed($login);
            return new WP_Error('wpclone_login_failed', 'The login or password is not valid.', ['status' => 401]);
        }
        if (!user_can($user, 'manage_options')) {
            return new WP_Error('wpclone_forbidden', 'The user is not an administrator of this site.', ['status' => 403]);
        }
        WPClone_Throttle::succeeded($login);
        wp_set_current_user($user->ID);
        return true;
    }

    /** Permission of every other route: a clone's token, or a live session's token of an administrator. */
    public static function check(WP_REST_Request $request)
    {
        if (self::is_clone_token()) {
            return true;
        }
        $session = self::$session ?? WPClone_Sessions::find(self::token());
        if ($session !== null) {
            if (!user_can($session['user'], 'manage_options')) {
                return new WP_Error('wpclone_forbidden', "The session's user is no longer an administrator of this site.",
                    ['status' => 403]);
            }
            self::$session = $session;
            wp_set_current_user($session['user']);
            return true;
        }
        if (self::token() !== '') {
            return new WP_Error('wpclone_bad_token',
                'The token is not valid for this site (its session ended or expired).', ['status' => 401]);
        }
        if (self::authorization() !== '') {
            return new WP_Error('wpclone_session_required', 'Open a session first: POST ' . WPCLONE_MIGRATOR_NAMESPACE
                . '/session with an administrator login, then send its token in the X-WPClone-Token header.',
                ['status' => 401]);
        }
        return new WP_Error('wpclone_unauthenticated',
            'Send the token of a session (X-WPClone-Token): open one with an administrator login.', ['status' => 401]);
    }

    /** The hash of the session the current request carries, if any. */
    public static function session_hash(): ?string
    {
        return self::$session['hash'] ?? null;
    }

    /**
     * `rest_authentication_errors`, after everyone else: a session's token never serves another
     * namespace; on the migrator's routes other plugins' refusals stand, but for core's verdict on
     * Basic as an application password on the session route and anything on a clone.
     */
    public static function rest_errors($result)
    {
        // An import chunk served before WordPress parses its request: the route it was sent to.
        $requested = isset($GLOBALS['wp']) ? null : self::requested_route();
        $route = $requested === null ? untrailingslashit((string) ($GLOBALS['wp']->query_vars['rest_route'] ?? ''))
            : '/' . WPCLONE_MIGRATOR_NAMESPACE . '/' . $requested;
        $ours = strpos($route . '/', '/' . WPCLONE_MIGRATOR_NAMESPACE . '/') === 0;
        if (self::$session !== null && !$ours) {
            return new WP_Error('wpclone_token_scope', "A wpclone session's token is valid on the migrator's routes only.",
                ['status' => 403]);
        }
        if (!$ours || !is_wp_error($result)) {
            return $result;
        }
        if (self::is_clone_token()) {
            return null;
        }
        $core_verdict = $GLOBALS['wp_rest_application_password_status'] ?? null;
        if ($route === '/' . WPCLONE_MIGRATOR_NAMESPACE . '/session' && $result === $core_verdict) {
            return null;
        }
        return $result;
    }

    private static function is_clone_token(): bool
    {
        $token = defined('WPCLONE_MIGRATOR_TOKEN') ? (string) WPCLONE_MIGRATOR_TOKEN : '';
        return strlen($token) >= 16 && hash_equals($token, self::token());
    }

    private static function token(): string
    {
        $token = $_SERVER[self::HEADER] ?? '';
        return is_string($token) ? trim($token) : '';
    }

    /**
     * The migrator's route the request is addressed to ('import/files'; '' for its namespace itself) in
     * pretty, index.php or ?rest_route= URLs, judged before WordPress has parsed it; null for any other
     * request. rest_errors() checks the route WordPress parsed, where it did.
     */
    public static function requested_route(): ?string
    {
        $namespace = '/' . WPCLONE_MIGRATOR_NAMESPACE . '/';
        foreach ([$_GET, $_POST] as $given) {
            if (isset($given['rest_route'])) {
                $route = $given['rest_route'];
                return is_string($route) && strpos($route, $namespace) === 0
                    ? untrailingslashit(substr($route, strlen($namespace))) : null;
            }
        }
        $path = (string) parse_url((string) ($_SERVER['REQUEST_URI'] ?? ''), PHP_URL_PATH);
        $home = rtrim((string) parse_url(home_url(), PHP_URL_PATH), '/');
        foreach (["$home/", "$home/index.php/"] as $base) {
            $prefix = $base . rest_get_url_prefix() . $namespace;
            if (strpos($path, $prefix) === 0) {
                return untrailingslashit(substr($path, strlen($prefix)));
            }
        }
        return null;
    }

    private static function for_migrator(): bool
    {
        return self::requested_route() !== null;
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

/**
 * Sessions: one file per session in the migrator's folder (never in the database a restore replaces),
 * named by the SHA-256 of its token (the token itself is never stored). A session ends when its job
 * closes it, IDLE seconds after its last request, or MAX seconds after it began.
 */
final class WPClone_Sessions
{
    const IDLE = 1800;
    const MAX = 86400;

    /** Routes `session` (open one) and `session/close` (end it; {remove?}: the plugin leaves once idle). */
    public static function open(WP_REST_Request $request): array
    {
        self::prune();
        $token = 'wpcs_' . bin2hex(random_bytes(32));
        $data = ['user' => get_current_user_id(), 'created' => time()];
        $path = self::path(hash('sha256', $token));
        if (file_put_contents($path, wp_json_encode($data), LOCK_EX) === false) {
            throw new WPClone_Error('unwritable', 'cannot record the session', 500);
        }
        @chmod($path, 0600);
        return ['token' => $token, 'idle_seconds' => self::IDLE, 'max_seconds' => self::MAX,
            'migrator' => WPCLONE_MIGRATOR_VERSION, 'build' => WPClone_Site::build(),
            'must_use' => WPClone_Site::is_must_use()];
    }

    public static function close(WP_REST_Request $request): array
    {
        $hash = WPClone_Auth::session_hash();
        if ($hash !== null) {
            @unlink(self::path($hash));
        }
        if (!$request->get_param('remove')) {
            return ['closed' => $hash !== null, 'removed' => false];
        }
        return ['closed' => $hash !== null] + WPClone_Removal::when_idle();
    }

    /** @return array{user: int, hash: string}|null a live session, its idle time restarted */
    public static function find(string $token): ?array
    {
        if (!preg_match('/^wpcs_[0-9a-f]{64}$/', $token)) {
            return null;
        }
        $hash = hash('sha256', $token);
        $path = self::path($hash);
        $data = is_file($path) ? json_decode((string) file_get_contents($path), true) : null;
        if (!is_array($data) || !self::alive($path, $data)) {
            return null;
        }
        @touch($path);
        return ['user' => (int) $data['user'], 'hash' => $hash];
    }

    /** The number of live sessions, and when the last of them will have expired at the latest. */
    public static function live(): array
    {
        $count = 0;
        $until = 0;
        foreach (self::prune() as $path => $data) {
            $count++;
            $until = max($until, min((int) filemtime($path) + self::IDLE, (int) $data['created'] + self::MAX));
        }
        return [$count, $until];
    }

    /** Deletes the expired sessions; returns the live ones. */
    private static function prune(): array
    {
        $live = [];
        foreach ((array) glob(self::path('*')) as $path) {
            $data = json_decode((string) @file_get_contents($path), true);
            if (is_array($data) && self::alive($path, $data)) {
                $live[$path] = $data;
            } else {
                @unlink($path);
            }
        }
        return $live;
    }

    private static function alive(string $path, array $data): bool
    {
        clearstatcache(true, $path);
        $now = time();
        return isset($data['user'], $data['created']) && $now < (int) $data['created'] + self::MAX
            && $now < (int) @filemtime($path) + self::IDLE;
    }

    private static function path(string $name): string
    {
        $folder = WPClone_Job::folder('sessions');
        if (!is_dir($folder)) {
            wp_mkdir_p($folder);
        }
        return "$folder/$name.json";
    }
}

/** Failed logins, per login name and per client address, within a window; in the migrator's folder. */
final class WPClone_Throttle
{
    const WINDOW = 900;
    const PER_LOGIN = 5;
    const PER_ADDRESS = 10;

    /** Seconds until the session route takes a login again (0: now). */
    public static function wait(string $login): int
    {
        $wait = 0;
        foreach (self::keys($login) as $key => $limit) {
            $record = self::read($key);
            if ($record['failures'] >= $limit) {
                $wait = max($wait, $record['since'] + self::WINDOW - time());
            }
        }
        return max(0, $wait);
    }

    public static function failed(string $login): void
    {
        foreach (array_keys(self::keys($login)) as $key) {
            self::update($key, function (array $record): array {
                return ['failures' => $record['failures'] + 1, 'since' => $record['since'] ?: time()];
            });
        }
    }

    public static function succeeded(string $login): void
    {
        @unlink(self::path('login:' . strtolower($login)));
    }

    /** @return array<string, int> */
    private static function keys(string $login): array
    {
        return ['login:' . strtolower($login) => self::PER_LOGIN,
            'address:' . (string) ($_SERVER['REMOTE_ADDR'] ?? '') => self::PER_ADDRESS];
    }

    /** @return array{failures: int, since: int} */
    private static function read(string $key): array
    {
        $path = self::path($key);
        $record = is_file($path) ? json_decode((string) file_get_contents($path), true) : null;
        return self::current(is_array($record) ? $record : []);
    }

    private static function update(string $key, callable $change): void
    {
        $handle = @fopen(self::path($key), 'c+');
        if ($handle === false || !flock($handle, LOCK_EX)) {
            return;
        }
        $record = json_decode((string) stream_get_contents($handle), true);
        $record = $change(self::current(is_array($record) ? $record : []));
        ftruncate($handle, 0);
        rewind($handle);
        fwrite($handle, (string) wp_json_encode($record));
        fclose($handle);
    }

    /** A record, or a fresh one where its window has passed. */
    private static function current(array $record): array
    {
        $since = (int) ($record['since'] ?? 0);
        if ($since === 0 || time() >= $since + self::WINDOW) {
            return ['failures' => 0, 'since' => 0];
        }
        return ['failures' => (int) ($record['failures'] ?? 0), 'since' => $since];
    }

    private static function path(string $key): string
    {
        $folder = WPClone_Job::folder('throttle');
        if (!is_dir($folder)) {
            wp_mkdir_p($folder);
        }
        return $folder . '/' . hash('sha256', $key) . '.json';
    }
}

/**
 * The plugin leaving a site: asked by a job's close, it deactivates itself and deletes its files once
 * no session is live (otherwise the last session to close, or a cron event once they have all
 * expired, does it). A must-use copy, placed by the site's owner or a clone's own, is never removed.
 * Backups stay (with their records, so a reinstalled migrator can roll back to them).
 */
final class WPClone_Removal
{
    const PENDING = 'remove-when-idle';
    const CRON_HOOK = 'wpclone_migrator_remove_when_idle';

    public static function when_idle(): array
    {
        if (WPClone_Site::is_must_use()) {
            return ['removed' => false, 'kept' => 'mu-plugin'];
        }
        touch(WPClone_Job::folder(self::PENDING));
        return self::if_idle();
    }

    /** Removes the plugin if its removal was asked for and no session is live. */
    public static function if_idle(): array
    {
        if (!is_file(WPClone_Job::folder(self::PENDING)) || WPClone_Site::is_must_use()) {
            return ['removed' => false];
        }
        [$live, $until] = WPClone_Sessions::live();
        if ($live > 0) {
            wp_clear_scheduled_hook(self::CRON_HOOK);
            wp_schedule_single_event($until + 60, self::CRON_HOOK);
            return ['removed' => false, 'waiting_for_sessions' => $live];
        }
        $lock = WPClone_Job::lock(true);
        require_once ABSPATH . 'wp-admin/includes/plugin.php';
        deactivate_plugins(plugin_basename(WPCLONE_MIGRATOR_FILE), true);
        wp_clear_scheduled_hook(self::CRON_HOOK);
        $plugin = dirname(WPCLONE_MIGRATOR_FILE);
        if (basename($plugin) === 'wpclone-migrator' && realpath(dirname($plugin)) === realpath(WP_PLUGIN_DIR)) {
            WPClone_Backups::remove_folder($plugin);
        }
        WPClone_Import::sweep(WPClone_Db::connect());  // an import no live session will finish
        $state = WPClone_Job::folder();
        foreach (['jobs', 'sessions', self::PENDING] as $entry) {
            WPClone_Backups::remove_folder("$state/$entry");
        }
        if (WPClone_Backups::all() === []) {
            fclose($lock);
            WPClone_Backups::remove_folder($state);
        }
        return ['removed' => true];
    }
}
