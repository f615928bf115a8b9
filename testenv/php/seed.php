<?php
// php seed.php DOCROOT ADMIN_USER
// Adds the content a clone must carry over intact. Runs in its own process after install.php:
// in the installing process the uploads URL is still relative, and so would be the media guid.
[, $docroot, $adminUser] = $argv;

// wp_die() ends the process with status 0: only a script that reaches its last line has succeeded.
register_shutdown_function(function () {
    if (!defined('WPCLONE_SCRIPT_DONE')) {
        exit(1);
    }
});

$_SERVER['HTTP_HOST'] = '127.0.0.1';
$_SERVER['REQUEST_METHOD'] = 'GET';
require $docroot . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/image.php';
require_once ABSPATH . 'wp-admin/includes/file.php';
require_once ABSPATH . 'wp-admin/includes/media.php';
add_filter('pre_wp_mail', '__return_false');  // there is no sendmail

function must(mixed $result): mixed
{
    if (is_wp_error($result) || $result === false || $result === 0) {
        fwrite(STDERR, 'seeding failed: ' . (is_wp_error($result) ? $result->get_error_message() : 'false') . "\n");
        exit(1);
    }
    return $result;
}

$admin = must(get_user_by('login', $adminUser));
wp_set_current_user($admin->ID);
$home = home_url();
$name = get_bloginfo('name');

$image = wp_tempnam('harbour.png');
$gd = imagecreatetruecolor(640, 400);
imagefill($gd, 0, 0, imagecolorallocate($gd, 30, 120, 200));
imagestring($gd, 5, 40, 190, $name, imagecolorallocate($gd, 255, 255, 255));
imagepng($gd, $image);
$attachment = must(media_handle_sideload(['name' => 'harbour.png', 'tmp_name' => $image], 0, "$name harbour"));
$imageUrl = wp_get_attachment_url($attachment);

$category = must(wp_insert_term('Travel', 'category'))['term_id'];
$posts = [
    'First steps' => "<p>Welcome to $name. Read <a href=\"$home/sample-page/\">about us</a>.</p>",
    'Café déjà vu — 日本語 ✓' => '<p>Ünïcödé content: naïve façade, 東京, emoji ✓.</p>',
    'Harbour photo' => "<p><img src=\"$imageUrl\" alt=\"harbour\" /></p><p>Back to <a href=\"$home/\">home</a>.</p>",
];
$postIds = [];
foreach ($posts as $title => $content) {
    $postIds[] = must(wp_insert_post([
        'post_title' => $title, 'post_content' => $content, 'post_status' => 'publish',
        'post_author' => $admin->ID, 'post_category' => [$category], 'tags_input' => ['seeded'],
    ], true));
}
set_post_thumbnail($postIds[2], $attachment);
must(wp_insert_post([
    'post_type' => 'page', 'post_title' => 'Contact', 'post_status' => 'publish', 'post_author' => $admin->ID,
    'post_content' => "<p>Write to us from <a href=\"$home/contact/\">$home/contact/</a>.</p>",
], true));
must(wp_insert_comment([
    'comment_post_ID' => $postIds[0], 'comment_author' => 'Visitor', 'comment_author_email' => 'visitor@example.com',
    'comment_author_url' => "$home/", 'comment_content' => 'Lovely post, see you at the café!', 'comment_approved' => 1,
]));

// Serialized values holding the URL, as themes and plugins store them: string lengths change on a move.
update_option('widget_text', [
    2 => ['title' => 'Find us', 'text' => "<a href=\"$home/contact/\">Contact</a>", 'filter' => false, 'visual' => false],
    '_multiwidget' => 1,
]);
$sidebars = get_option('sidebars_widgets', []);
$sidebars['sidebar-1'] = ['text-2'];
update_option('sidebars_widgets', $sidebars);
update_option('wpclone_seed_settings', [
    'site' => ['url' => $home, 'links' => ["$home/contact/", "$home/sample-page/"]],
    'logo' => (object) ['url' => $imageUrl, 'width' => 640],
]);
update_post_meta($postIds[0], 'wpclone_source_link', "$home/first-steps/");
update_user_meta($admin->ID, 'wpclone_profile', ['homepage' => "$home/", 'avatar' => $imageUrl]);
define('WPCLONE_SCRIPT_DONE', true);
