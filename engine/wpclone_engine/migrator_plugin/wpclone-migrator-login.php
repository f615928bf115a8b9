<?php
/**
 * wpclone migrator: one-click login links, on a clone only (its configuration defines
 * WPCLONE_MIGRATOR_TOKEN). The API makes a link, wp-login.php?wpclone-login=<payload>.<signature>: the
 * payload names the clone's administrator, an expiry and a random nonce; the signature is an
 * HMAC-SHA256 with a key derived from the clone's migrator token, which only the clone and the
 * operator's Secrets hold. A link logs its holder in once, before it expires; never a password.
 */

if (!defined('ABSPATH')) {
    return;
}

final class WPClone_Login_Links
{
    const PARAM = 'wpclone-login';
    const USED = 'wpclone_login_link_';  // + nonce: an option per used link, until it expires

    public static function handle(): void
    {
        $token = defined('WPCLONE_MIGRATOR_TOKEN') ? (string) constant('WPCLONE_MIGRATOR_TOKEN') : '';
        if (!isset($_GET[self::PARAM]) || strlen($token) < 16) {
            return;
        }
        $parts = explode('.', is_string($_GET[self::PARAM]) ? $_GET[self::PARAM] : '');
        $key = hash_hmac('sha256', 'login-link', $token, true);
        if (count($parts) !== 2 || !hash_equals(self::encode(hash_hmac('sha256', $parts[0], $key, true)), $parts[1])) {
            self::refuse('This login link is not valid. Ask for a new one.', 403);
        }
        $payload = strtr($parts[0], '-_', '+/');
        $link = json_decode((string) base64_decode($payload . str_repeat('=', (4 - strlen($payload) % 4) % 4), true), true);
        $nonce = is_array($link) ? ($link['nonce'] ?? null) : null;
        if (!is_string($link['user'] ?? null) || !is_int($link['exp'] ?? null) || !is_string($nonce)
            || !preg_match('/^[A-Za-z0-9_-]{16,64}$/', $nonce)) {
            self::refuse('This login link is not valid. Ask for a new one.', 400);
        }
        if ($link['exp'] < time()) {
            self::refuse('This login link has expired. Ask for a new one.', 410);
        }
        self::forget_expired();
        // Once: the option's name is unique, so of two requests with the same link only one adds it.
        if (!add_option(self::USED . $nonce, (string) $link['exp'], '', 'no')) {
            self::refuse('This login link was used already: each link logs in once. Ask for a new one.', 410);
        }
        $user = get_user_by('login', $link['user']);
        if (!$user || !user_can($user, 'manage_options')) {
            self::refuse('This login link names no administrator of this site.', 403);
        }
        wp_set_auth_cookie($user->ID, false, is_ssl());
        wp_safe_redirect(admin_url());
        exit;
    }

    private static function forget_expired(): void
    {
        global $wpdb;
        $wpdb->query($wpdb->prepare("DELETE FROM {$wpdb->options} WHERE option_name LIKE %s AND CAST(option_value AS UNSIGNED) < %d",
            $wpdb->esc_like(self::USED) . '%', time()));
    }

    private static function encode(string $bytes): string
    {
        return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
    }

    /** @return never */
    private static function refuse(string $message, int $status): void
    {
        wp_die(esc_html($message), 'Login link', ['response' => $status]);
        exit;
    }
}

add_action('login_init', ['WPClone_Login_Links', 'handle'], 0);
