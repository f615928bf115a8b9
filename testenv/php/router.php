<?php
// Router for `php -S`: real files are served as they are, every other path goes to WordPress,
// as Apache's rewrite rules would do (pretty permalinks, /wp-json/).
$root = $_SERVER['DOCUMENT_ROOT'];
$path = urldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH));
$file = $root . $path;

if ($path !== '/' && is_file($file)) {
    return false;
}
if ($path !== '/' && is_dir($file)) {
    if (!str_ends_with($path, '/')) {
        header('Location: ' . $path . '/', true, 301);
        return true;
    }
    if (is_file($file . 'index.php')) {
        return false;
    }
}

$_SERVER['SCRIPT_NAME'] = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = $root . '/index.php';
$_SERVER['PHP_SELF'] = '/index.php';
chdir($root);
require $root . '/index.php';
